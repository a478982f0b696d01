"""Train / test / ood items of rendered scenes, and their data directory.

Train and test come from different random streams of the same `Layout` and share no scene
graph (a test scene identical to a training one is drawn again). The `ood` split differs on
purpose: a larger grid (5x5 instead of 4x4, so new positions and layouts), 7-10 objects where
training never has more than 6, charts of 5-6 bars (training 3-4) and tables of 4-5 rows and
3 columns (training 2-3 rows, 2 columns).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from posttrain import atomic
from posttrain.data.scenes.generate import Layout, make_scene
from posttrain.data.scenes.graph import KINDS, Scene, scene_from_dict
from posttrain.data.scenes.questions import propose_questions
from posttrain.data.scenes.render import scene_png

SPLITS = ("train", "test", "ood")
OOD_LAYOUT = Layout(grid=5, objects=(7, 10), bars=(5, 6), table_rows=(4, 5), table_columns=3)


@dataclass(frozen=True)
class SceneConfig:
    """How many scenes per split, questions per scene, and what the scenes look like."""

    seed: int = 0
    train_scenes: int = 60
    test_scenes: int = 20
    ood_scenes: int = 20
    questions_per_scene: int = 3
    image_size: int = 128
    kinds: tuple[str, ...] = KINDS
    layout: Layout = field(default_factory=Layout)
    ood_layout: Layout = OOD_LAYOUT

    def __post_init__(self) -> None:
        for name in ("train_scenes", "test_scenes", "ood_scenes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.questions_per_scene < 1:
            raise ValueError(f"questions_per_scene must be >= 1, got {self.questions_per_scene}")
        if not 32 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be 32..1024 pixels, got {self.image_size}")
        if not self.kinds or set(self.kinds) - set(KINDS):
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {self.kinds}")


def _scenes(config: SceneConfig) -> dict[str, list[Scene]]:
    counts = {"train": config.train_scenes, "test": config.test_scenes, "ood": config.ood_scenes}
    seen: set[str] = set()
    scenes: dict[str, list[Scene]] = {}
    for split in SPLITS:
        base = config.ood_layout if split == "ood" else config.layout
        layout = replace(base, size=config.image_size)
        rng = random.Random(f"{config.seed}:{split}")  # one stream per split
        scenes[split] = []
        while len(scenes[split]) < counts[split]:
            kind = config.kinds[len(scenes[split]) % len(config.kinds)]
            scene = make_scene(rng, kind, layout)
            if scene.to_json() not in seen:  # no scene graph in two places
                seen.add(scene.to_json())
                scenes[split].append(scene)
    return scenes


def make_scene_items(config: SceneConfig) -> dict[str, list[dict[str, Any]]]:
    """Items per split (common contract 3); `image` names the PNG `write_scene_data` writes."""
    items: dict[str, list[dict[str, Any]]] = {}
    for split, scenes in _scenes(config).items():
        rng = random.Random(f"{config.seed}:{split}:questions")
        items[split] = []
        for index, scene in enumerate(scenes):
            scene_id = f"{split}-{index:05d}"
            asked = propose_questions(scene, rng, config.questions_per_scene)
            for q, (question, gold) in enumerate(asked):
                items[split].append(
                    {
                        "id": f"{scene_id}-{q}",
                        "scene_id": scene_id,
                        "split": split,
                        "image": f"images/{scene_id}.png",
                        "question": question,
                        "answer": gold.answer,
                        "choices": gold.choices,
                        "task": gold.task,
                        "steps": gold.steps,
                        "scene": scene.to_dict(),
                    }
                )
    return items


def write_scene_data(config: SceneConfig, out_dir: str | Path) -> dict[str, Path]:
    """`<split>.jsonl` per split and `images/<scene_id>.png`; returns split -> JSONL path."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, items in make_scene_items(config).items():
        for item in items:
            if item["id"].endswith("-0"):  # one PNG per scene, written with its first question
                atomic.write_bytes(out / item["image"], scene_png(scene_from_dict(item["scene"])))
        paths[split] = out / f"{split}.jsonl"
        atomic.write_text(paths[split], "".join(json.dumps(i) + "\n" for i in items))
    return paths
