"""WildReward end to end: in-the-wild feedback -> an ordinal reward model -> online DPO.

`posttrain wildreward run` wires the stages: generate in-the-wild-like conversations
(`posttrain.data.wild_conversations`), turn each reply's next user message into a label
(`posttrain.data.feedback`: rule labeler, hindsight mining, refusal checks, filters),
train the ordinal reward model next to its baselines on one backbone — CORAL, plain
regression and Bradley–Terry on pairs derived from the labels (`posttrain.rewards.ordinal`,
`posttrain.rewards.reward_model`) — compare their calibration (`posttrain.eval.calibration`),
retrain the ordinal model on conversations from more and more users (the scaling curve),
and finally train a tiny policy with online DPO against the ordinal reward model, judged
by the generator's own quality oracle it never trained on. Every stage resumes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from rich.table import Table

from posttrain.data.feedback import FeedbackPipelineConfig, run_pipeline
from posttrain.data.io import read_jsonl, write_jsonl
from posttrain.data.wild_conversations import (
    generate_conversations,
    policy_prompts,
    write_conversations,
)
from posttrain.eval.calibration import (
    evaluate_reward_model,
    plot_margin_accuracy,
    plot_reliability,
)
from posttrain.recipes.base import Recipe
from posttrain.report import plot_curves
from posttrain.rewards.ordinal import (
    OrdinalRewardConfig,
    OrdinalRewardModel,
    WholeConversationScorer,
    ordinal_corpus,
    pairs_from_labels,
    train_ordinal_reward_model,
)
from posttrain.rewards.reward_model import RewardModel, RewardModelConfig, train_reward_model
from posttrain.rl.config import DataConfig, LossConfig, OptimConfig, RLConfig, RolloutConfig
from posttrain.runs import Run, read_metrics
from posttrain.sft.warm_start import WarmStartConfig

Results = dict[str, dict[str, Any]]
"""Model name -> `evaluate_reward_model` result."""
Curve = dict[str, list[float]]
"""`steps`, `reward_model`, `oracle`: the policy's held-out evaluations over online DPO."""

HEADS = ("thresholds", "coral", "regression")
"""Ordinal-trainer heads compared; Bradley–Terry is trained by the pairwise trainer."""


def _demo_ordinal() -> OrdinalRewardConfig:
    return OrdinalRewardConfig(
        model_size="micro", vocab_size=1024, epochs=3.0, batch_size=16, learning_rate=1e-3
    )


def _demo_policy_rl() -> RLConfig:
    return RLConfig(
        steps=30,
        prompts_per_step=8,
        rollout=RolloutConfig(n=4, max_tokens=24, temperature=1.0),
        loss=LossConfig(kind="online_dpo", kl_coef=0.1),
        optim=OptimConfig(lr=1e-4),
        eval_every=10,
        eval_size=100,
        save_every=10,
    )


def _demo_warm_start() -> WarmStartConfig:
    return WarmStartConfig(steps=150, batch_size=16, learning_rate=2e-3, max_length=128)


@dataclass
class WildRewardRunConfig:
    conversations: int = 2000
    """In-the-wild-like conversations generated for the main reward models."""
    users: int = 200
    """Simulated users behind them."""
    seed: int = 0
    pipeline: FeedbackPipelineConfig = field(default_factory=FeedbackPipelineConfig)
    """Labeler and adjudicator specs (scripted rule models by default), hindsight, filters."""
    reward_model: OrdinalRewardConfig = field(default_factory=_demo_ordinal)
    """Shared by every head and by the Bradley–Terry baseline (steps, lr, size, seed);
    `head`, `train_file`, `model` and `output_dir` are set by the recipe."""
    user_counts: list[int] = field(default_factory=lambda: [10, 40, 160])
    """Users behind the conversations of each scaling point (same number of conversations,
    other seed); every point is evaluated on the main test split."""
    scaling_conversations: int = 2000
    policy_warm_start: WarmStartConfig = field(default_factory=_demo_warm_start)
    """SFT of the tiny policy on the generated conversations' first replies."""
    policy_rl: RLConfig = field(default_factory=_demo_policy_rl)
    """Online DPO (`loss.kind: online_dpo`, beta = `loss.kl_coef`) against the ordinal model;
    `model`, `data`, `rewards`, `run_name` and `runs_root` are set by the recipe."""
    policy_prompts: int = 400
    """Held-out-user prompts to train the policy on (and 100 more to evaluate it on)."""
    run_name: str = "wildreward"
    runs_root: str = "runs"


class WildRewardRecipe(Recipe):
    """The stages in order; each returns what the next needs and skips work already done."""

    title = "WildReward"
    rerun_may_change = None
    """No rerun guard (as before the recipe base): a rerun reuses every finished stage even
    when its settings changed."""
    config: WildRewardRunConfig

    def check(self, config: WildRewardRunConfig) -> None:
        if config.conversations < 10 or config.scaling_conversations < 10:
            raise ValueError("conversations: generate at least 10 (scaling_conversations too)")
        if len(config.user_counts) < 1 or min(config.user_counts) < 1:
            raise ValueError(f"user_counts: positive user counts, got {config.user_counts}")
        if config.policy_rl.loss.kind != "online_dpo":
            raise ValueError("policy_rl.loss.kind: the WildReward recipe trains with online_dpo")

    # ------------------------------------------------------------------ data

    def feedback(self, name: str, conversations: int, users: int, seed: int) -> Path:
        """Generated conversations through the feedback pipeline; returns its output folder."""
        folder = self.run.path / name
        source = folder / "conversations.jsonl"
        if not source.exists():
            write_conversations(source, generate_conversations(conversations, users, seed))
        if not (folder / "feedback" / "summary.json").exists():
            run_pipeline(source, folder / "feedback", self.config.pipeline)
        return folder / "feedback"

    def base_model(self, rows: list[dict[str, Any]]) -> str:
        """One tiny seq-cls backbone for every head (tokenizer trained on the training rows),
        so the reward models differ only in what they are trained to predict."""
        settings = self.config.reward_model
        if settings.model:
            return settings.model
        return self.tiny_model(
            "base-model",
            lambda: ordinal_corpus(rows),
            size=settings.model_size,
            vocab_size=settings.vocab_size,
            kind="seq-cls",
            seed=settings.seed,
        )

    # ------------------------------------------------------------------ reward models

    def train_head(self, base: str, train_file: Path, head: str, out: Path) -> Path:
        settings = replace(
            self.config.reward_model,
            model=base,
            head=head,
            train_file=str(train_file),
            output_dir=str(out),
        )
        final = out / "final"
        if not (final / "ordinal.json").exists():
            with Run(out) as log:
                train_ordinal_reward_model(settings, log)
        return final

    def train_bradley_terry(self, base: str, rows: list[dict[str, Any]]) -> Path:
        out = self.run.path / "rm-bradley_terry"
        final = out / "final"
        if (final / "reward_model.json").exists():
            return final
        pairs = out / "pairs.train.jsonl"
        write_jsonl(pairs, pairs_from_labels(rows, seed=self.config.seed))
        ordinal = self.config.reward_model
        settings = RewardModelConfig(
            model=base,
            train_file=str(pairs),
            epochs=ordinal.epochs,
            batch_size=ordinal.batch_size,
            learning_rate=ordinal.learning_rate,
            max_length=ordinal.max_length,
            seed=ordinal.seed,
            output_dir=str(out),
        )
        with Run(out) as log:
            return train_reward_model(settings, log)

    def compare(self, data: Path, base: str) -> dict[str, dict[str, Any]]:
        """Every head and Bradley–Terry on the same test rows; scores cached per model."""
        train = read_jsonl(data / "train.jsonl")
        test = read_jsonl(data / "test.jsonl")
        models: dict[str, Callable[[], Any]] = {}  # loaded only when not yet evaluated
        for head in HEADS:
            final = self.train_head(base, data / "train.jsonl", head, self.run.path / f"rm-{head}")
            models[head] = partial(OrdinalRewardModel, final)
        bt = self.train_bradley_terry(base, train)
        models["bradley_terry"] = lambda: WholeConversationScorer(RewardModel(bt))
        # Models without threshold probabilities (regression, Bradley–Terry) get them from an
        # isotonic fit on the training rows, so ECE compares like with like.
        return {
            name: self.cached_json(
                f"rm-{name}/calibration.json",
                lambda load=load: evaluate_reward_model(
                    load(), test, calibration_rows=train, seed=self.config.seed
                ),
            )
            for name, load in models.items()
        }

    def scaling(self, test_rows: list[dict[str, Any]], base: str) -> list[dict[str, Any]]:
        """The ordinal model trained on data from more and more users, on one test set.

        Users differ in how often they give feedback, so the same number of conversations
        keeps different numbers of rows; every point trains on the same number (the
        smallest point's, a seeded sample), so the curve varies users, not data size.
        """
        folders = {
            users: self.feedback(
                f"scaling-users{users}",
                self.config.scaling_conversations,
                users,
                self.config.seed + 1,
            )
            for users in self.config.user_counts
        }
        size = min(_rows_in(folder / "train.jsonl") for folder in folders.values())
        points = []
        for users, data in folders.items():
            out = self.run.path / f"scaling-users{users}"
            train = out / f"train.{size}.jsonl"
            if not train.exists():
                rows = read_jsonl(data / "train.jsonl")
                random.Random(self.config.seed).shuffle(rows)
                write_jsonl(train, rows[:size])
            final = self.train_head(base, train, "thresholds", out / "rm")
            result = self.cached_json(
                f"{out.name}/calibration.json",
                lambda final=final: evaluate_reward_model(OrdinalRewardModel(final), test_rows),
            )
            points.append({"users": users, "train_rows": size, **result})
        return points

    # ------------------------------------------------------------------ online DPO

    def policy(self, conversations: Path) -> str:
        """A tiny policy warm-started on the generated conversations' first replies (good and
        bad alike, as a chat model of uneven quality would be)."""
        folder = self.run.path / "policy-data"
        sft = folder / "sft.jsonl"
        if not sft.exists():
            rows = []
            for record in read_jsonl(conversations):
                user, reply = record["conversation"][:2]
                rows.append({"prompt": [user], "completion": [reply]})
            write_jsonl(sft, rows)
        base = self.tiny_model(
            "policy-base",
            lambda: [m["content"] for r in read_jsonl(sft) for m in r["prompt"] + r["completion"]],
            size="micro",
            vocab_size=1024,
            seed=self.config.seed,
        )
        settings = replace(self.config.policy_warm_start, base_model=base, train_file=str(sft))
        return str(self.logged_warm_start("policy-warm-start", settings).model_dir)

    def online_dpo(self, policy: str, reward_dir: Path) -> Path:
        folder = self.run.path / "policy-data"
        train, test = folder / "prompts.train.jsonl", folder / "prompts.test.jsonl"
        if not train.exists():  # train last: it says both are there
            write_jsonl(test, policy_prompts(100, self.config.seed + 3))
            write_jsonl(train, policy_prompts(self.config.policy_prompts, self.config.seed + 2))
        settings = replace(
            self.config.policy_rl,
            model=policy,
            data=DataConfig(train=str(train), test=str(test), prompt_column="messages"),
            rewards=[f"reward-model:{reward_dir}", "wild_reply_quality"],
            reward_weights=[1.0, 0.0],
        )
        return self.train_rl("online-dpo", settings)

    # ------------------------------------------------------------------ whole run

    def stages(self) -> dict[str, Any]:
        config = self.config
        self.say("[bold]1/5 feedback[/]: conversations -> labels from the next user message")
        data = self.feedback("data", config.conversations, config.users, config.seed)
        summary = json.loads((data / "summary.json").read_text())
        train_rows = read_jsonl(data / "train.jsonl")
        self.say(f"    {_describe(summary)}")
        self.say(
            "[bold]2/5 reward models[/]: ordinal (thresholds), CORAL, regression, Bradley–Terry"
        )
        base = self.base_model(train_rows)
        comparison = self.compare(data, base)
        self.say("[bold]3/5 scaling[/]: the ordinal model trained on data from more users")
        scaling = self.scaling(read_jsonl(data / "test.jsonl"), base)
        self.say("[bold]4/5 online DPO[/] against the ordinal reward model")
        policy = self.policy(data.parent / "conversations.jsonl")
        dpo_run = self.online_dpo(policy, self.run.path / "rm-thresholds" / "final")
        dpo = _policy_curve(read_metrics(dpo_run))
        self.say("[bold]5/5 report[/]")
        self.console.print(render_tables(comparison, scaling, dpo))
        figures = self.figures(comparison, scaling, dpo)
        results = {"feedback": summary, "reward_models": comparison, "scaling": scaling}
        results["online_dpo"] = dpo
        self.run.write_json("results.json", results)
        return {"figures": [str(f) for f in figures], **results}

    def figures(self, comparison: Results, scaling: list[dict[str, Any]], dpo: Curve) -> list[Path]:
        margin = plot_margin_accuracy(comparison, self.run.path / "margin_accuracy.png")
        reliability = plot_reliability(comparison, self.run.path / "reliability.png")
        users = [float(p["users"]) for p in scaling]
        panels = {
            "scaling: RMSE of the expected label": {
                "ordinal": (users, [p["rmse"] for p in scaling])
            },
            "scaling: Spearman with the label": {
                "ordinal": (users, [p["spearman"] or 0.0 for p in scaling])
            },
        }
        curve = plot_curves(panels, self.run.path / "scaling.png", xlabel="users")
        steps = [float(s) for s in dpo["steps"]]
        policy = plot_curves(
            {
                "held-out reward-model score": {"online DPO": (steps, dpo["reward_model"])},
                "held-out oracle quality (1-5)": {"online DPO": (steps, dpo["oracle"])},
            },
            self.run.path / "online_dpo.png",
        )
        return [margin, reliability, curve, policy]


def _rows_in(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def _describe(summary: dict[str, Any]) -> str:
    dropped = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items() if v)
    return (
        f"{summary['split']['train']} training and {summary['split']['test']} test turns"
        f" (dropped: {dropped}); labels 1-4: {summary['labels']['kept_mapped']}"
    )


def _policy_curve(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    evals = [r for r in records if "eval_rewards/reward_model/mean" in r]
    return {
        "steps": [r["step"] for r in evals],
        "reward_model": [r["eval_rewards/reward_model/mean"] for r in evals],
        "oracle": [r.get("eval_rewards/wild_reply_quality/mean") for r in evals],
    }


def render_tables(comparison: Results, scaling: list[dict[str, Any]], dpo: Curve) -> Table:
    """Reward models side by side, then the scaling points and the policy before/after."""
    table = Table(title="WildReward: reward models on held-out feedback (expected label 1-4)")
    for column in ("model", "RMSE", "ECE", "threshold acc", "Spearman", "pairwise acc"):
        table.add_column(column)
    for name, r in comparison.items():
        table.add_row(
            name,
            f"{r['rmse']:.3f}",
            f"{r['ece']:.3f}",
            f"{r['mean_threshold_accuracy']:.1%}",
            f"{r['spearman']:.3f}",
            f"{r['pairwise_accuracy']:.1%}",
        )
    table.add_section()
    for p in scaling:
        table.add_row(
            f"ordinal, {p['users']} users ({p['train_rows']} rows)",
            f"{p['rmse']:.3f}",
            f"{p['ece']:.3f}",
            f"{p['mean_threshold_accuracy']:.1%}",
            f"{p['spearman']:.3f}",
            f"{p['pairwise_accuracy']:.1%}",
        )
    table.add_section()
    if dpo["steps"]:
        table.add_row(
            f"policy: RM score step {dpo['steps'][0]} -> {dpo['steps'][-1]}",
            f"{dpo['reward_model'][0]:.3f} -> {dpo['reward_model'][-1]:.3f}",
        )
        table.add_row(
            "policy: oracle quality",
            f"{dpo['oracle'][0]:.3f} -> {dpo['oracle'][-1]:.3f}",
        )
    return table
