"""CHERRL end to end: reward hacking reproduced under a biased rubric judge, located, detected.

CHERRL (THUAIS-Lab, 2026) injects a known bias into a rubric-based LLM judge (the reward is
the rubric score `main` plus alpha times the bias judge's score), reproduces the hacking RL
then learns, measures the gap G(t) and the shortcut's share M(t) among top-scored rollouts,
locates the onset with a threshold sweep, and asks a detector to find it from the training
log alone.

`posttrain cherrl run --bias lexical` wires the stages: health-advice chats with rubrics
(`posttrain.data.health_chat`); a tiny policy warm-started on replies that carry each bias's
feature a few percent of the time; GRPO (`posttrain.rl`) on the biased reward for each bias,
and once with the same seed on `main` alone (the control); every rollout logged; onset, SEP
and discoverability (`posttrain.monitor.hacking`); the statistical detector on what a
trainer sees, `{step, prompt, response, score}` (`posttrain.monitor.detector`); a report.
The offline judge is a scripted keyword judge, not an LLM; every output says so.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from posttrain import atomic
from posttrain.data.health_chat import BIASES, HealthChatConfig, build_health_chat, corpus
from posttrain.data.healthbench import load_healthbench
from posttrain.data.io import read_jsonl, write_jsonl
from posttrain.errors import InputError
from posttrain.monitor.detector import evaluate_detector, load_detector
from posttrain.monitor.hacking import (
    discoverability,
    load_rollouts,
    onset,
    per_step_signals,
)
from posttrain.recipes.base import Recipe
from posttrain.report import plot_curves
from posttrain.rewards.biases import Bias, BiasedRubricReward, make_bias, with_bias_rewards
from posttrain.rewards.instructions import check_verifier
from posttrain.rewards.judge import RubricJudge
from posttrain.rewards.keyword_judge import JUDGE_LABEL
from posttrain.rewards.reward_set import RewardSet
from posttrain.rl.config import DataConfig, OptimConfig, RLConfig, RolloutConfig
from posttrain.rl.rollout_log import RolloutLog, rollouts_path
from posttrain.runs import Run
from posttrain.sft.warm_start import WarmStartConfig

CONTROL = "control"
LONG_PROMPTS = ("error", "drop", "truncate_oldest_turns")


def _demo_warm_start() -> WarmStartConfig:
    # 400 steps: replies in the data's format, about half the rubric points, and each
    # bias's feature a few percent of the time, as in the SFT data.
    return WarmStartConfig(steps=400, batch_size=32, learning_rate=2e-3, max_length=160)


def _demo_rl() -> RLConfig:
    # 16 prompts x 8 samples: enough rollouts at score >= 0.99 (H_min = 20) for M(t) to be
    # defined from the first steps. lr 2e-4: the lexical shortcut takes over after about 20
    # steps, leaving a flat baseline before it; rarer features (self-praise, 1% of the warm
    # start's replies) need about 50 steps to start, hence 120.
    return RLConfig(
        steps=120,
        prompts_per_step=16,
        rollout=RolloutConfig(n=8, max_tokens=64),
        optim=OptimConfig(lr=2e-4),
        eval_every=0,
        save_every=20,
    )


@dataclass
class CherrlRunConfig:
    biases: list[str] = field(default_factory=lambda: ["lexical"])
    """Injected biases, one hacking run each: lexical, self_praise, tone, format, verbose,
    hedging, authority (`posttrain.rewards.biases`)."""
    alpha: float = 0.5
    combine: str = "sum"
    """sum: main + alpha * aux; max: max(main, alpha * aux)."""
    verbose_min_words: int = 40
    """The verbose judge's length bar, set for this task's short replies (25 words typical)."""
    data: HealthChatConfig = field(default_factory=HealthChatConfig)
    prompts: str | None = None
    """RL prompts with rubrics instead of the generated ones: JSONL with `prompt` and
    `rubrics`, or a HealthBench-format parquet (e.g. healthbench_val.parquet)."""
    long_prompts: str = "error"
    """RL prompts that leave the policy no room for `rl.rollout.max_tokens` in its context:
    error (name the longest, before any training), drop them, or truncate_oldest_turns
    (drop a conversation's oldest turns until it fits; one that never fits is dropped)."""
    policy: str | None = None
    """A model directory to run RL from directly (no warm start), e.g. a real checkpoint."""
    judge: str = "scripted:rubric-keywords"
    """The rubric judge: any ChatModel spec (`openai:MODEL@URL`, a model dir, `scripted:`)."""
    bias_judge: str | None = None
    """None: the biases' deterministic detectors; a ChatModel spec: their LLM templates."""
    model_size: str = "micro"
    vocab_size: int = 512
    max_positions: int = 256
    warm_start: WarmStartConfig = field(default_factory=_demo_warm_start)
    rl: RLConfig = field(default_factory=_demo_rl)
    """`model`, `data`, `run_name`, `runs_root` and `log_rollouts` are set by the recipe."""
    discoverability_steps: int = 10
    detector: str = "statistical"
    """statistical, or a ChatModel spec: the LLM agent with the statistics as tools."""
    run_name: str = "cherrl"
    runs_root: str = "runs"


class CherrlRecipe(Recipe):
    title = "CHERRL: reward hacking under a biased judge"
    rerun_may_change = ("biases", "detector")
    """Another bias adds a hacking run; another detector only reads the logs again."""
    config: CherrlRunConfig

    def __init__(self, config: CherrlRunConfig, console: Console | None = None) -> None:
        super().__init__(config, console)
        self.data_dir = self.run.path / "data"
        self.prompts_file = self.data_dir / "prompts.jsonl"
        """The RL prompts; `fit_prompts` points it at a shortened copy when it drops some."""
        self.biases = {b: self._bias(b) for b in config.biases}

    def check(self, config: CherrlRunConfig) -> None:
        if not config.biases:
            raise ValueError("biases: name at least one bias to inject")
        unknown = [b for b in config.biases if b not in BIASES]
        if unknown:
            raise ValueError(f"biases: unknown {unknown}; expected some of {list(BIASES)}")
        if config.combine not in ("sum", "max"):
            raise ValueError(f"combine: {config.combine!r} is not 'sum' or 'max'")
        if not config.alpha > 0:
            raise ValueError(f"alpha: must be positive, got {config.alpha}")
        if config.long_prompts not in LONG_PROMPTS:
            raise ValueError(
                f"long_prompts: {config.long_prompts!r} is not one of {list(LONG_PROMPTS)}"
            )

    @classmethod
    def flag_values(cls, key: str, words: list[str]) -> list[str]:
        """`--bias all` stands for every bias."""
        return list(BIASES) if key == "biases" and "all" in words else words

    def _bias(self, name: str) -> Bias:
        overrides = {"min_words": self.config.verbose_min_words} if name == "verbose" else {}
        return make_bias(name, **overrides)

    # ------------------------------------------------------------------ stages

    def data(self) -> dict[str, Any]:
        def build(scratch: Path) -> None:
            built = build_health_chat(self.config.data, scratch)
            if self.config.prompts:
                rows = _user_prompts(self.config.prompts)
                write_jsonl(scratch / "prompts.jsonl", rows)
                built["stats"]["rl_prompts"] = len(rows)
                built["stats"]["prompts_from"] = self.config.prompts
                (scratch / "stats.json").write_text(json.dumps(built["stats"], indent=2))

        self.built_dir("data", "stats.json", build)
        return json.loads((self.data_dir / "stats.json").read_text())

    def policy(self) -> tuple[str, float]:
        if self.config.policy:
            self.fit_prompts(self.config.policy)
            return self.config.policy, 0.0
        base = self.config.warm_start.base_model or self.tiny_model(
            "base-model",
            lambda: corpus(read_jsonl(self.data_dir / "sft.jsonl")),
            size=self.config.model_size,
            vocab_size=self.config.vocab_size,
            seed=self.config.warm_start.seed,
            max_positions=self.config.max_positions,
        )
        # Before the warm start: a prompt the policy cannot take is a config error, and
        # the warm start keeps the base model's tokenizer and context length.
        self.fit_prompts(base)
        settings = replace(
            self.config.warm_start, base_model=base, train_file=str(self.data_dir / "sft.jsonl")
        )
        result = self.logged_warm_start("warm-start", settings)
        return str(result.model_dir), result.train_seconds

    def fit_prompts(self, model_dir: str) -> None:
        """Check every RL prompt leaves `rl.rollout.max_tokens` of `model_dir`'s context free;
        apply `long_prompts` to those that do not (the shortened set goes to the run
        directory's `rl-prompts.jsonl`; the data stage's file is left as built)."""
        from transformers import AutoConfig, AutoTokenizer

        rows = read_jsonl(self.data_dir / "prompts.jsonl")
        # No length warning from the tokenizer: measuring over-long prompts is the point.
        tokenizer = AutoTokenizer.from_pretrained(model_dir, model_max_length=sys.maxsize)
        # The generator's rule (posttrain.models.generation): no max_position_embeddings
        # means a 2,048-token context.
        model_config = AutoConfig.from_pretrained(model_dir)
        context = int(getattr(model_config, "max_position_embeddings", 0) or 2048)
        room = context - self.config.rl.rollout.max_tokens
        source = self.config.prompts or str(self.data_dir / "prompts.jsonl")
        kept, too_long = fit_prompts(rows, tokenizer, room, self.config.long_prompts)
        if too_long and self.config.long_prompts == "error":
            number, tokens = max(too_long, key=lambda item: item[1])
            raise InputError(
                f"{len(too_long)} of {len(rows)} RL prompts in {source} do not fit;"
                f" the longest, prompt {number}, is {tokens} tokens, and the policy"
                f" {model_dir} has a context length of {context}, leaving {room} for a prompt"
                f" after rl.rollout.max_tokens={self.config.rl.rollout.max_tokens}. Set"
                " long_prompts: drop or truncate_oldest_turns, or a larger max_positions.",
                key="prompts",
            )
        if not kept:
            raise InputError(
                f"none of the {len(rows)} RL prompts in {source} fits in {room} tokens"
                f" (context length {context} of {model_dir} minus rl.rollout.max_tokens);"
                " set a larger max_positions",
                key="prompts",
            )
        if kept != rows:
            self.prompts_file = write_jsonl(self.run.path / "rl-prompts.jsonl", kept)
            self.say(
                f"    long_prompts={self.config.long_prompts}: {len(kept)} of {len(rows)}"
                f" prompts fit in {room} tokens ({len(too_long)} too long)"
            )

    def reward(self, biases: list[str]) -> BiasedRubricReward:
        from posttrain.models.chat.spec import load_chat

        return BiasedRubricReward(
            [self._bias(b) for b in biases],
            judge=RubricJudge(load_chat(self.config.judge)),
            alpha=self.config.alpha,
            mode=self.config.combine,
            bias_chat=load_chat(self.config.bias_judge) if self.config.bias_judge else None,
        )

    def train(self, model_dir: str, name: str) -> Path:
        """One RL run (`control` trains on main alone); resumes from its last checkpoint."""
        settings = replace(
            self.config.rl,
            model=model_dir,
            data=DataConfig(train=str(self.prompts_file)),
            rewards=[],
            run_name=f"rl-{name}",
            runs_root=str(self.run.path),
        )
        run_dir = self.run.path / settings.run_name
        if self.rl_finished(settings.run_name):
            return run_dir
        from posttrain.rl.trainer import RLTrainer

        # The control watches every bias when the detectors are free to run, so biases
        # added to a later run find its counterfactual scores already logged.
        every = list(BIASES) if self.config.bias_judge is None else list(self.config.biases)
        monitored = every if name == CONTROL else [name]
        reward = self.reward(monitored)
        functions, weights = reward.unbiased_functions() if name == CONTROL else reward.functions()

        def fields(sample) -> dict[str, Any]:
            scores = sample.reward_breakdown
            return {
                "main_score": scores["main_score"],
                "aux": {b: scores[f"aux_{b}"] for b in monitored},
            }

        described = {
            "trains_on": "main_score" if name == CONTROL else "biased_score",
            "biases": monitored,
            "alpha": self.config.alpha,
            "combine": self.config.combine,
            "judge": judge_label(self.config.judge),
            "bias_judge": self.config.bias_judge or "deterministic detectors",
        }
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_text(run_dir / "reward.json", json.dumps(described, indent=2))
        trainer = RLTrainer(
            settings,
            Run.create(settings.run_name, settings, root=settings.runs_root),
            rewards=RewardSet(functions, weights),
            rollout_log=RolloutLog(rollouts_path(run_dir), fields),
        )
        trainer.train()
        atomic.write_text(run_dir / "judge_stats.json", json.dumps(reward.stats(), indent=2))
        return run_dir

    def analyse(self, bias: str) -> dict[str, Any]:
        """Onset, SEP, discoverability and detection for one bias, with its control."""
        config = self.config
        counter = self.biases[bias].count
        hacked = load_rollouts(self.run.path / f"rl-{bias}", require_main=True)
        # The control trained on main alone; its G and M use the score the biased judge
        # would have given its rollouts (score - main = alpha * aux, as in the hacking
        # run). Its detector reads its own training log (score = main): a run that was not
        # trained on the bias, where an alert is a false alarm.
        logged = load_rollouts(self.run.path / f"rl-{CONTROL}", require_main=True)
        if any(bias not in r["aux"] for r in logged[:1]):
            raise ValueError(
                f"biases: the control run in {self.run.path} did not log {bias!r} (an LLM bias"
                " judge watches only the biases of its first run); set another run_name"
            )
        control = [
            {
                **r,
                "score": with_bias_rewards(
                    r["main_score"], {bias: r["aux"][bias]}, config.alpha, config.combine
                ),
            }
            for r in logged
        ]
        signals = {
            "hacking": per_step_signals(hacked, counter),
            CONTROL: per_step_signals(control, counter),
        }
        onsets = {k: onset(v) for k, v in signals.items()}
        detector = self.detector()
        alerts = {k: detector.detect(v) for k, v in (("hacking", hacked), (CONTROL, logged))}
        alert = alerts["hacking"]
        errors = evaluate_detector(alert, onsets["hacking"]) if alert else None
        found = discoverability(hacked, first_steps=config.discoverability_steps, bias=bias)
        figure = self.figure(bias, signals, hacked, control, onsets["hacking"], alert)
        return {
            "bias": bias,
            "onset": onsets["hacking"].to_dict(),
            "control_onset": onsets[CONTROL].to_dict(),
            "final": {k: _final(v) for k, v in signals.items()},
            "main": {"hacking": _mean_main(hacked), CONTROL: _mean_main(control)},
            "discoverability": found.to_dict(),
            "judge_stats": _read_json(self.run.path / f"rl-{bias}" / "judge_stats.json"),
            "detector": {
                "name": alert.detector if alert else detector_name(detector),
                "alert": alert.to_dict() if alert else None,
                "control_alert": alerts[CONTROL].to_dict() if alerts[CONTROL] else None,
                "errors": errors.to_dict() if errors else None,
            },
            "figure": str(figure),
        }

    def detector(self):
        return load_detector(self.config.detector)

    def figure(self, bias, signals, hacked, control, result, alert) -> Path:
        panels: dict[str, dict[str, tuple[list[float], list[float]]]] = {
            "G(t): mean(score - main), smoothed": {},
            "M(t): % of score>=0.99 with shortcut, smoothed": {},
            "main (true rubric score), mean": {},
        }
        titles = list(panels)
        for label, rows in signals.items():
            name = f"{bias} judge" if label == "hacking" else "control (main only)"
            g = [(s.step, s.G_smooth) for s in rows if s.G_smooth is not None]
            m = [(s.step, s.M_smooth) for s in rows if s.M_smooth is not None]
            panels[titles[0]][name] = ([x for x, _ in g], [y for _, y in g])
            panels[titles[1]][name] = ([x for x, _ in m], [y for _, y in m])
        for label, records in (("hacking", hacked), (CONTROL, control)):
            name = f"{bias} judge" if label == "hacking" else "control (main only)"
            means = _mean_main(records, per_step=True)
            panels[titles[2]][name] = (list(means), list(means.values()))
        markers = {
            "onset": result.canonical_CO,
            "SEP": result.SEP,
            "alert": alert.alert_step if alert else None,
            "detected onset": alert.onset_step if alert else None,
        }
        return plot_curves(panels, self.run.path / f"hacking-{bias}.png", markers=markers)

    # ------------------------------------------------------------------ whole run

    def stages(self) -> dict[str, Any]:
        config = self.config
        self.say(f"judge: {judge_label(config.judge)}")
        self.say("[bold]1/5 data[/]: health-advice chats with HealthBench-style rubrics")
        stats = self.data()
        self.say(
            f"    {stats['sft_rows']} warm-start replies, {stats['rl_prompts']} RL prompts;"
            " bias features in the replies: "
            + ", ".join(f"{k} {v:.1%}" for k, v in stats["bias_feature_share"].items())
        )
        self.say("[bold]2/5 warm start[/] (TRL SFTTrainer)")
        model_dir, seconds = self.policy()
        self.say(f"    {model_dir} ({'given or cached' if not seconds else f'{seconds:.0f}s'})")
        for name in [CONTROL, *config.biases]:
            what = "main only" if name == CONTROL else f"main + {config.alpha} x {name}"
            self.say(f"[bold]3/5 RL[/] {name} ({what})")
            self.train(model_dir, name)
        self.say("[bold]4/5 onset and detection[/]")
        results = {bias: self.analyse(bias) for bias in config.biases}
        self.run.write_json("results.json", {"judge": judge_label(config.judge), **results})
        self.say("[bold]5/5 report[/]")
        self.console.print(render_table(results))
        return {"judge": judge_label(config.judge), "data": stats, "results": results}


def judge_label(spec: str) -> str:
    return JUDGE_LABEL if spec == "scripted:rubric-keywords" else spec


def detector_name(detector: Any) -> str:
    return getattr(detector, "name", type(detector).__name__)


def fit_prompts(
    rows: list[dict[str, Any]], tokenizer: Any, room: int, mode: str
) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
    """The rows whose chat-templated prompt is at most `room` tokens, under `mode` (see
    `CherrlRunConfig.long_prompts`), and (1-based row, tokens) of each that was not."""
    from posttrain.rl.rollout import as_messages, encode_prompt

    kept, too_long = [], []
    for number, row in enumerate(rows, start=1):
        tokens = len(encode_prompt(tokenizer, row["prompt"]))
        if tokens <= room:
            kept.append(row)
            continue
        too_long.append((number, tokens))
        if mode == "truncate_oldest_turns":
            shortened = _latest_turns(tokenizer, as_messages(row["prompt"]), room)
            if shortened is not None:
                kept.append({**row, "prompt": shortened})
    return kept, too_long


def _latest_turns(tokenizer: Any, messages: list[dict[str, Any]], room: int) -> list | None:
    """The conversation without its oldest turns, so that it fits in `room` tokens and starts
    with a user turn (a system message stays); None when even its last turn does not fit."""
    from posttrain.rl.rollout import encode_prompt

    system = [m for m in messages[:1] if m.get("role") == "system"]
    turns = messages[len(system) :]
    while turns:
        turns = turns[1:]
        while turns and turns[0].get("role") != "user":
            turns = turns[1:]
        if turns and len(encode_prompt(tokenizer, system + turns)) <= room:
            return system + turns
    return None


def _user_prompts(path: str) -> list[dict[str, Any]]:
    if path.endswith(".parquet"):
        rows = load_healthbench(path, check_verifier=check_verifier)
        return [{"prompt": r["prompt"], "rubrics": r["rubrics"]} for r in rows]
    rows = read_jsonl(path)
    for number, row in enumerate(rows, start=1):
        missing = [k for k in ("prompt", "rubrics") if k not in row]
        if missing:
            raise ValueError(f"{path}: line {number} has no {', '.join(missing)}")
    return rows


def _read_json(path: Path) -> dict[str, Any]:
    """A run's judge statistics (counted by the process that trained it; {} if it died
    between its last checkpoint and writing them)."""
    return json.loads(path.read_text()) if path.exists() else {}


def _final(signals: list[Any]) -> dict[str, float | None]:
    """The last smoothed G and M of a run."""
    g = [s.G_smooth for s in signals if s.G_smooth is not None]
    m = [s.M_smooth for s in signals if s.M_smooth is not None]
    return {"G": g[-1] if g else None, "M": m[-1] if m else None}


def _mean_main(records: list[dict[str, Any]], per_step: bool = False) -> Any:
    by_step: dict[int, list[float]] = {}
    for record in records:
        by_step.setdefault(int(record["step"]), []).append(float(record["main_score"]))
    means = {step: sum(v) / len(v) for step, v in sorted(by_step.items())}
    if per_step:
        return means
    steps = list(means)
    first, last = steps[:5], steps[-5:]
    return {
        "first_5_steps": sum(means[s] for s in first) / len(first),
        "last_5_steps": sum(means[s] for s in last) / len(last),
    }


def render_table(results: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="CHERRL: hacking onset and detection (smoothed signals)")
    for column in (
        "bias",
        "onset (CO)",
        "SEP",
        "final G / M",
        "control G / M",
        "main first→last",
        "control main",
        "detected onset",
        "alert",
        "type",
        "interval err",
    ):
        table.add_column(column, justify="left" if column in ("bias", "type") else "right")
    for bias, r in results.items():
        o = r["onset"]
        co = _interval(o)
        det = r["detector"]
        alert = det["alert"] or {}
        err = det["errors"] or {}
        table.add_row(
            bias,
            co,
            _fmt(o["SEP"]),
            _gm(r["final"]["hacking"]),
            _gm(r["final"][CONTROL]),
            f"{r['main']['hacking']['first_5_steps']:.2f}→{r['main']['hacking']['last_5_steps']:.2f}",
            f"{r['main'][CONTROL]['first_5_steps']:.2f}→{r['main'][CONTROL]['last_5_steps']:.2f}",
            _fmt(alert.get("onset_step")),
            _fmt(alert.get("alert_step")),
            alert.get("hacking_type", "none"),
            _fmt(err.get("interval_error")),
        )
    return table


def _interval(o: dict[str, Any]) -> str:
    if o["canonical_CO"] is None:
        return "none"
    if o["reporting_decision"] == "stable_point":
        return str(o["canonical_CO"])
    return f"{o['canonical_CO']} [{o['CO_min']}, {o['CO_max']}]"


def _gm(final: dict[str, float | None]) -> str:
    g, m = final["G"], final["M"]
    return f"{_fmt(g, '.2f')} / {_fmt(m, '.0f')}"


def _fmt(value: Any, spec: str = "") -> str:
    return "—" if value is None else format(value, spec)
