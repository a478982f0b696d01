"""`posttrain.recipes.base.Recipe`: the run directory, the checks before anything is written,
the rerun guard, cached stages that resume, and the summary and report it ends with. A toy
recipe whose stages count their own work stands in for a real one."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from posttrain.recipes.base import Recipe


@dataclass
class ToyConfig:
    size: int = 3
    seeds: list[int] = field(default_factory=lambda: [0])
    run_name: str = "toy"
    runs_root: str = "runs"


class ToyRecipe(Recipe):
    title = "Toy recipe"
    rerun_may_change = ("seeds",)

    def __init__(self, config: ToyConfig, console: Console | None = None) -> None:
        super().__init__(config, console)
        self.work: list[str] = []

    def check(self, config: ToyConfig) -> None:
        if config.size < 1:
            raise ValueError(f"size: at least 1, got {config.size}")

    def squares(self) -> list[int]:
        def compute() -> list[int]:
            self.work.append("squares")
            return [i * i for i in range(self.config.size)]

        return self.cached_json("squares.json", compute)

    def table(self) -> Path:
        def build(scratch: Path) -> None:
            self.work.append("table")
            (scratch / "rows.txt").write_text("\n".join(map(str, self.squares())))
            (scratch / "done").write_text("")

        return self.built_dir("table", "done", build)

    def stages(self) -> dict[str, Any]:
        self.say("toy: squares")
        return {"squares": self.squares(), "table": str(self.table())}


def quiet() -> Console:
    return Console(quiet=True)


def toy(tmp_path: Path, **settings: Any) -> ToyRecipe:
    return ToyRecipe(ToyConfig(runs_root=str(tmp_path), **settings), quiet())


def test_a_run_writes_config_stages_summary_and_report(tmp_path):
    summary = toy(tmp_path)()
    run = tmp_path / "toy"
    assert yaml.safe_load((run / "config.yaml").read_text())["size"] == 3
    saved = json.loads((run / "summary.json").read_text())
    assert saved == summary
    assert list(saved) == ["run", "squares", "table", "seconds"]  # run first, seconds last
    assert saved["run"] == str(run) and saved["squares"] == [0, 1, 4]
    assert (run / "table" / "rows.txt").read_text() == "0\n1\n4"
    assert "<title>Toy recipe</title>" in (run / "report.html").read_text()


def test_a_rerun_reuses_every_finished_stage(tmp_path):
    first = toy(tmp_path)
    first()
    assert first.work == ["squares", "table"]
    again = toy(tmp_path, seeds=[0, 1])  # a key in rerun_may_change may differ
    assert again()["squares"] == [0, 1, 4]
    assert again.work == []


def test_a_stage_that_fails_leaves_nothing_to_reuse(tmp_path):
    recipe = toy(tmp_path)

    def broken(scratch: Path) -> None:
        (scratch / "half").write_text("written before the failure")
        raise RuntimeError("killed")

    def fails() -> list[int]:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        recipe.built_dir("table", "done", broken)
    with pytest.raises(RuntimeError):
        recipe.cached_json("squares.json", fails)
    # No stage output, not even a scratch directory: only what Run.create writes.
    assert {p.name for p in recipe.run.path.iterdir()} == {"config.yaml", "metrics.jsonl"}
    recipe()  # the rerun does the work
    assert recipe.work == ["squares", "table"]


def test_bad_settings_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="size: at least 1"):
        toy(tmp_path, size=0)
    assert not any(tmp_path.iterdir())


def test_other_settings_on_a_rerun_are_refused_and_change_nothing(tmp_path):
    toy(tmp_path)()
    config = (tmp_path / "toy" / "config.yaml").read_text()
    with pytest.raises(ValueError, match="size: differ from .*config.yaml.*run_name"):
        toy(tmp_path, size=4)
    assert (tmp_path / "toy" / "config.yaml").read_text() == config
    toy(tmp_path, size=4, run_name="toy-4")()  # another run directory starts afresh


def test_a_recipe_without_the_guard_and_one_with_an_extra_rerun_check(tmp_path):
    class Unguarded(ToyRecipe):
        rerun_may_change = None

    class Pinned(ToyRecipe):
        def check_rerun(self, saved: dict, now: dict, path: Path) -> None:
            if saved["seeds"][0] != now["seeds"][0]:
                raise ValueError(f"seeds: {path} started from seed {saved['seeds'][0]}")

    toy(tmp_path)()
    Unguarded(ToyConfig(size=4, runs_root=str(tmp_path)), quiet())  # not refused
    Pinned(ToyConfig(size=4, seeds=[0, 1], runs_root=str(tmp_path)), quiet())
    with pytest.raises(ValueError, match="seeds: .* started from seed 0"):
        Pinned(ToyConfig(size=4, seeds=[1], runs_root=str(tmp_path)), quiet())


def test_a_tiny_model_is_built_once_from_texts_read_only_then(tmp_path):
    recipe = toy(tmp_path)
    reads = []

    def texts() -> list[str]:
        reads.append(1)
        return [f"the {i} cats sat on {i + 1} mats" for i in range(50)]

    path = recipe.tiny_model("base-model", texts, size="nano", vocab_size=300, seed=0)
    assert path == str(recipe.run.path / "base-model") and reads == [1]
    assert (Path(path) / "config.json").exists()
    assert recipe.tiny_model("base-model", texts, size="nano", vocab_size=300) == path
    assert reads == [1]


def test_an_rl_run_that_finished_is_not_trained_again(tmp_path, monkeypatch):
    from posttrain.rl.config import RLConfig

    trained = []

    class Trainer:
        def __init__(self, settings: RLConfig, rewards: object = None) -> None:
            self.settings = settings

        def train(self) -> None:
            trained.append((self.settings.run_name, self.settings.runs_root))
            final = Path(self.settings.runs_root) / self.settings.run_name / "checkpoints"
            (final / "final").mkdir(parents=True)

    import posttrain.rl.trainer

    monkeypatch.setattr(posttrain.rl.trainer, "RLTrainer", Trainer)
    recipe = toy(tmp_path)
    assert not recipe.rl_finished("rl-a")
    assert recipe.train_rl("rl-a", RLConfig()) == recipe.run.path / "rl-a"
    assert trained == [("rl-a", str(recipe.run.path))]  # placed inside the run directory
    assert recipe.rl_finished("rl-a")
    recipe.train_rl("rl-a", RLConfig())
    assert len(trained) == 1
