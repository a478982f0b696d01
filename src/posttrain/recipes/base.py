"""What every recipe shares: a run directory, stages that resume, a summary and a report.

A recipe wires stages into one run directory, `<runs_root>/<run_name>/`: the resolved
`config.yaml`, each stage's output, `summary.json` and `report.html`. `Recipe` is that
frame, so a recipe module holds only its config dataclass and its stages:

* the config is a dataclass with `run_name` and `runs_root` (`RecipeConfig`), loaded by
  the CLI from YAML and `--set`;
* `check` refuses settings the recipe cannot run with (a ValueError, which the CLI prints
  as one line with exit 2) before anything is written;
* the rerun guard: a rerun reuses every finished stage, so it is refused (a ValueError
  naming the settings) when settings other than `rerun_may_change` differ from the saved
  `config.yaml`; otherwise outputs of two configurations would be mixed in one run;
* cached stages: `cached_json`, `built_dir`, `tiny_model`, `logged_warm_start` and
  `train_rl` skip work whose output is already there and publish new output atomically
  (`posttrain.atomic`), so a killed run resumes where it stopped;
* calling the recipe runs `stages()` and writes `summary.json` (the run directory, what
  the stages returned, the seconds taken) and `report.html`.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import yaml
from rich.console import Console

from posttrain import atomic
from posttrain.config import to_dict
from posttrain.report import write_report
from posttrain.runs import Run, require_unchanged

if TYPE_CHECKING:
    from posttrain.rewards.reward_set import RewardSet
    from posttrain.rl.config import RLConfig
    from posttrain.sft.warm_start import WarmStartConfig, WarmStartResult

T = TypeVar("T")


class RecipeConfig(Protocol):
    """A recipe's config dataclass: its own settings, then where the run directory goes."""

    run_name: str
    """The run directory's name under `runs_root` (one name, no path separator)."""
    runs_root: str


class Recipe(ABC):
    """One recipe run: subclasses set `title`, may set `check`, `check_rerun` and
    `rerun_may_change`, and write `stages()`; calling the recipe runs it."""

    title: ClassVar[str]
    """The report's title."""
    rerun_may_change: ClassVar[tuple[str, ...] | None] = ()
    """Top-level config keys a rerun may change: they only add work (another seed, another
    bias) or decide what is measured again. None: no rerun guard."""

    def __init__(self, config: RecipeConfig, console: Console | None = None) -> None:
        self.check(config)
        self._refuse_other_settings(config)
        self.config = config
        self.console = console or Console()
        self.run = Run.create(config.run_name, config, root=config.runs_root)

    # ------------------------------------------------------------------ what a recipe sets

    def check(self, config: RecipeConfig) -> None:  # noqa: B027 - optional; accepts by default
        """Raise a ValueError naming a setting the recipe cannot run with."""

    def check_rerun(  # noqa: B027 - optional hook; accepts by default
        self, saved: dict[str, Any], now: dict[str, Any], path: Path
    ) -> None:
        """Refuse a rerun over the saved config `saved` (from `path`) that a change of a key in
        `rerun_may_change` still spoils (a ValueError); `now` is the new config as data."""

    @abstractmethod
    def stages(self) -> dict[str, Any]:
        """Run every stage in order; return what `summary.json` records besides the run
        directory and the seconds taken."""

    @classmethod
    def flag_values(cls, key: str, words: list[str]) -> list[str]:
        """The values of config key `key` that a run-command flag's words stand for (a recipe
        may expand a word such as `all`); see `posttrain.recipes.RecipeFlag`."""
        return words

    # ------------------------------------------------------------------ running

    def say(self, message: str) -> None:
        self.console.print(message)

    def __call__(self) -> dict[str, Any]:
        started = time.perf_counter()
        body = self.stages()
        summary = {
            "run": str(self.run.path),
            **body,
            "seconds": round(time.perf_counter() - started, 1),
        }
        self.run.write_json("summary.json", summary)
        self.run.close()
        self.say(f"report: {self.report()}")
        return summary

    def report(self) -> Path:
        """(Re)write the run's report.html under `title`."""
        return write_report(self.run.path, title=self.title)

    def _refuse_other_settings(self, config: RecipeConfig) -> None:
        """The rerun guard, before `Run.create` overwrites the saved config.yaml."""
        if self.rerun_may_change is None:
            return
        path = Path(config.runs_root) / config.run_name / "config.yaml"
        if not path.exists():
            return
        now = to_dict(config)
        self.check_rerun(yaml.safe_load(path.read_text()) or {}, now, path)
        require_unchanged(path, now, ignore=self.rerun_may_change)

    # ------------------------------------------------------------------ cached stages

    def cached_json(self, name: str, compute: Callable[[], T]) -> T:
        """The JSON file `name` in the run directory, computed and written (atomically) only
        when it is not there yet."""
        path = self.run.path / name
        if path.exists():
            return json.loads(path.read_text())
        result = compute()
        atomic.write_text(path, json.dumps(result, indent=2))
        return result

    def built_dir(self, name: str, marker: str, build: Callable[[Path], Any]) -> Path:
        """The directory `name` in the run directory; unless it holds `marker`, `build` fills
        a scratch directory that is then published whole (a kill leaves none)."""
        path = self.run.path / name
        if not (path / marker).exists():
            with atomic.staged_dir(path) as scratch:
                build(scratch)
        return path

    def tiny_model(self, name: str, texts: Callable[[], list[str]], **settings: Any) -> str:
        """A tiny model built once in the run directory (`posttrain.models.tiny`), its
        tokenizer trained on `texts()` (read only when it is built); `settings` are
        `build_tiny_model`'s (size, vocab_size, kind, seed, max_positions)."""

        def build(scratch: Path) -> None:
            from posttrain.models.tiny import build_tiny_model

            build_tiny_model(scratch, texts(), **settings)

        return str(self.built_dir(name, "config.json", build))

    def logged_warm_start(self, name: str, settings: WarmStartConfig) -> WarmStartResult:
        """The warm start of `settings` (cached across runs by content hash), its training
        curve logged in the run directory's `name`: once, also on a rerun that finds it
        cached."""
        from posttrain.sft.warm_start import warm_start

        with Run(self.run.path / name) as log:
            log.truncate_metrics_after(-1)
            return warm_start(settings, log)

    def rl_finished(self, name: str) -> bool:
        """Whether the RL run `name` in the run directory saved its final checkpoint."""
        return (self.run.path / name / "checkpoints" / "final").exists()

    def train_rl(self, name: str, settings: RLConfig, rewards: RewardSet | None = None) -> Path:
        """The RL run `name` in the run directory, trained with `settings` unless it finished;
        an unfinished one resumes from its last checkpoint. Returns its directory. `rewards`:
        a reward set built by the recipe (e.g. with a judge), instead of `settings.rewards`'
        registered functions."""
        settings = replace(settings, run_name=name, runs_root=str(self.run.path))
        if not self.rl_finished(name):
            from posttrain.rl.trainer import RLTrainer

            RLTrainer(settings, rewards=rewards).train()
        return self.run.path / name
