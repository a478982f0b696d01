"""Asynchronous RL per step and per second: the off-policy corrections compared with seeds.

`benchmarks/async_rl.py` showed asynchronous runs faster per second and worse per step. This
study asks what it takes to close the gap: every correction the engine has, and the staleness
knobs, at eta = 1, 2, 4 against synchronous training (eta = 0, plain GRPO: with no drift
every correction is a no-op, tests/unit/test_offpolicy_losses.py), paired over seeds from
the same warm start (`warm_start`, cached).

Variants (override sets on configs/async_rl/tiny.yaml, whose own default is `tis2`):
- `none`: the PPO clip against the trainer's current weights only, nothing against the
  rollout log-probs; the uncorrected baseline every correction must beat.
- `tis2`: truncated IS, weight min(pi_train / pi_rollout, 2) (Yao et al. 2025).
- `icepop2`: IcePop, the ratio inside [1/2, 2] and 0 outside (Ring-1T).
- `direct_is`: GLM-5's direct double-sided IS, r against the rollout policy, tokens with r
  outside (0.8, 1.28) masked, no pi_old.
- `decoupled_ppo`, `decoupled_ppo+cap2`: AReaL's clip against the recomputed proximal policy,
  weighted by pi_prox / pi_rollout, uncapped and capped at 2 (the same cap as TIS, so the two
  differ only in where the clip is taken).
- `tis2+tau1`, `tis2+reset`, `tis2+K2`: the staleness knobs on the config's default
  correction: GLM-5's drop rule at tau = 1 (default 2), the optimiser state cleared after
  each push, weights pushed every 2 updates.
- `tis2+resume`, `tis2+resume+mask`: partial rollouts resumed from their prefix with the new
  weights after a push, and the same with the older weights' prefix left out of the loss.
Combinations left out, and why: TIS with IcePop multiplies the two weights, so inside
IcePop's band a token is weighted by the ratio twice (IcePop already is a ratio weight);
direct_is and decoupled_ppo ignore `tis_cap` and `icepop_beta` (their importance weight is
built in), so adding them there changes nothing; the knobs are crossed with one correction
(the config's default) rather than all, to keep the grid runnable.

Tasks: `single` (single-turn arithmetic, exact-match reward, no environment, as
configs/rl/tiny.yaml) and `agentic` (the `latency`-wrapped `arithmetic_tool` environment of
the config with longer episodes, max_turns 6, and slower tools, 150 ms median, lognormal
sigma 1.25, 4 s timeout, where GLM-5 makes its claim and partial rollouts matter).

Each run is appended to a JSONL (`--runs`) as soon as it finishes and a rerun with `--full`
(or `--resume`) skips the runs already there, so a crash loses at most the run in flight;
without them every run is made again (so `make bench` measures again) and appended, the
newest record of a run winning. The order of the runs rotates with the seed so machine drift
does not land on one variant. Per run: training reward and
wall-clock time per step, held-out solve rate after training (greedy, `eval_size` held-out
rows, through the task's environment), samples/s over the training window, staleness, the
train-rollout mismatch (`logp_abs_diff`, `mismatch_kl_k3`) and the fraction of tokens each
correction truncates, masks or clips (`tis_truncated_frac`, `icepop_masked_frac`,
`is_masked_frac`, `behaviour_capped_frac`, the PPO clip fractions).

The report, per task and variant x eta against synchronous on the same seeds: the paired
difference in reward per step (each seed's mean over steps), with a 95% t interval over
seeds; reward at wall-clock checkpoints (25%, 50%, 100% of the synchronous run's mean
training time: the mean of the last 5 steps finished by then, the first step's reward, which
measures the warm start, when none has); the held-out difference; and the selection rule
(`choose_default`): the fastest variant whose per-step difference interval reaches 0 and
whose reward at 50% of the synchronous time is above synchronous with its whole interval,
and, beyond the issue's rule, whose held-out difference interval reaches 0 as well: the
training reward of an asynchronous run is biased upward, because the trainer takes groups
in the order they finish and with eta > 0 the quick episodes (solved at the first turn)
finish first, so reward per step alone can flatter asynchrony; the held-out solve rate
(fixed rows, greedy) has no such bias.
Writes benchmarks/results/async_quality.json, async_quality_<task>.png and prints a
markdown table.

    .venv/bin/python benchmarks/async_quality.py             # make bench size, ~2-3 min
    .venv/bin/python benchmarks/async_quality.py --full      # the study, ~2.3 h (below)
    .venv/bin/python benchmarks/async_quality.py --tasks agentic --variants none tis2 \\
        --etas 0 2 --seeds 0 1 2 3 4 --steps 30
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402

from posttrain import atomic  # noqa: E402
from posttrain.config import load_config  # noqa: E402
from posttrain.rl.asynchronous.trainer import AsyncRLTrainer  # noqa: E402
from posttrain.rl.config import RLConfig  # noqa: E402
from posttrain.runs import Run, read_metrics  # noqa: E402
from posttrain.sft.warm_start import warm_start  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "async_rl" / "tiny.yaml"
RESULTS = Path(__file__).parent / "results"

_PLAIN = ["loss.kind=ppo", "loss.tis_cap=null", "loss.icepop_beta=null"]
_TIS2 = ["loss.kind=ppo", "loss.tis_cap=2.0", "loss.icepop_beta=null"]
VARIANTS: dict[str, list[str]] = {
    "none": _PLAIN,
    "tis2": _TIS2,
    "icepop2": ["loss.kind=ppo", "loss.tis_cap=null", "loss.icepop_beta=2.0"],
    "direct_is": ["loss.kind=direct_is", "loss.tis_cap=null", "loss.icepop_beta=null"],
    "decoupled_ppo": ["loss.kind=decoupled_ppo", "loss.tis_cap=null", "loss.behaviour_cap=null"],
    "decoupled_ppo+cap2": [
        "loss.kind=decoupled_ppo",
        "loss.tis_cap=null",
        "loss.behaviour_cap=2.0",
    ],
    "tis2+tau1": [*_TIS2, "async.max_version_gap=1"],
    "tis2+reset": [*_TIS2, "async.reset_optimizer=true"],
    "tis2+K2": [*_TIS2, "async.push_every=2"],
    "tis2+resume": [*_TIS2, "async.partial_rollout=resume"],
    "tis2+resume+mask": [*_TIS2, "async.partial_rollout=resume", "async.mask_stale_prefix=true"],
}
BASELINE = "none"
"""eta = 0 runs this variant only: synchronous GRPO, the reference every variant is paired
with (at eta = 0 each correction is a no-op up to rounding, so one reference serves all)."""

TASKS: dict[str, list[str]] = {
    "single": ["env=null", "env_args={}", "rewards=[exact_match]"],
    "agentic": [
        "max_turns=6",
        "env_args.median_s=0.15",
        "env_args.sigma=1.25",
        "env_args.timeout_s=4.0",
    ],
}

QUICK = {
    "tasks": ["single"],
    "variants": ["none", "tis2"],
    "etas": [0, 2],
    "seeds": [0, 1, 2],
    "steps": 20,
    "eval_size": 100,
}
"""The `make bench` size: about 3-4 minutes on 2 cores; shows the study runs end to end."""

FULL: dict[str, Any] = {
    "tasks": ["single", "agentic"],
    "plan": {  # variant -> etas; the staleness knobs and weaker variants at eta 2 only
        "none": [1, 2, 4],
        "tis2": [1, 2, 4],
        "icepop2": [1, 2, 4],
        "direct_is": [1, 2, 4],
        "decoupled_ppo": [2],
        "decoupled_ppo+cap2": [1, 2, 4],
        "tis2+tau1": [2],
        "tis2+reset": [2],
        "tis2+K2": [2],
        "tis2+resume": [2],
        "tis2+resume+mask": [2],
    },
    "seeds": [0, 1, 2, 3, 4],
    "steps": 20,
    "eval_size": 200,
}
"""`--full`: 2 tasks x (synchronous + 21 asynchronous variant/eta pairs) x 5 seeds = 220 runs of
20 steps. Measured on the 2-core CPU with other jobs beside it (load average about 3), one
30-step run took 51 s (single, sync), 20 s (single, eta 2), 221 s (agentic, sync) and 79 s
(agentic, eta 2), start-up and held-out evaluation included; scaled to 20 steps that is
about 1,680 s a seed, 2.3 h in all (less on an idle machine). Every variant at every eta with
30 steps would be 4.9 h (6.5 h at the config's 40 steps); hence eta 2 only for the knobs and
the uncapped decoupled PPO, and 20 steps."""

CHECKPOINTS = (0.25, 0.5, 1.0)
"""Wall-clock checkpoints, as fractions of the synchronous run's mean training time."""
SELECT_AT = 0.5
"""The checkpoint at which an asynchronous variant must beat synchronous to be chosen."""
MIN_SEEDS = 3
"""Paired seeds a variant needs before the selection rule trusts its intervals: with two, a
coincidence of discrete rewards gives a zero-width interval that reads as certain."""
WINDOW = 5
"""Steps averaged for the reward at a wall-clock checkpoint (the policy's recent quality)."""

CORRECTION_METRICS = (
    "tis_truncated_frac",
    "icepop_masked_frac",
    "is_masked_frac",
    "behaviour_capped_frac",
    "clip_ratio/low_mean",
    "clip_ratio/high_mean",
)


# ----------------------------------------------------------------------------- runs


def overrides_for(task: str, variant: str) -> list[str]:
    return [*TASKS[task], *VARIANTS[variant]]


def run_key(task: str, variant: str, eta: int, seed: int, steps: int, eval_size: int) -> str:
    """Identifies a finished run in the JSONL; the hash of the overrides and the base config
    makes a changed variant, task or config a new run rather than a stale match."""
    spec = json.dumps(
        [CONFIG.read_text(), overrides_for(task, variant), eta, seed, steps, eval_size]
    )
    digest = hashlib.sha256(spec.encode()).hexdigest()[:10]
    return f"{task}/{variant}/eta{eta}/seed{seed}/steps{steps}/eval{eval_size}/{digest}"


def run_one(
    task: str, variant: str, eta: int, seed: int, steps: int, eval_size: int, root: Path
) -> dict[str, Any]:
    """One training run timed apart from its held-out evaluation (as benchmarks/async_rl.py:
    no step-0 evaluation, none inside the training window)."""
    name = f"{task}-{variant}-eta{eta}-seed{seed}".replace("+", "_")
    overrides = [
        *overrides_for(task, variant),
        f"async.eta={eta}",
        f"seed={seed}",
        f"steps={steps}",
        f"eval_size={eval_size}",
        "eval_every=0",
        "save_every=0",
        f"runs_root={root}",
        f"run_name={name}",
    ]
    run_started = time.perf_counter()
    config = load_config(RLConfig, CONFIG, overrides)
    if config.model is None:  # the same cached warm start for every run
        config.model = str(warm_start(config.warm_start).model_dir)
    trainer = AsyncRLTrainer(config, Run.create(config.run_name, config, root=root))
    test_rows, trainer.test_rows = trainer.test_rows, []  # no step-0 evaluation in train()
    started_wall = time.time()
    trainer.train()
    trainer.test_rows = test_rows
    summary = json.loads((trainer.run.path / "async_summary.json").read_text())
    evaluated = time.perf_counter()
    heldout = trainer.evaluate()["eval_reward"]
    eval_s = time.perf_counter() - evaluated
    trainer.run.close()
    records = [r for r in read_metrics(trainer.run.path) if "reward" in r]
    training_s = records[-1]["time"] - started_wall
    corrections = {
        key: statistics.fmean(r[key] for r in records if key in r)
        for key in CORRECTION_METRICS
        if any(key in r for r in records)
    }
    return {
        "key": run_key(task, variant, eta, seed, steps, eval_size),
        "task": task,
        "variant": variant,
        "eta": eta,
        "seed": seed,
        "steps": steps,
        "eval_size": eval_size,
        "reward": [r["reward"] for r in records],
        "time_s": [r["time"] - started_wall for r in records],
        "training_s": training_s,
        "eval_s": eval_s,
        "run_s": time.perf_counter() - run_started,  # with start-up: what the study costs
        "heldout_accuracy": heldout,
        "samples_per_s": summary["trained_samples"] / training_s,
        "trainer_idle_frac": summary["trainer_idle_frac"],
        "staleness_mean": statistics.fmean(r["async/staleness_mean"] for r in records),
        "dropped_stale": sum(r["async/dropped_stale"] for r in records),
        "logp_abs_diff": statistics.fmean(r["logp_abs_diff"] for r in records),
        "mismatch_kl_k3": statistics.fmean(r["mismatch_kl_k3"] for r in records),
        "corrections": corrections,
        "samples_failed": summary["samples_failed"],
    }


def plan_runs(
    tasks: list[str], plan: dict[str, list[int]], seeds: list[int], with_sync: bool
) -> list[tuple[str, str, int, int]]:
    """(task, variant, eta, seed) in the order to run: seed by seed, so a partial study has
    every variant at the same seeds, and the variants' order rotated with the seed."""
    units = [(task, BASELINE, 0) for task in tasks] if with_sync else []
    units += [(task, v, eta) for task in tasks for v, etas in plan.items() for eta in etas]
    order = []
    for k, seed in enumerate(seeds):
        shift = k % len(units) if units else 0
        order += [(*unit, seed) for unit in units[shift:] + units[:shift]]
    return order


def read_runs(path: Path) -> dict[str, dict[str, Any]]:
    """Finished runs by key; a torn last line (the run in flight at a crash) is skipped."""
    done: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[record["key"]] = record
    return done


def append_run(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
        out.flush()
        os.fsync(out.fileno())


# ----------------------------------------------------------------------------- statistics


def t_interval(values: list[float], level: float = 0.95) -> dict[str, Any]:
    """Mean and two-sided t interval over seeds; no interval (None) below two values."""
    from scipy import stats

    n = len(values)
    if n == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    mean = statistics.fmean(values)
    if n < 2:
        return {"mean": mean, "lo": None, "hi": None, "n": 1}
    half = stats.t.ppf(0.5 + level / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": n}


def reward_at(run: dict[str, Any], seconds: float, window: int = WINDOW) -> float:
    """The run's training reward at `seconds` into training: the mean of the last `window`
    steps finished by then; before the first step, that step's reward (its rollouts are the
    warm start's, the policy in place until then)."""
    finished = [r for r, t in zip(run["reward"], run["time_s"], strict=True) if t <= seconds]
    return statistics.fmean(finished[-window:]) if finished else run["reward"][0]


def compare(runs: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """Each (variant, eta) of `task` against the synchronous runs at the same seeds."""
    mine = [r for r in runs if r["task"] == task]
    sync = {r["seed"]: r for r in mine if r["variant"] == BASELINE and r["eta"] == 0}
    sync_s = statistics.fmean(r["training_s"] for r in sync.values()) if sync else None
    sync_speed = statistics.fmean(r["samples_per_s"] for r in sync.values()) if sync else None
    rows = []
    order = list(VARIANTS)
    pairs = sorted(
        {(r["variant"], r["eta"]) for r in mine}, key=lambda k: (k[1], order.index(k[0]))
    )
    for variant, eta in pairs:
        group = [r for r in mine if r["variant"] == variant and r["eta"] == eta]
        paired = [(r, sync[r["seed"]]) for r in group if r["seed"] in sync]
        speed = statistics.fmean(r["samples_per_s"] for r in group)
        row: dict[str, Any] = {
            "task": task,
            "variant": variant,
            "eta": eta,
            "seeds": sorted(r["seed"] for r in group),
            "samples_per_s": speed,
            "speedup_vs_sync": speed / sync_speed if sync_speed else None,
            "training_s": statistics.fmean(r["training_s"] for r in group),
            "reward_per_step": statistics.fmean(statistics.fmean(r["reward"]) for r in group),
            "heldout_accuracy": statistics.fmean(r["heldout_accuracy"] for r in group),
            "staleness_mean": statistics.fmean(r["staleness_mean"] for r in group),
            "dropped_stale": statistics.fmean(r["dropped_stale"] for r in group),
            "logp_abs_diff": statistics.fmean(r["logp_abs_diff"] for r in group),
            "mismatch_kl_k3": statistics.fmean(r["mismatch_kl_k3"] for r in group),
            "corrections": {
                key: statistics.fmean(r["corrections"][key] for r in group)
                for key in CORRECTION_METRICS
                if all(key in r["corrections"] for r in group)
            },
            "reward_step_diff": t_interval(
                [statistics.fmean(r["reward"]) - statistics.fmean(s["reward"]) for r, s in paired]
            ),
            "heldout_diff": t_interval(
                [r["heldout_accuracy"] - s["heldout_accuracy"] for r, s in paired]
            ),
            # Step 1 trains on warm-start rollouts at every eta, so a difference there is
            # which groups the trainer took (completion order), not learning.
            "first_step_diff": t_interval([r["reward"][0] - s["reward"][0] for r, s in paired]),
            "wallclock": {},
        }
        for fraction in CHECKPOINTS:
            at = fraction * sync_s if sync_s else None
            row["wallclock"][str(fraction)] = {
                "seconds": at,
                "reward": statistics.fmean(reward_at(r, at) for r in group) if at else None,
                "diff": t_interval([reward_at(r, at) - reward_at(s, at) for r, s in paired])
                if at
                else t_interval([]),
            }
        rows.append(row)
    return rows


def choose_default(
    rows: list[dict[str, Any]], select_at: float = SELECT_AT, heldout_guard: bool = True
) -> dict[str, Any]:
    """Point 3 of the issue as code: among asynchronous rows (eta > 0), those whose per-step
    reward difference from synchronous has a 95% interval reaching 0 (not worse within the
    interval) and whose reward at `select_at` of the synchronous time is better with its
    whole interval above 0 (and, with `heldout_guard`, whose held-out difference interval
    reaches 0: the training reward's completion-order bias, module docstring); the fastest
    of them (samples/s). With none, "none qualifies" and the trade-off: the best per step
    and the best at that time, with their speed."""
    at = str(select_at)

    def heldout_ok(row: dict[str, Any]) -> bool:
        held = row.get("heldout_diff", {}).get("hi")
        return not heldout_guard or (held is not None and held >= 0)

    def label(row: dict[str, Any]) -> str:
        return f"{row['variant']} at eta {row['eta']}"

    async_rows = [r for r in rows if r["eta"] > 0]
    qualifying = [
        r
        for r in async_rows
        if r["reward_step_diff"]["n"] >= MIN_SEEDS
        and r["wallclock"][at]["diff"]["n"] >= MIN_SEEDS
        and r["reward_step_diff"]["hi"] is not None
        and r["reward_step_diff"]["hi"] >= 0
        and r["wallclock"][at]["diff"]["lo"] is not None
        and r["wallclock"][at]["diff"]["lo"] > 0
        and heldout_ok(r)
    ]
    if qualifying:
        best = max(qualifying, key=lambda r: r["samples_per_s"])
        return {
            "chosen": label(best),
            "variant": best["variant"],
            "eta": best["eta"],
            "qualifying": [label(r) for r in qualifying],
            "reason": (
                f"fastest of {len(qualifying)} qualifying: {best['speedup_vs_sync']:.2f}x "
                f"sync samples/s, reward/step {_ci(best['reward_step_diff'])} vs sync, at "
                f"{select_at:.0%} of sync time {_ci(best['wallclock'][at]['diff'])}, held-out "
                f"{_ci(best['heldout_diff'], '+.1%')}"
            ),
        }
    scored = [
        r
        for r in async_rows
        if r["reward_step_diff"]["mean"] is not None
        and r["wallclock"][at]["diff"]["mean"] is not None
    ]
    if not scored:
        return {"chosen": None, "reason": "no asynchronous run paired with synchronous ones"}
    per_step = max(scored, key=lambda r: r["reward_step_diff"]["mean"])
    timed = max(scored, key=lambda r: r["wallclock"][at]["diff"]["mean"])
    return {
        "chosen": None,
        "reason": (
            "none qualifies. Trade-off: best per step is "
            f"{label(per_step)} ({_ci(per_step['reward_step_diff'])} reward/step vs sync, "
            f"{per_step['speedup_vs_sync']:.2f}x samples/s, held-out "
            f"{_ci(per_step['heldout_diff'], '+.1%')}); best at {select_at:.0%} of the "
            f"sync time is {label(timed)} ({_ci(timed['wallclock'][at]['diff'])}, "
            f"reward/step {_ci(timed['reward_step_diff'])}, held-out "
            f"{_ci(timed['heldout_diff'], '+.1%')})"
        ),
    }


def _ci(stat: dict[str, Any], fmt: str = "+.3f") -> str:
    if stat["mean"] is None:
        return "n/a"
    if stat["lo"] is None:
        return f"{stat['mean']:{fmt}} (1 seed)"
    return f"{stat['mean']:{fmt}} [{stat['lo']:{fmt}}, {stat['hi']:{fmt}}]"


# ----------------------------------------------------------------------------- output


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| task | variant | eta | samples/s (vs sync) | staleness | \\|Δlogp\\| / KL "
        "| masked or clipped | Δ reward/step [95% CI] "
        + "".join(f"| Δ reward @{f:.0%} sync time " for f in CHECKPOINTS)
        + "| Δ held-out [95% CI] |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(CHECKPOINTS) + "---|",
    ]
    for row in rows:
        speedup = f"{row['speedup_vs_sync']:.2f}x" if row["speedup_vs_sync"] else "no sync"
        fractions = ", ".join(
            f"{key.replace('clip_ratio/', 'clip_')} {value:.1%}"
            for key, value in row["corrections"].items()
            if value > 0 or not key.startswith("clip")
        )
        lines.append(
            f"| {row['task']} | {row['variant'] if row['eta'] else 'sync'} | {row['eta']} "
            f"| {row['samples_per_s']:.1f} ({speedup}) "
            f"| {row['staleness_mean']:.2f} "
            f"| {row['logp_abs_diff']:.3f} / {row['mismatch_kl_k3']:.3f} "
            f"| {fractions or '-'} | {_ci(row['reward_step_diff'])} "
            + "".join(f"| {_ci(row['wallclock'][str(f)]['diff'])} " for f in CHECKPOINTS)
            + f"| {_ci(row['heldout_diff'], '+.1%')} |"
        )
    return "\n".join(lines)


def _smooth(values: list[float], window: int = 5) -> list[float]:
    return [statistics.fmean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]


def plot(runs: list[dict[str, Any]], rows: list[dict[str, Any]], task: str, out: Path) -> None:
    """One column per eta > 0: reward against step and against wall-clock time (seed means,
    5-step moving average; synchronous in black on every panel), and the per-step reward
    difference from synchronous with its 95% interval, per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [r for r in runs if r["task"] == task]
    etas = sorted({r["eta"] for r in mine if r["eta"] > 0}) or [0]
    variants = list(dict.fromkeys(r["variant"] for r in mine if r["eta"] > 0))
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(3, len(etas), figsize=(max(8, 5 * len(etas)), 11), squeeze=False)

    def curve(group: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
        steps = min(len(r["reward"]) for r in group)
        reward = [statistics.fmean(r["reward"][i] for r in group) for i in range(steps)]
        times = [statistics.fmean(r["time_s"][i] for r in group) for i in range(steps)]
        return _smooth(reward), times

    sync = [r for r in mine if r["eta"] == 0]
    for column, eta in enumerate(etas):
        by_step, by_time, delta = axes[0][column], axes[1][column], axes[2][column]
        if sync:
            reward, times = curve(sync)
            by_step.plot(range(1, len(reward) + 1), reward, color="black", lw=2, label="sync")
            by_time.plot(times, reward, color="black", lw=2, label="sync")
        for i, variant in enumerate(variants):
            group = [r for r in mine if r["variant"] == variant and r["eta"] == eta]
            if not group:
                continue
            reward, times = curve(group)
            colour = colours(i % 10)
            by_step.plot(range(1, len(reward) + 1), reward, color=colour, label=variant)
            by_time.plot(times, reward, color=colour, label=variant)
        by_step.set(title=f"eta={eta}: reward vs step", xlabel="trainer step", ylabel="reward")
        by_time.set(title=f"eta={eta}: reward vs time", xlabel="training time (s)")
        by_step.legend(fontsize=7)
        shown = [r for r in rows if r["eta"] == eta and r["reward_step_diff"]["mean"] is not None]
        for y, row in enumerate(shown):
            stat = row["reward_step_diff"]
            lo, hi = stat["lo"], stat["hi"]
            err = [[stat["mean"] - lo], [hi - stat["mean"]]] if lo is not None else None
            delta.errorbar(stat["mean"], y, xerr=err, fmt="o", color="tab:blue", capsize=3)
        delta.axvline(0.0, color="black", lw=0.8)
        delta.set_yticks(range(len(shown)), [r["variant"] for r in shown], fontsize=7)
        delta.set(title=f"eta={eta}: reward/step - sync (95% CI)", xlabel="difference")
    fig.suptitle(f"async_quality.py, task {task} (seed means, 5-step moving average)", size=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the whole study (FULL)")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    parser.add_argument("--etas", type=int, nargs="+", help="0 runs the synchronous reference")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--eval-size", type=int)
    parser.add_argument("--runs", type=Path, default=RESULTS / "async_quality_runs.jsonl")
    parser.add_argument("--out", type=Path, default=RESULTS / "async_quality.json")
    parser.add_argument(
        "--report-only", action="store_true", help="report the runs in --runs, run nothing"
    )
    parser.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="skip runs already in --runs (default: with --full; otherwise every run is made "
        "again, so `make bench` measures again, and appended)",
    )
    return parser.parse_args(argv)


def resolve_grid(args: argparse.Namespace) -> dict[str, Any]:
    """The size asked for: QUICK or FULL, with any flag replacing its part."""
    base = FULL if args.full else QUICK
    plan = dict(base["plan"]) if "plan" in base else None
    if args.variants or args.etas or plan is None:
        etas = args.etas or base.get("etas") or [0, 1, 2, 4]
        variants = args.variants or (list(plan) if plan else base["variants"])
        plan = {v: [e for e in etas if e > 0] for v in variants}
        with_sync = 0 in etas
    else:
        with_sync = True
    return {
        "tasks": args.tasks or base["tasks"],
        "plan": plan,
        "with_sync": with_sync,
        "seeds": args.seeds or base["seeds"],
        "steps": args.steps or base["steps"],
        "eval_size": args.eval_size or base["eval_size"],
    }


def main(argv: Iterable[str] | None = None) -> None:
    args = parse_args(argv)
    grid = resolve_grid(args)
    torch.set_num_threads(1)  # the rollout engines get one thread each too (config default)
    order = plan_runs(grid["tasks"], grid["plan"], grid["seeds"], grid["with_sync"])
    steps, eval_size = grid["steps"], grid["eval_size"]
    resume = args.full if args.resume is None else args.resume
    # Not resuming runs everything again and appends; nothing in --runs is ever deleted, and
    # read_runs keeps the newest record of a run.
    done = read_runs(args.runs) if resume or args.report_only else {}
    started = time.perf_counter()
    wanted = []
    with tempfile.TemporaryDirectory() as root:
        for i, (task, variant, eta, seed) in enumerate(order):
            key = run_key(task, variant, eta, seed, steps, eval_size)
            wanted.append(key)
            if key in done or args.report_only:
                continue
            print(f"== [{i + 1}/{len(order)}] {task} {variant} eta={eta} seed={seed}", flush=True)
            record = run_one(task, variant, eta, seed, steps, eval_size, Path(root))
            append_run(args.runs, record)
            done[key] = record
            print(
                f"   {record['training_s']:.1f} s training, {record['samples_per_s']:.1f} "
                f"samples/s, reward/step {statistics.fmean(record['reward']):.3f}, held-out "
                f"{record['heldout_accuracy']:.1%}",
                flush=True,
            )
    runs = [done[key] for key in wanted if key in done]
    rows, choices = [], {}
    for task in grid["tasks"]:
        task_rows = compare(runs, task)
        rows += task_rows
        choices[task] = choose_default(task_rows)
        if any(r["task"] == task for r in runs):
            plot(runs, task_rows, task, args.out.parent / f"{args.out.stem}_{task}.png")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(
        args.out,
        json.dumps(
            {
                "benchmark": "async_quality",
                "grid": grid,
                "variants": {v: VARIANTS[v] for v in grid["plan"]},
                "tasks": {t: TASKS[t] for t in grid["tasks"]},
                "comparison": rows,
                "default": choices,
                "runs": runs,
                "run_s_this_call": time.perf_counter() - started,
                "runs_total_s": sum(r.get("run_s", 0.0) for r in runs),
                "machine": {
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(),
                    "load_average_1_5_15_min_at_end": os.getloadavg(),
                },
            },
            indent=2,
        ),
    )
    print(markdown(rows))
    for task, choice in choices.items():
        print(f"default ({task}): {choice['chosen'] or 'none'}: {choice['reason']}")
    print(f"wrote {args.out}, {args.runs} and the plots beside them")


if __name__ == "__main__":
    main()
