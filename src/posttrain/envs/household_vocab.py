"""The names household games are written in: one vocabulary for training, one held out.

ALFWorld's out-of-distribution split evaluates on rooms and layouts the agent never trained
in (Shridhar et al., 2021, "ALFWorld", §4). posttrain's generated pools go further: the two
vocabularies share no room, receptacle or object name and no word except `SHARED_WORDS`
("key": every key must be recognisable as one), so a held-out game's layout and nouns are
all new to a policy trained on the other pool. `tests/unit/test_household_env.py` checks it.

Containers open and close (things go *in* them); supporters are surfaces (things go *on*
them); objects are portable; keys unlock a locked container.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Vocabulary:
    """The names one split's games are written with."""

    rooms: tuple[str, ...]
    containers: tuple[str, ...]
    supporters: tuple[str, ...]
    objects: tuple[str, ...]
    keys: tuple[str, ...]

    def names(self) -> tuple[str, ...]:
        return self.rooms + self.containers + self.supporters + self.objects + self.keys

    def words(self) -> set[str]:
        return {word for name in self.names() for word in name.split()}


TRAIN = Vocabulary(
    rooms=("kitchen", "pantry", "bedroom", "bathroom", "laundry room", "dining room"),
    containers=("fridge", "cabinet", "drawer", "microwave", "wardrobe", "dresser"),
    supporters=("countertop", "shelf", "nightstand", "desk", "dining table", "sink"),
    objects=(
        "apple",
        "mug",
        "knife",
        "towel",
        "soap bar",
        "spoon",
        "plate",
        "book",
        "tomato",
        "egg",
        "sponge",
        "pen",
    ),
    keys=("brass key", "copper key"),
)

HELD_OUT = Vocabulary(
    rooms=("lounge", "garage", "attic", "cellar", "nursery", "study"),
    containers=("chest", "locker", "cupboard", "toolbox", "trunk", "hamper"),
    supporters=("workbench", "sofa", "armchair", "bookcase", "coffee stand", "stool"),
    objects=(
        "candle",
        "vase",
        "remote",
        "hammer",
        "newspaper",
        "bowl",
        "glove",
        "scarf",
        "battery",
        "teapot",
        "blanket",
        "whistle",
    ),
    keys=("iron key", "silver key"),
)

SHARED_WORDS = frozenset({"key"})
"""Words both vocabularies may use."""

VOCABULARIES = {"train": TRAIN, "heldout": HELD_OUT}
"""Split name -> its vocabulary."""
