"""Pools of household text games generated with TextWorld, in ALFWorld's task moulds.

ALFWorld (Shridhar et al., 2021) is a set of TextWorld games whose goals are household chores.
Its layouts and PDDL come from ALFRED's scenes, which are not available here, so posttrain
generates games of the same shape with TextWorld's own tools (`textworld` package, Côté et al.,
2018): the room graph from `textworld.generator.make_map`, the world, objects and quests through
`GameMaker`, the descriptions from TextWorld's grammar, and the compiled Z-machine game from
`compile_game` (its bundled Inform 7). The task types are the ALFWorld ones TextWorld's
knowledge base can express:

- `pick_and_place`: an object lies on a surface; put it in/on a target receptacle.
- `find_then_place`: the object is inside a closed container somewhere; open, take, place.
- `unlock_then_take`: the object is in a locked container; fetch the key, unlock, open, take.
- `two_object`: put two objects in/on the same receptacle (one quest per object, so the
  score counts each placement).

ALFWorld's heat, cool, clean and examine-in-light tasks need appliances TextWorld's default
knowledge base does not model, so they are left out.

All containers start closed. A game's commands are planned here from the layout, then matched
one by one against the actions TextWorld's logic allows in the state (an unmatched command is a
generator bug, raised at once), and the matched actions become the quests' events, so the
walkthrough TextWorld derives for the game is a real winning policy.

Pools are seeded, split into `train` and `heldout` games written with disjoint vocabularies
(`household_vocab`), and cached: `build_pool` writes the games once under a directory named by
a hash of the settings, and a second call with the same settings loads them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from posttrain.atomic import staged_dir, write_text
from posttrain.envs.household_vocab import VOCABULARIES, Vocabulary
from posttrain.errors import InputError

TASK_TYPES = ("pick_and_place", "find_then_place", "unlock_then_take", "two_object")
SPLITS = ("train", "heldout")
GENERATOR_VERSION = 1
"""Part of the cache key: raise it whenever a change here changes the games written."""
MANIFEST = "manifest.json"
INSTALL_HINT = "pip install 'posttrain[textworld]'"
_LAYOUT_TRIES = 50
"""Seeds tried for a game before its layout is declared impossible to make distinct."""


def require_textworld() -> Any:
    """The `textworld` module, or an ImportError that says how to install it."""
    try:
        import textworld
        import textworld.generator
    except ImportError as error:
        raise ImportError(
            f"the household games need TextWorld, which is not installed: {INSTALL_HINT}"
        ) from error
    return textworld


@dataclass(frozen=True)
class PoolSettings:
    """What a pool of games is generated from; every field is part of the cache key."""

    seed: int = 0
    train_games: int = 16
    heldout_games: int = 8
    min_rooms: int = 2
    max_rooms: int = 3
    distractors: int = 1
    """Portable objects the task does not need, placed in/on random receptacles."""
    task_types: tuple[str, ...] = TASK_TYPES

    def __post_init__(self) -> None:
        object.__setattr__(self, "task_types", tuple(self.task_types))
        self.check()

    def check(self) -> None:
        """An InputError naming the first setting no pool can be built with."""

        def bad(key: str, detail: str) -> InputError:
            return InputError(f"{detail} (got {getattr(self, key)!r})", key=f"household.{key}")

        for key in ("seed", "train_games", "heldout_games", "min_rooms", "max_rooms"):
            if not isinstance(getattr(self, key), int) or isinstance(getattr(self, key), bool):
                raise bad(key, "must be an integer")
        if self.train_games < 1:
            raise bad("train_games", "must be at least 1")
        if self.heldout_games < 0:
            raise bad("heldout_games", "must be at least 0")
        smallest = min(len(v.rooms) for v in VOCABULARIES.values())
        if not 1 <= self.min_rooms <= smallest:
            raise bad("min_rooms", f"must be between 1 and {smallest} (rooms a vocabulary names)")
        if not self.min_rooms <= self.max_rooms <= smallest:
            raise bad("max_rooms", f"must be between min_rooms and {smallest}")
        if not self.task_types:
            raise bad("task_types", "must name at least one task type")
        unknown = [t for t in self.task_types if t not in TASK_TYPES]
        if unknown:
            raise bad("task_types", f"unknown task types {unknown}; known: {list(TASK_TYPES)}")
        # Two task objects plus the distractors must find distinct names in each vocabulary.
        spare = min(len(v.objects) for v in VOCABULARIES.values()) - 2
        if not isinstance(self.distractors, int) or not 0 <= self.distractors <= spare:
            raise bad("distractors", f"must be an integer between 0 and {spare}")

    def key(self) -> str:
        """The cache key: the settings, the generator's version and TextWorld's."""
        textworld = require_textworld()
        blob = json.dumps(
            {"settings": asdict(self), "generator": GENERATOR_VERSION, "tw": textworld.__version__},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PoolSettings:
        """Settings from a config mapping; an unknown key is an InputError naming it."""
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise InputError(f"unknown setting; known: {sorted(known)}", key=f"household.{key}")
        return cls(**values)


@dataclass(frozen=True)
class GameRecord:
    """One generated game as the pool's manifest lists it."""

    game_id: str
    split: str
    task_type: str
    path: str
    """The compiled game (`.z8`; TextWorld's `.json` lies beside it)."""
    goal: str
    walkthrough: tuple[str, ...]
    rooms: tuple[str, ...]
    names: tuple[str, ...]
    """Every entity name in the game: rooms, receptacles, objects, keys."""
    layout: str
    """Rooms, their exits and their receptacles: the identity of the game's map."""
    max_score: int

    def task(self) -> dict[str, Any]:
        """The dataset row the `textworld` environment resets on."""
        return {
            "game": self.path,
            "split": self.split,
            "task_type": self.task_type,
            "game_id": self.game_id,
        }


@dataclass
class GamePool:
    """The games of one setting, loaded from their cache directory."""

    root: Path
    settings: PoolSettings
    games: list[GameRecord] = field(default_factory=list)

    def split(self, name: str) -> list[GameRecord]:
        """The games of split `name` (`train` or `heldout`), in generation order."""
        if name not in SPLITS:
            raise InputError(f"unknown split {name!r}; known: {list(SPLITS)}", key="split")
        return [g for g in self.games if g.split == name]

    def tasks(self, split: str) -> list[dict[str, Any]]:
        """The dataset rows of a split, one per game, for the `textworld` environment."""
        return [g.task() for g in self.split(split)]


def default_cache_root() -> Path:
    """Where pools are cached unless a caller says: `$POSTTRAIN_CACHE/household`."""
    base = os.environ.get("POSTTRAIN_CACHE") or Path.home() / ".cache/posttrain"
    return Path(base) / "household"


def build_pool(
    settings: PoolSettings, cache_root: str | Path | None = None, workers: int = 4
) -> GamePool:
    """The pool for `settings`: loaded from `cache_root/household-<key>` when it is there,
    else generated and compiled into it by `workers` threads (published in one rename, so a
    killed build leaves nothing a later call would trust). `cache_root` defaults to
    `$POSTTRAIN_CACHE/household` (`~/.cache/posttrain/household`)."""
    require_textworld()
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    target = root / f"household-{settings.key()}"
    if not (target / MANIFEST).is_file():
        # A directory without its manifest is not a pool (replaced); with no directory yet,
        # a concurrent builder that publishes first wins and this build is discarded.
        with staged_dir(target, replace=target.exists()) as scratch:
            made = _generate_split(settings, "train", settings.train_games, scratch)
            made += _generate_split(settings, "heldout", settings.heldout_games, scratch)
            records = [record for _, record in made]
            _check_distinct_layouts(records)
            # Compiling (Inform 7, then Inform 6, in subprocesses) is most of the cost: games
            # are generated in order above, so the pool is the same whatever the thread count.
            with ThreadPoolExecutor(max(1, min(workers, len(made)))) as threads:
                list(threads.map(lambda pair: _compile(*pair), made))
            manifest = {
                "settings": asdict(settings),
                "games": [asdict(r) | {"path": Path(r.path).name} for r in records],
            }
            write_text(scratch / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return load_pool(target)


def load_pool(directory: str | Path) -> GamePool:
    """A pool written by `build_pool`."""
    directory = Path(directory)
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        settings = PoolSettings.from_dict(manifest["settings"])
        games = []
        for row in manifest["games"]:
            row = dict(row, path=str(directory / row["path"]))
            for key in ("walkthrough", "rooms", "names"):
                row[key] = tuple(row[key])
            games.append(GameRecord(**row))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"not a household game pool: {error}", path) from error
    return GamePool(directory, settings, games)


# --------------------------------------------------------------------------- one game


@dataclass
class _Furniture:
    name: str
    room: str
    container: bool
    entity: Any


class _Plan:
    """The commands that solve a game, written while walking the layout."""

    def __init__(self, exits: dict[str, list[tuple[str, str]]], start: str) -> None:
        self.exits, self.room = exits, start
        self.commands: list[str] = []
        self.opened: set[str] = set()

    def walk(self, room: str) -> None:
        """Go the shortest way to `room` (breadth-first over the exits)."""
        previous: dict[str, tuple[str, str]] = {}
        queue, seen = deque([self.room]), {self.room}
        while queue:
            here = queue.popleft()
            for direction, there in self.exits[here]:
                if there not in seen:
                    seen.add(there)
                    previous[there] = (here, direction)
                    queue.append(there)
        steps, at = [], room
        while at != self.room:
            at, direction = previous[at]
            steps.append(f"go {direction}")
        self.commands += reversed(steps)
        self.room = room

    def open(self, box: _Furniture) -> None:
        if box.container and box.name not in self.opened:
            self.commands.append(f"open {box.name}")
            self.opened.add(box.name)

    def take(self, item: str, source: _Furniture) -> None:
        self.walk(source.room)
        self.open(source)
        self.commands.append(f"take {item} from {source.name}")

    def place(self, item: str, target: _Furniture) -> None:
        self.walk(target.room)
        self.open(target)
        verb = f"insert {item} into" if target.container else f"put {item} on"
        self.commands.append(f"{verb} {target.name}")


def _generate_split(
    settings: PoolSettings, split: str, count: int, directory: Path
) -> list[tuple[Any, GameRecord]]:
    """`count` games of `split` (not yet compiled), each with a layout no earlier game of the
    split has."""
    from numpy.random import RandomState

    made: list[tuple[Any, GameRecord]] = []
    layouts: set[str] = set()
    for index in range(count):
        task_type = settings.task_types[index % len(settings.task_types)]
        for attempt in range(_LAYOUT_TRIES):
            # Each game has its own seed, so adding games leaves the earlier ones unchanged.
            rng = RandomState([settings.seed, SPLITS.index(split), index, attempt])
            game, facts = _make_game(settings, VOCABULARIES[split], task_type, rng)
            if facts["layout"] not in layouts:
                break
        else:
            raise InputError(
                f"cannot make {count} distinct {split} layouts from "
                f"{settings.min_rooms}-{settings.max_rooms} rooms; allow more rooms or fewer games",
                key=f"household.{split}_games",
            )
        layouts.add(facts["layout"])
        game_id = f"{split}-{index:04d}"
        path = str(directory / f"{game_id}.z8")
        made.append((game, GameRecord(game_id, split, task_type, path, **facts)))
    return made


def _compile(game: Any, record: GameRecord) -> None:
    from textworld.generator import compile_game
    from textworld.generator.game import GameOptions

    options = GameOptions()
    options.path = record.path
    options.force_recompile = True
    compile_game(game, options)


def _check_distinct_layouts(records: list[GameRecord]) -> None:
    train = {r.layout for r in records if r.split == "train"}
    shared = [r.game_id for r in records if r.split == "heldout" and r.layout in train]
    if shared:  # the vocabularies are disjoint, so this is a bug, not a setting
        raise RuntimeError(f"held-out games {shared} repeat a training layout")


def _make_game(
    settings: PoolSettings, vocab: Vocabulary, task_type: str, rng: Any
) -> tuple[Any, dict[str, Any]]:
    """A TextWorld `Game` of `task_type` written with `vocab`, and its manifest facts."""
    from textworld import GameMaker
    from textworld.generator import KnowledgeBase, make_map
    from textworld.generator.game import Event, GameOptions, Quest

    n_rooms = int(rng.randint(settings.min_rooms, settings.max_rooms + 1))
    graph = make_map(n_rooms, rng=rng, possible_door_states=None)  # no doors: rooms open
    room_names = [str(n) for n in rng.choice(vocab.rooms, n_rooms, replace=False)]
    for (_, data), name in zip(graph.nodes.items(), room_names, strict=True):
        data["name"] = name
    options = GameOptions()
    options.kb = KnowledgeBase.default()  # parsed once per process, not per game (~1 s)
    options.seeds = int(rng.randint(2**31 - 1))  # TextWorld's grammar draws the descriptions
    maker = GameMaker(options)
    rooms = {room.name: room for room in maker.import_graph(graph)}
    exits: dict[str, list[tuple[str, str]]] = {name: [] for name in rooms}
    for path in maker.paths:
        exits[path.src.name].append((path.src_exit, path.dest.name))
        exits[path.dest.name].append((path.dest_exit, path.src.name))
    names = {room.id: room.name for room in rooms.values()}

    def new(kind: str, name: str) -> Any:
        entity = maker.new(type=kind, name=name)
        names[entity.id] = name
        return entity

    # One container (closed, as in ALFWorld) and one surface per room.
    containers = rng.choice(vocab.containers, n_rooms, replace=False)
    supporters = rng.choice(vocab.supporters, n_rooms, replace=False)
    furniture: list[_Furniture] = []
    for room, box, surface in zip(rooms.values(), containers, supporters, strict=True):
        entity = new("c", str(box))
        entity.add_property("closed")
        furniture.append(_Furniture(str(box), room.name, True, entity))
        furniture.append(_Furniture(str(surface), room.name, False, new("s", str(surface))))
        room.add(furniture[-2].entity, furniture[-1].entity)
    start = room_names[int(rng.randint(n_rooms))]
    maker.set_player(rooms[start])
    plan = _Plan(exits, start)

    def pick(candidates: list[_Furniture]) -> _Furniture:
        return candidates[int(rng.randint(len(candidates)))]

    item_names = [str(n) for n in rng.choice(vocab.objects, 2 + settings.distractors, False)]
    items = {name: new("o", name) for name in item_names}
    boxes = [f for f in furniture if f.container]
    surfaces = [f for f in furniture if not f.container]
    # Per quest: (relation, item, holder) of its goal and the index of the command meeting it.
    goals: list[tuple[str, Any, Any, int]] = []
    if task_type == "unlock_then_take":
        item, locked, spot = item_names[0], pick(boxes), pick(surfaces)
        locked.entity.remove_property("closed")
        locked.entity.add_property("locked")
        key_name = str(vocab.keys[int(rng.randint(len(vocab.keys)))])
        key = new("k", key_name)
        maker.add_fact("match", key, locked.entity)
        spot.entity.add(key)
        locked.entity.add(items[item])
        plan.take(key_name, spot)
        plan.walk(locked.room)
        plan.commands.append(f"unlock {locked.name} with {key_name}")
        plan.take(item, locked)
        goals.append(("in", items[item], maker.inventory, len(plan.commands) - 1))
        goal = f"take the {item} from the {locked.name}"
        task_items = [item]
    else:
        if task_type == "two_object":
            task_items, target = item_names[:2], pick(furniture)
            others = [f for f in furniture if f is not target]
            sources = [pick(others), pick(others)]
        else:  # the object lies on a surface, or hides in a (closed) container
            task_items = item_names[:1]
            sources = [pick(surfaces if task_type == "pick_and_place" else boxes)]
            target = pick([f for f in furniture if f is not sources[0]])
        for item, source in zip(task_items, sources, strict=True):
            source.entity.add(items[item])
            plan.take(item, source)
            plan.place(item, target)
            relation = "in" if target.container else "on"
            goals.append((relation, items[item], target.entity, len(plan.commands) - 1))
        where = "in" if target.container else "on"
        goal = f"put the {' and the '.join(task_items)} {where} the {target.name}"
    for name in item_names[len(task_items) :]:  # distractors
        pick(furniture).entity.add(items[name])

    actions = _match_actions(maker, names, plan.commands)
    quests = [
        Quest(win_events=[Event(actions[: last + 1], {maker.new_fact(relation, item, holder)})])
        for relation, item, holder, last in goals
    ]
    maker.quests = quests
    game = maker.build()
    game.objective = goal[0].upper() + goal[1:] + "."
    walkthrough = game.walkthrough
    if not walkthrough:
        raise RuntimeError(f"TextWorld found no winning policy for {plan.commands}")
    layout = ";".join(
        f"{room}[{','.join(sorted(f.name for f in furniture if f.room == room))}]"
        f"({','.join(sorted(f'{d}:{there}' for d, there in exits[room]))})"
        for room in sorted(rooms)
    )
    facts = {
        "goal": game.objective,
        "walkthrough": tuple(walkthrough),
        "rooms": tuple(sorted(rooms)),
        "names": tuple(sorted(set(names.values()))),
        "layout": layout,
        "max_score": int(game.max_score),
    }
    return game, facts


def _match_actions(maker: Any, names: dict[str, str], commands: list[str]) -> list[Any]:
    """TextWorld's logic actions for `commands`, each the one action the state allows whose
    command text it is (the inventory is bound explicitly: a fresh state has no variable
    for it until something is carried)."""
    from textworld.logic import Placeholder, Variable

    state = maker.state.copy()
    inventory = {Placeholder("I", "I"): Variable("I", "I")}
    rules = list(maker.options.kb.rules.values())
    actions = []
    for command in commands:
        allowed = list(state.all_applicable_actions(rules, inventory))
        matches = [a for a in allowed if a.format_command(names) == command]
        if len(matches) != 1:
            texts = sorted(a.format_command(names) for a in allowed)
            raise RuntimeError(f"planned command {command!r} is not one action of {texts}")
        state.apply(matches[0])
        actions.append(matches[0])
    return actions
