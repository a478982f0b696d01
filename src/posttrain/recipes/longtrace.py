"""LongTraceRL end to end: data, warm start, RL under two rewards, held-out evaluation, report.

`posttrain longtrace run` (and `make demo`) wires the stages: build multi-hop questions in
contexts of tiered distractors (`posttrain.data.longtrace`), train a tiny policy's tokenizer
on that world and warm-start it on the answer format (`posttrain.sft.warm_start`), train
it with the RL engine once per reward variant and seed (outcome-only against the positive-only
rubric reward by default), then evaluate every policy on the same held-out questions under
each distractor setting (`posttrain.eval.longtrace_policy`), next to the training-free BM25
chain reader. Every stage resumes: a rerun reuses the data, the cached warm start, finished
RL runs (and continues unfinished ones from their last checkpoint) and finished evaluations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from posttrain import atomic
from posttrain.data.io import read_jsonl, write_jsonl
from posttrain.data.longtrace import (
    SETTINGS,
    LongTraceBuildConfig,
    WorldSettings,
    build_longtrace,
    sft_rows,
    tokenizer_corpus,
)
from posttrain.eval.longtrace_policy import evaluate_policy, mean_over_seeds
from posttrain.eval.longtrace_reader import reader_accuracy
from posttrain.eval.significance import compare_runs, describe
from posttrain.recipes.base import Recipe
from posttrain.report import plot_curves
from posttrain.rewards.reward_set import RewardSet
from posttrain.rewards.rubric import with_judged_outcome
from posttrain.rewards.spec import get_reward
from posttrain.rl.config import DataConfig, OptimConfig, RLConfig, RolloutConfig
from posttrain.runs import read_metrics
from posttrain.sft.warm_start import WarmStartConfig

MONITORED = ["longtrace_outcome", "longtrace_rubric_recall"]
"""Scored on every rollout and evaluation with weight 0, so that all variants' curves show
the same accuracy and recall whatever they are trained on."""


def _demo_data() -> LongTraceBuildConfig:
    # Short documents, 2-3 hops and 300-token contexts (about 8 documents): prompts near
    # 350 tokens, the shortest that hold a 3-hop chain's gold documents and distractors.
    return LongTraceBuildConfig(
        n=1000,
        n_test=100,
        hops=[2, 3],
        context_tokens=300,
        eval_settings=["tiered", "random"],
        world=WorldSettings(doc_min_words=0, doc_max_words=20),
    )


def _demo_warm_start() -> WarmStartConfig:
    # 300 steps teach the answer format; on the held-out split the micro policy still
    # answers no held-out question (docs/systems/longtrace.md), so RL has no held-out signal.
    return WarmStartConfig(steps=300, batch_size=16, learning_rate=2e-3, max_length=512)


def _demo_rl() -> RLConfig:
    return RLConfig(
        steps=30,
        prompts_per_step=4,
        rollout=RolloutConfig(n=8, max_tokens=32),
        optim=OptimConfig(lr=3e-4),
        eval_every=10,
        eval_size=100,
        save_every=10,
    )


@dataclass
class LongTraceRunConfig:
    data: LongTraceBuildConfig = field(default_factory=_demo_data)
    """`out` and `tokenizer` are set by the recipe (the run's data/ and base-model/)."""
    model_size: str = "micro"
    """Tiny policy built when `warm_start.base_model` is unset: nano, micro, mini or small."""
    vocab_size: int = 2048
    """Its tokenizer, trained on the world's documents: most names become one token."""
    max_positions: int = 640
    warm_start: WarmStartConfig = field(default_factory=_demo_warm_start)
    """`train_file` is set by the recipe; `base_model` may name a real checkpoint."""
    rl: RLConfig = field(default_factory=_demo_rl)
    """Every RL setting; `model`, `data`, `rewards`, `seed`, `run_name` and `runs_root` are
    set by the recipe for each variant and seed."""
    variants: dict[str, str] = field(
        default_factory=lambda: {"outcome": "longtrace_outcome", "rubric": "longtrace_rubric"}
    )
    """Variant name -> the registered reward it trains on."""
    judge: str | None = None
    """A chat model spec (`scripted:NAME`, `openai:MODEL[@BASE_URL]`, a model directory) that
    decides the outcome o of every LongTraceRL reward during RL, trained and monitored
    (`JudgeOutcome`); None: the rule, `outcome_exact`. Held-out evaluation stays exact-match,
    so results with and without a judge compare."""
    seeds: list[int] = field(default_factory=lambda: [0])
    eval_max_tokens: int = 32
    run_name: str = "longtrace"
    runs_root: str = "runs"


class LongTraceRecipe(Recipe):
    """The stages in order; each returns what the next needs and skips work already done."""

    title = "LongTraceRL"
    rerun_may_change = ("seeds", "variants")
    """Seeds and new variants only add policies; an existing variant's reward may not
    change (`check_rerun`)."""
    config: LongTraceRunConfig

    def __init__(self, config: LongTraceRunConfig, console: Console | None = None) -> None:
        super().__init__(config, console)
        self.data_dir = self.run.path / "data"

    def check(self, config: LongTraceRunConfig) -> None:
        if not config.variants:
            raise ValueError("variants: name at least one reward variant to train")
        if not config.seeds:
            raise ValueError("seeds: name at least one seed")
        if not config.data.eval_settings:
            raise ValueError("data.eval_settings: name at least one distractor setting")
        for setting in [config.data.distractors, *config.data.eval_settings]:
            if setting not in SETTINGS:
                raise ValueError(
                    f"unknown distractor setting {setting!r}; expected one of {SETTINGS}"
                )
        for variant, reward in config.variants.items():
            try:
                get_reward(reward)
            except ValueError as err:
                raise ValueError(f"variants.{variant}: {err}") from None
        if config.judge is not None:
            from posttrain.models.chat.spec import parse_chat_spec

            try:
                parse_chat_spec(config.judge)
            except ValueError as err:
                raise ValueError(f"judge: {err}") from None

    def check_rerun(self, saved: dict[str, Any], now: dict[str, Any], path: Path) -> None:
        """A variant already trained keeps its reward: its finished runs would be reused."""
        for variant, reward in saved.get("variants", {}).items():
            if now["variants"].get(variant, reward) != reward:
                raise ValueError(
                    f"variants.{variant}: {path} trained it on {reward!r}, not"
                    f" {now['variants'][variant]!r}; name the variant anew or set another run_name"
                )

    # ------------------------------------------------------------------ stages

    def base_model(self, seed: int) -> str:
        """The policy to warm-start: a given checkpoint, or a tiny model whose tokenizer is
        trained on this world's text, initialised from `seed` (the tokenizer is the same for
        every seed: its training does not draw random numbers)."""
        if self.config.warm_start.base_model:
            return self.config.warm_start.base_model
        return self.tiny_model(
            f"base-model-seed{seed}",
            lambda: tokenizer_corpus(self.config.data),
            size=self.config.model_size,
            vocab_size=self.config.vocab_size,
            seed=seed,
            max_positions=self.config.max_positions,
        )

    def warm_start_seeds(self) -> dict[str, int]:
        """Warm-start name -> its seed. Each RL seed gets its own warm start (initial weights
        and SFT order), so the spread over seeds covers the whole pipeline; a fixed
        `warm_start.base_model` is fine-tuned once, with `warm_start.seed`."""
        if self.config.warm_start.base_model:
            return {"warm-start": self.config.warm_start.seed}
        return {f"warm-start-seed{seed}": seed for seed in self.config.seeds}

    def data(self, tokenizer: str) -> dict[str, Any]:
        def build(scratch: Path) -> None:
            build_longtrace(replace(self.config.data, out=str(scratch), tokenizer=tokenizer))

        self.built_dir("data", "stats.json", build)
        return json.loads((self.data_dir / "stats.json").read_text())

    def policy(self, name: str, seed: int) -> tuple[str, float]:
        """The warm start `name` (cached by content hash, so per seed) from its base model."""
        sft_file = self.data_dir / "sft_train.jsonl"
        if not sft_file.exists():
            write_jsonl(sft_file, sft_rows(read_jsonl(self.data_dir / "train.jsonl")))
        settings = replace(
            self.config.warm_start,
            base_model=self.base_model(seed),
            train_file=str(sft_file),
            seed=seed,
        )
        result = self.logged_warm_start(name, settings)
        return str(result.model_dir), result.train_seconds

    def train(self, model_dir: str, variant: str, reward: str, seed: int) -> Path:
        """One RL run; resumes from its last checkpoint, and returns its final model."""
        rewards = [reward, *(name for name in MONITORED if name != reward)]
        settings = replace(
            self.config.rl,
            model=model_dir,
            data=DataConfig(
                train=str(self.data_dir / "train.jsonl"),
                test=str(self.data_dir / "test.jsonl"),
                prompt_column="input_messages",
            ),
            rewards=rewards,
            reward_weights=[1.0] + [0.0] * (len(rewards) - 1),
            seed=seed,
        )
        judged = None
        if self.config.judge is not None:  # the registered rewards, their outcome judged
            from posttrain.models.chat.spec import load_chat

            functions = [get_reward(spec) for spec in settings.rewards]
            judge = load_chat(self.config.judge)
            judged = RewardSet(with_judged_outcome(functions, judge), settings.reward_weights)
        run = self.train_rl(f"rl-{variant}-seed{seed}", settings, judged)
        return run / "checkpoints" / "final"

    def evaluate(self, policies: dict[str, Path | str]) -> list[dict[str, Any]]:
        """Every policy under every setting; results append to evaluation.jsonl as they come."""
        from posttrain.models.chat.hf import HFChat

        done_path = self.run.path / "evaluation.jsonl"
        done = read_jsonl(done_path) if done_path.exists() else []
        seen = {(r["policy"], r["setting"]) for r in done}
        for setting in self.config.data.eval_settings:
            rows = read_jsonl(self.data_dir / f"test.{setting}.jsonl")
            if ("bm25-chain-reader", setting) not in seen:
                done.append(
                    self._save(done_path, done, "bm25-chain-reader", setting, _reader(rows))
                )
            for name, model_dir in policies.items():
                if (name, setting) in seen:
                    continue
                chat = HFChat(model_dir, name=name)
                summary, records = evaluate_policy(chat, rows, self.config.eval_max_tokens)
                write_jsonl(self.run.path / "responses" / f"{name}.{setting}.jsonl", records)
                done.append(self._save(done_path, done, name, setting, summary))
        return done

    def _save(
        self, path: Path, done: list[dict[str, Any]], policy: str, setting: str, summary: dict
    ) -> dict[str, Any]:
        """Add one evaluation; the file is rewritten whole (a few dozen lines) and renamed,
        so a kill never leaves a torn line that the next run could not read."""
        record = {"policy": policy, "setting": setting, "summary": summary}
        atomic.write_text(path, "".join(json.dumps(r) + "\n" for r in [*done, record]))
        return record

    # ------------------------------------------------------------------ whole run

    def stages(self) -> dict[str, Any]:
        config = self.config
        self.say("[bold]1/5 data[/]: knowledge-graph walks in contexts of tiered distractors")
        stats = self.data(self.base_model(next(iter(self.warm_start_seeds().values()))))
        overlap = stats["distractor_mentions_gold_entity"]
        self.say(
            f"    {stats['questions']['train']} training and {stats['questions']['test']} held-out"
            f" questions, {stats['documents_per_context']:.1f} documents"
            f" per context; distractors mentioning a gold entity: "
            + ", ".join(f"{k} {v:.0%}" for k, v in overlap.items())
        )
        self.say("[bold]2/5 warm start[/] on the answer format (TRL SFTTrainer)")
        policies: dict[str, Path | str] = {}
        for name, seed in self.warm_start_seeds().items():
            policies[name], seconds = self.policy(name, seed)
            took = "cache" if not seconds else f"{seconds:.0f}s"
            self.say(f"    {name}: {policies[name]} ({took})")
        starts = list(policies.values())

        for index, seed in enumerate(config.seeds):
            model_dir = str(starts[index % len(starts)])  # its own, or the one fixed start
            for variant, reward in config.variants.items():
                self.say(f"[bold]3/5 RL[/] {variant} ({reward}), seed {seed}")
                policies[f"{variant}-seed{seed}"] = self.train(model_dir, variant, reward, seed)

        self.say(
            "[bold]4/5 evaluate[/] held-out questions under " + ", ".join(config.data.eval_settings)
        )
        evaluations = self.evaluate(policies)
        table = results_table(evaluations, config.variants, config.seeds)
        comparisons = compare_variants(
            self.run.path / "responses", config.variants, config.seeds, config.data.eval_settings
        )
        self.run.write_json("results.json", {"table": table, "comparisons": comparisons})
        curves = self.curves()

        self.say("[bold]5/5 report[/]")
        self.console.print(render_table(table))
        if comparisons:
            self.console.print(render_comparisons(comparisons))
        return {
            "data": stats,
            "results": table,
            "comparisons": comparisons,
            "curves": str(curves),
        }

    def curves(self) -> Path:
        """Held-out accuracy and rubric recall over RL steps, mean over seeds per variant."""
        setting = self.config.data.distractors
        metrics = {
            f"held-out accuracy ({setting}, greedy)": "eval_rewards/longtrace_outcome/mean",
            "held-out rubric recall (all answers)": "eval_rewards/longtrace_rubric_recall/mean",
            "training accuracy (sampled)": "rewards/longtrace_outcome/mean",
        }
        panels: dict[str, dict[str, tuple[list[float], list[float]]]] = {t: {} for t in metrics}
        for variant in self.config.variants:
            runs = [self.run.path / f"rl-{variant}-seed{seed}" for seed in self.config.seeds]
            for title, key in metrics.items():
                panels[title][variant] = _mean_curve([read_metrics(r) for r in runs], key)
        return plot_curves(panels, self.run.path / "curves.png")


def _reader(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The BM25 chain reader's accuracy in the same shape as a policy's summary."""
    counts: dict[str, int] = {"all": len(rows)}
    for row in rows:
        key = f"hops={row['metadata']['extra_reward_info']['hops']}"
        counts[key] = counts.get(key, 0) + 1
    return {
        key: {"n": counts[key], "accuracy": value, "rubric_recall_correct": None}
        for key, value in reader_accuracy(rows).items()
    }


def _mean_curve(runs: list[list[dict[str, Any]]], key: str) -> tuple[list[float], list[float]]:
    by_step: dict[int, list[float]] = {}
    for records in runs:
        for record in records:
            if key in record:
                by_step.setdefault(record["step"], []).append(record[key])
    steps = sorted(by_step)
    return [float(s) for s in steps], [sum(by_step[s]) / len(by_step[s]) for s in steps]


def results_table(
    evaluations: list[dict[str, Any]], variants: dict[str, str], seeds: list[int]
) -> dict[str, dict[str, Any]]:
    """`{"<policy> / <setting>": summary}`; warm starts and RL variants averaged over their
    seeds (mean and sample std of every metric)."""
    found = {(e["policy"], e["setting"]): e["summary"] for e in evaluations}
    settings = sorted({e["setting"] for e in evaluations}, key=lambda s: (s != "tiered", s))
    table: dict[str, dict[str, Any]] = {}
    for setting in settings:
        for policy in ("bm25-chain-reader", "warm-start"):
            if (policy, setting) in found:
                table[f"{policy} / {setting}"] = found[(policy, setting)]
        starts = [found.get((f"warm-start-seed{s}", setting)) for s in seeds]
        if all(starts):
            table[f"warm-start / {setting}"] = mean_over_seeds(starts)
        for variant in variants:
            runs = [found[(f"{variant}-seed{s}", setting)] for s in seeds]
            table[f"rl-{variant} / {setting}"] = mean_over_seeds(runs)
    return table


COMPARED = {"accuracy": "correct", "rubric recall (all answers)": "rubric_recall"}
"""What the variants are compared on: a per-question score of the evaluation records."""


def compare_variants(
    responses: Path, variants: dict[str, str], seeds: list[int], settings: list[str]
) -> list[dict[str, Any]]:
    """Every variant against the first (the baseline) under every setting and metric:
    Welch's t-test over seeds and the paired question bootstrap (`eval.significance`), on
    the per-question records each evaluation saved under `responses/`."""
    baseline, *others = variants
    comparisons = []
    for treatment in others:
        for setting in settings:
            for metric, field_name in COMPARED.items():
                scores = {
                    name: {
                        s: _question_scores(
                            responses / f"{name}-seed{s}.{setting}.jsonl", field_name
                        )
                        for s in seeds
                    }
                    for name in (baseline, treatment)
                }
                comparisons.append(
                    {
                        "baseline": f"rl-{baseline}",
                        "treatment": f"rl-{treatment}",
                        "setting": setting,
                        "metric": metric,
                        **compare_runs(scores[baseline], scores[treatment]),
                    }
                )
    return comparisons


def _question_scores(path: Path, field_name: str) -> dict[str, float]:
    """Question id -> its score in one evaluation's records (rows without one left out)."""
    return {r["id"]: float(r[field_name]) for r in read_jsonl(path) if r[field_name] is not None}


def render_comparisons(comparisons: list[dict[str, Any]]) -> Table:
    """Treatment minus baseline, in points: over seeds (Welch) and over questions."""
    out = Table(title="Variant differences, 95% CI (Welch over seeds; bootstrap over questions)")
    for column in ("comparison", "distractors", "metric", "over seeds", "over questions"):
        out.add_column(column)
    for c in comparisons:
        out.add_row(
            f"{c['treatment']} − {c['baseline']}",
            c["setting"],
            c["metric"],
            describe(c["welch"]),
            describe(c["bootstrap"]),
        )
    return out


def render_table(table: dict[str, dict[str, Any]]) -> Table:
    """The results as a terminal table: one row per policy and distractor setting."""
    hop_keys = sorted({k for summary in table.values() for k in summary if k != "all"})
    out = Table(title="LongTraceRL held-out results (recall: rubric recall among correct)")
    for column in ("policy", "distractors", "accuracy", "recall", *hop_keys):
        out.add_column(column)
    previous = None
    for name, summary in table.items():
        policy, _, setting = name.partition(" / ")
        if previous is not None and setting != previous:
            out.add_section()
        previous = setting
        out.add_row(
            policy,
            setting,
            _cell(summary["all"], "accuracy"),
            _cell(summary["all"], "rubric_recall_correct"),
            *(_cell(summary.get(k, {}), "accuracy") for k in hop_keys),
        )
    return out


def _cell(entry: dict[str, Any], metric: str) -> str:
    value = entry.get(metric)
    if value is None:
        return "–"
    std = entry.get(f"{metric}_std")
    return f"{value:.1%}" + (f" ± {std:.1%}" if std is not None else "")
