"""StoryReward end to end: story preference data, a Bradley–Terry reward model, StoryRMB-format
evaluation against baselines, and best-of-n selection.

`posttrain storyreward run` wires the stages: build preference pairs from training premises
and a held-out benchmark (one chosen, three rejected) plus best-of-n candidate pools from
disjoint test premises (`posttrain.data.stories`); build a tiny sequence-classification
model whose tokenizer is trained on the training stories, and train it as a reward model
with TRL's RewardTrainer (`posttrain.rewards.reward_model`); score the benchmark with the
trained model, the same model untrained, the length and vocabulary heuristics and random
scores (`posttrain.eval.rm_bench`, tie credit); pick the best of n candidates with each
scorer, judged by the generator's flaw labels (`posttrain.eval.best_of_n`); and write the
table, per-dimension bars and best-of-n curves into the run's report. Every stage resumes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from posttrain.data.io import read_jsonl
from posttrain.data.stories import StoryWorldConfig, build_story_data
from posttrain.eval.best_of_n import best_of_n_quality
from posttrain.eval.rm_bench import evaluate_scorer, load_instances
from posttrain.eval.set_scorers import (
    LengthScorer,
    Pointwise,
    RandomScorer,
    SetScorer,
    VocabularyScorer,
)
from posttrain.recipes.base import Recipe
from posttrain.report import plot_bars, plot_curves
from posttrain.rewards.reward_model import RewardModel, RewardModelConfig, train_reward_model
from posttrain.runs import Run


def _demo_reward_model() -> RewardModelConfig:
    return RewardModelConfig(
        model_size="micro",
        vocab_size=1024,
        epochs=2.0,
        batch_size=16,
        learning_rate=1e-3,
        max_length=384,  # prompt + story: about 200 tokens with a 1,024-token vocabulary
    )


@dataclass
class StoryRewardRunConfig:
    world: StoryWorldConfig = field(default_factory=StoryWorldConfig)
    """Premises, pairs per premise, rejected per instance, best-of-n pool size, seed."""
    reward_model: RewardModelConfig = field(default_factory=_demo_reward_model)
    """`train_file`, `output_dir` (and `model`, unless given) are set by the recipe; a tiny
    model's tokenizer (`vocab_size`) is trained on the training stories."""
    best_of_n: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    """Candidate counts to select among (at most `world.pool_size`)."""
    run_name: str = "storyreward"
    runs_root: str = "runs"


class StoryRewardRecipe(Recipe):
    """The stages in order; each returns what the next needs and skips work already done."""

    title = "StoryReward"
    rerun_may_change = None
    """No rerun guard (as before the recipe base): a rerun reuses every finished stage even
    when its settings changed."""
    config: StoryRewardRunConfig

    def __init__(self, config: StoryRewardRunConfig, console: Console | None = None) -> None:
        super().__init__(config, console)
        self.data_dir = self.run.path / "data"

    def check(self, config: StoryRewardRunConfig) -> None:
        if not config.best_of_n or min(config.best_of_n) < 1:
            raise ValueError(f"best_of_n: candidate counts must be >= 1, got {config.best_of_n}")
        if max(config.best_of_n) > config.world.pool_size:
            raise ValueError(
                f"best_of_n: {max(config.best_of_n)} exceeds world.pool_size="
                f"{config.world.pool_size}"
            )

    # ------------------------------------------------------------------ stages

    def data(self) -> dict[str, Any]:
        world = self.config.world
        self.built_dir("data", "stats.json", lambda out: build_story_data(out, config=world))
        return json.loads((self.data_dir / "stats.json").read_text())

    def base_model(self) -> str:
        """The reward model before training: a given checkpoint, or a tiny seq-cls model
        whose tokenizer is trained on the training pairs (the untrained baseline)."""
        if self.config.reward_model.model:
            return self.config.reward_model.model

        def corpus() -> list[str]:
            rows = read_jsonl(self.data_dir / "pairs.train.jsonl")
            return [row[key] for row in rows for key in ("prompt", "chosen", "rejected")]

        return self.tiny_model(
            "base-model",
            corpus,
            size=self.config.reward_model.model_size,
            vocab_size=self.config.reward_model.vocab_size,
            kind="seq-cls",
            seed=self.config.reward_model.seed,
        )

    def train(self, base: str) -> Path:
        settings = replace(
            self.config.reward_model,
            model=base,
            train_file=str(self.data_dir / "pairs.train.jsonl"),
            output_dir=str(self.run.path / "reward-model"),
        )
        final = Path(settings.output_dir) / "final"
        if not (final / "reward_model.json").exists():
            with Run(self.run.path / "reward-model") as log:
                train_reward_model(settings, log)
        return final

    def scorers(self, base: str, trained: Path) -> dict[str, SetScorer]:
        return {
            "random": RandomScorer(seed=self.config.world.seed),
            "length": LengthScorer(),
            "vocabulary": VocabularyScorer(),
            "untrained-rm": Pointwise(RewardModel(base), name="untrained-rm"),
            "storyreward-rm": Pointwise(RewardModel(trained), name="storyreward-rm"),
        }

    def bench(self, scorers: dict[str, SetScorer]) -> dict[str, dict[str, Any]]:
        instances = load_instances(self.data_dir / "bench.test.jsonl")
        return {
            name: evaluate_scorer(scorer, instances, self.run.path / "bench" / name)
            for name, scorer in scorers.items()
        }

    def best_of_n(self, scorers: dict[str, SetScorer]) -> dict[str, dict[str, Any]]:
        pools = read_jsonl(self.data_dir / "pools.test.jsonl")
        return {
            name: best_of_n_quality(scorer, pools, self.config.best_of_n)
            for name, scorer in scorers.items()
        }

    # ------------------------------------------------------------------ whole run

    def stages(self) -> dict[str, Any]:
        self.say("[bold]1/5 data[/]: story premises, preference pairs, a held-out benchmark")
        stats = self.data()
        self.say(
            f"    {stats['pairs']} training pairs, {stats['bench_instances']} benchmark"
            f" instances, mean words chosen {stats['mean_words']['bench_chosen']} /"
            f" rejected {stats['mean_words']['bench_rejected']}"
        )
        self.say("[bold]2/5 reward model[/]: Bradley–Terry with TRL's RewardTrainer")
        base = self.base_model()
        trained = self.train(base)
        trained_on = json.loads((trained / "reward_model.json").read_text())
        self.say(
            f"    {trained} ({trained_on['steps']} steps on {trained_on['n_train_kept']} of"
            f" {trained_on['n_train']} pairs, {trained_on['train_seconds']:.0f}s)"
        )
        scorers = self.scorers(base, trained)
        self.say("[bold]3/5 benchmark[/]: tie-credit accuracy, 1 chosen vs rejected")
        bench = self.bench(scorers)
        self.say("[bold]4/5 best-of-n[/]: picks judged by the generator's flaw labels")
        best = self.best_of_n(scorers)
        self.say("[bold]5/5 report[/]")
        self.console.print(render_table(bench, best))
        figures = self.figures(bench, best)
        self.run.write_json("results.json", {"bench": bench, "best_of_n": best})
        return {
            "data": stats,
            "bench": bench,
            "best_of_n": best,
            "figures": [str(f) for f in figures],
        }

    def figures(self, bench: dict[str, dict[str, Any]], best: dict[str, dict[str, Any]]):
        """Pairwise accuracy per flaw dimension (bars) and best-of-n quality against n."""
        dimensions = sorted({d for r in bench.values() for d in r["pairwise_per_dimension"]})
        groups = {
            d: {name: r["pairwise_per_dimension"][d]["accuracy"] for name, r in bench.items()}
            for d in dimensions
        }
        bars = plot_bars(
            groups,
            self.run.path / "bench_dimensions.png",
            "chosen beats a rejected story, by the flaw's dimension",
            reference=0.5,
        )
        lines = {
            name: ([r["n"] for r in rows.values()], [r["selected_unflawed"] for r in rows.values()])
            for name, rows in best.items()
        }
        first = next(iter(best.values())).values()
        lines["chance"] = ([r["n"] for r in first], [r["random_unflawed"] for r in first])
        curves = plot_curves(
            {"best-of-n: share of unflawed picks": lines},
            self.run.path / "best_of_n.png",
            xlabel="n",
        )
        return [bars, curves]


def render_table(bench: dict[str, dict[str, Any]], best: dict[str, dict[str, Any]]) -> Table:
    """One row per scorer: benchmark accuracy (tie credit), pairwise accuracy per flaw
    dimension, and the unflawed share of its best-of-n picks at the largest n."""
    dimensions = sorted({d for r in bench.values() for d in r["pairwise_per_dimension"]})
    first = next(iter(best.values()))
    top = max(row["n"] for row in first.values())
    table = Table(
        title="StoryReward: StoryRMB-format accuracy (tie credit), pairwise accuracy by the"
        f" flaw's dimension, best-of-{top}"
    )
    for column in ("scorer", "accuracy", *dimensions, f"best-of-{top} unflawed"):
        table.add_column(column)
    for name, result in bench.items():
        table.add_row(
            name,
            f"{result['accuracy']:.1%}",
            *(f"{result['pairwise_per_dimension'][d]['accuracy']:.1%}" for d in dimensions),
            f"{best[name][f'n={top}']['selected_unflawed']:.1%}",
        )
    table.add_section()
    table.add_row(
        "chance",
        f"{next(iter(bench.values()))['random_baseline']:.1%}",
        *("50.0%" for _ in dimensions),
        f"{first[f'n={top}']['random_unflawed']:.1%}",
    )
    return table
