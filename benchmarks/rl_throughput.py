"""RL training throughput: posttrain's `RLTrainer` against TRL's `GRPOTrainer`, in one process.

Both train the same warm-started tiny arithmetic policy on CPU, one after the other, with the
same prompts (chat template), reward (exact_match), group size, batch shape, sampling,
generation length, loss (DAPO token-mean, clip-higher, no KL), optimizer and number of steps.
Each final model is then scored the same way: greedy answers on the 200 held-out rows through
`HFChat` + `exact_match_accuracy`. The pair runs once per seed (default 0, 1, 2), the trainer
that goes first alternating, so that neither always runs on a colder or busier machine.

Writes benchmarks/results/rl_throughput.json with completions generated+trained per second of
training-loop wall time for each trainer (all completions / all loop time over the seeds),
their ratio (posttrain / TRL; above 1.0 means posttrain is faster), the final held-out
accuracy and the mean training reward over the last 10 steps (means over the seeds, with
per-run values), where the time went (rollout vs the rest), the exact settings and the
machine. Prints a markdown table for docs/rl-engine.md.

    .venv/bin/python benchmarks/rl_throughput.py [--steps 30] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402

from posttrain.data.prompts import load_prompt_rows  # noqa: E402
from posttrain.eval.exact_match import exact_match_accuracy  # noqa: E402
from posttrain.models.chat.base import GenerationParams  # noqa: E402
from posttrain.models.chat.hf import HFChat  # noqa: E402
from posttrain.rewards import get_reward  # noqa: E402
from posttrain.runs import read_metrics  # noqa: E402
from posttrain.sft.warm_start import WarmStartConfig, warm_start  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "rl_throughput.json"
STEPS = 30
GROUP = 8  # completions per prompt (num_generations / rollout.n)
PROMPTS_PER_STEP = 16
COMPLETIONS_PER_STEP = GROUP * PROMPTS_PER_STEP  # 128, one generation batch per optimizer step
MICRO_BATCH = 64  # completions per forward/backward pass
MAX_TOKENS = 8
TEMPERATURE = 1.0
TOP_P = 1.0
LR = 3e-4
BETAS = (0.9, 0.99)
EPS_LOW, EPS_HIGH = 0.2, 0.28
MAX_GRAD_NORM = 1.0
SEEDS = (0, 1, 2)  # one repeat per seed; the order of the two trainers alternates
LAST_N = 10  # steps over which the training reward is averaged
EVAL_PARAMS = GenerationParams(max_tokens=MAX_TOKENS)  # greedy


class Stopwatch:
    """Wraps callables so that the wall and process CPU time spent in them is summed by name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                cpu = time.process_time() - cpu_started
                self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + cpu
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed


class MachineMeter:
    """What else the machine did while a trainer ran: this process's CPU seconds (all
    threads), the CPU seconds everything else in this VM used, and the share of time the
    hypervisor gave the vCPUs to someone else (steal), from /proc/stat."""

    def __enter__(self) -> MachineMeter:
        self._cpu, self._ticks, self._load = time.process_time(), _ticks(), os.getloadavg()[0]
        return self

    def __exit__(self, *exc: object) -> None:
        self.process_cpu_s = time.process_time() - self._cpu
        ticks = _ticks()
        self.stats: dict[str, float] = {"loadavg_1m_before": round(self._load, 2)}
        if ticks and self._ticks:
            user, nice, system, idle, iowait, irq, softirq, steal = (
                a - b for a, b in zip(ticks[:8], self._ticks[:8], strict=True)
            )
            hz = os.sysconf("SC_CLK_TCK")
            busy = (user + nice + system + irq + softirq) / hz
            total = user + nice + system + idle + iowait + irq + softirq + steal
            self.stats["other_processes_cpu_s"] = round(max(busy - self.process_cpu_s, 0.0), 2)
            self.stats["steal_frac"] = round(steal / total, 4) if total else 0.0


def _ticks() -> list[int]:
    try:
        return [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return []


def warm_up_process(model_dir: Path) -> None:
    """One sampled generation and one forward/backward on a throwaway copy of the policy, so
    that one-time process costs (lazy imports, oneDNN kernel set-up) hit neither trainer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from posttrain.models.generation import LocalGenerator

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    rows = load_prompt_rows(None)[:PROMPTS_PER_STEP]
    prompts = [
        tokenizer.apply_chat_template(
            r["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False
        )
        for r in rows
    ]
    LocalGenerator(model, tokenizer).generate(
        prompts, GenerationParams(n=GROUP, temperature=1.0, max_tokens=MAX_TOKENS, seed=0)
    )
    model.train()
    ids = torch.randint(3, tokenizer.vocab_size, (MICRO_BATCH, 24))
    model(input_ids=ids, labels=ids).loss.backward()


def run_posttrain(model_dir: Path, steps: int, seed: int, root: Path) -> dict[str, Any]:
    import posttrain.rl.trainer as engine
    from posttrain.rl.config import LossConfig, OptimConfig, RLConfig, RolloutConfig

    config = RLConfig(
        model=str(model_dir),
        rewards=["exact_match"],
        rollout=RolloutConfig(n=GROUP, temperature=TEMPERATURE, top_p=TOP_P, max_tokens=MAX_TOKENS),
        loss=LossConfig(
            eps_low=EPS_LOW,
            eps_high=EPS_HIGH,
            aggregation="token-mean",
            scale_advantages=True,
            kl_coef=0.0,
        ),
        optim=OptimConfig(
            lr=LR,
            weight_decay=0.0,
            betas=BETAS,
            max_grad_norm=MAX_GRAD_NORM,
            warmup_steps=0,
            scheduler="constant_with_warmup",
        ),
        steps=steps,
        prompts_per_step=PROMPTS_PER_STEP,
        mini_batches=1,
        micro_batch_size=MICRO_BATCH,
        eval_every=0,  # RLTrainer.train() then evaluates only before step 1
        save_every=0,
        seed=seed,
        run_name=f"posttrain-{seed}",
        runs_root=str(root / "runs"),
    )
    trainer = engine.RLTrainer(config)  # model loading: not timed
    watch = Stopwatch()
    # Held-out evaluation, saving the final model and rendering report.html (matplotlib
    # plots) are timed separately and excluded from the training loop.
    trainer.evaluate = watch.wrap("evaluate", trainer.evaluate)
    trainer.save_final = watch.wrap("save_final", trainer.save_final)
    write_report = engine.write_report
    engine.write_report = watch.wrap("write_report", write_report)
    with MachineMeter() as meter:
        started = time.perf_counter()
        try:
            trainer.train()
        finally:
            engine.write_report = write_report
        wall = time.perf_counter() - started
    excluded = sum(watch.seconds.values())
    cpu = meter.process_cpu_s - sum(watch.cpu_seconds.values())
    records = [r for r in read_metrics(trainer.run.path) if r.get("step", 0) > 0]
    breakdown = time_breakdown(
        generation=sum(r["time/generation_s"] for r in records),
        rewards=sum(r["time/rollout_s"] - r["time/generation_s"] for r in records),
        logprob_passes=sum(r["time/old_logprobs_s"] for r in records),
        forward_backward=sum(r["time/forward_backward_s"] for r in records),
        optimizer=sum(r["time/optimizer_s"] for r in records),
        steps=sum(r["time/step_s"] for r in records),
    )
    completions = round(sum(r["groups/kept"] for r in records)) * GROUP
    rollout = sum(r["time/rollout_s"] for r in records)
    rewards = [r["reward"] for r in records]
    length = sum(r["completions/mean_length"] for r in records) / len(records)
    final_dir = trainer.run.checkpoints / "final"
    del trainer
    gc.collect()
    loop = wall - excluded
    return {
        "loop_s": round(loop, 3),
        "train_call_s": round(wall, 3),
        "excluded_s": {k: round(v, 3) for k, v in watch.seconds.items()},
        "steps": len(records),
        **loop_record(
            completions, loop, [r["time/step_s"] for r in records], rollout, rewards, length, cpu
        ),
        "machine": meter.stats,
        "time_breakdown_s": breakdown,
        "final_model": final_dir,
    }


def time_breakdown(steps: float, **parts: float) -> dict[str, float]:
    """Seconds per part of the summed step time, and what no part covers ("other": metrics,
    tensor packing, Python between the parts)."""
    out = {name: round(value, 3) for name, value in parts.items()}
    out["other"] = round(steps - sum(parts.values()), 3)
    return out


def loop_record(
    completions: int,
    loop: float,
    step_times: list[float],
    rollout: float,
    rewards: list[float],
    length: float,
    cpu: float,
) -> dict[str, Any]:
    """The per-run figures both trainers report, computed the same way for each."""
    step_sum = sum(step_times)
    return {
        "completions": completions,
        "samples_per_s": round(completions / loop, 2),
        "step_sum_s": round(step_sum, 3),
        "samples_per_s_step_sum": round(completions / step_sum, 2),
        "rollout_s": round(rollout, 3),
        "rollout_frac": round(rollout / step_sum, 3),
        "first_step_s": round(step_times[0], 3),
        "step_times_s": [round(t, 3) for t in step_times],
        "reward_last_10": round(sum(rewards[-LAST_N:]) / len(rewards[-LAST_N:]), 4),
        "reward_first_step": round(rewards[0], 4),
        "mean_completion_tokens": round(length, 3),
        "cpu_s": round(cpu, 2),
        "samples_per_cpu_s": round(completions / cpu, 2),
    }


def trl_config(steps: int, seed: int, output_dir: Path) -> Any:
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(output_dir),
        max_steps=steps,
        # One generation batch of 16 prompts x 8 = 128 completions per optimizer step, trained
        # in 2 micro-batches of 64: TRL's generation batch is per_device_train_batch_size x
        # steps_per_generation, and with steps_per_generation == gradient_accumulation_steps
        # and num_iterations=1 each optimizer step consumes exactly one generation batch (and
        # TRL skips the old-log-prob pass, as posttrain does with one mini-batch).
        per_device_train_batch_size=MICRO_BATCH,
        gradient_accumulation_steps=COMPLETIONS_PER_STEP // MICRO_BATCH,
        steps_per_generation=COMPLETIONS_PER_STEP // MICRO_BATCH,
        num_iterations=1,
        num_generations=GROUP,
        max_completion_length=MAX_TOKENS,
        temperature=TEMPERATURE,
        top_p=TOP_P,
        top_k=0,
        beta=0.0,
        loss_type="dapo",
        epsilon=EPS_LOW,
        epsilon_high=EPS_HIGH,
        scale_rewards="group",
        learning_rate=LR,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=0,
        adam_beta1=BETAS[0],
        adam_beta2=BETAS[1],
        weight_decay=0.0,
        max_grad_norm=MAX_GRAD_NORM,
        gradient_checkpointing=False,  # GRPOConfig defaults to True; posttrain does not recompute
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=seed,
    )


def OptimizerTimer(watch: Stopwatch) -> Any:  # noqa: N802 - builds a callback instance
    """A TRL callback that times each optimizer step (clipping excluded) into `watch`."""
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        started = 0.0

        def on_pre_optimizer_step(self, *args: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()

        def on_optimizer_step(self, *args: Any, **kwargs: Any) -> None:
            elapsed = time.perf_counter() - self.started
            watch.seconds["optimizer"] = watch.seconds.get("optimizer", 0.0) + elapsed

    return Timer()


def run_trl(model_dir: Path, steps: int, seed: int, root: Path) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOTrainer

    class StepTimes(TrainerCallback):
        """Time from the start to the end of each optimizer step (generation included)."""

        def __init__(self) -> None:
            self.times: list[float] = []
            self._started = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.times.append(time.perf_counter() - self._started)

    counted = {"completions": 0}
    exact_match = get_reward("exact_match")

    def reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        counted["completions"] += len(completions)
        return exact_match(prompts, completions, **kwargs)

    reward.__name__ = "exact_match"  # TRL names the logged reward after the function

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    dataset = Dataset.from_list(load_prompt_rows(None))
    step_times = StepTimes()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=trl_config(steps, seed, root / f"trl-{seed}"),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[step_times],
    )
    watch = Stopwatch()
    trainer._generate_and_score_completions = watch.wrap(
        "rollout", trainer._generate_and_score_completions
    )
    trainer._generate = watch.wrap("generation", trainer._generate)
    trainer._calculate_rewards = watch.wrap("rewards", trainer._calculate_rewards)
    trainer.training_step = watch.wrap("forward_backward", trainer.training_step)
    logps = trainer._get_per_token_logps_and_entropies

    def per_token_logps(*args: Any, **kwargs: Any) -> Any:
        # The no-grad passes (old / reference log-probs) apart from the training forward.
        name = "forward_in_training_step" if torch.is_grad_enabled() else "logprob_passes"
        return watch.wrap(name, logps)(*args, **kwargs)

    trainer._get_per_token_logps_and_entropies = per_token_logps
    trainer.add_callback(OptimizerTimer(watch))
    with MachineMeter() as meter:
        started = time.perf_counter()
        output = trainer.train()
        loop = time.perf_counter() - started
    cpu = meter.process_cpu_s
    final_dir = root / f"trl-{seed}-final"
    trainer.save_model(str(final_dir))
    tokenizer.save_pretrained(final_dir)
    logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    rewards = [entry["reward"] for entry in logs]
    length = sum(entry["completions/mean_length"] for entry in logs) / len(logs)
    completions = counted["completions"]
    rollout = watch.seconds.get("rollout", 0.0)
    seconds = watch.seconds
    breakdown = time_breakdown(
        generation=seconds.get("generation", 0.0),
        rewards=seconds.get("rewards", 0.0),
        logprob_passes=seconds.get("logprob_passes", 0.0),
        # TRL generates inside training_step (through _prepare_inputs): take that out.
        forward_backward=seconds.get("forward_backward", 0.0) - rollout,
        optimizer=seconds.get("optimizer", 0.0),
        steps=sum(step_times.times),
    )
    result = {
        "loop_s": round(loop, 3),
        "train_runtime_s": round(output.metrics["train_runtime"], 3),
        "steps": trainer.state.global_step,
        "generation_calls": watch.calls.get("rollout", 0),
        **loop_record(completions, loop, step_times.times, rollout, rewards, length, cpu),
        "machine": meter.stats,
        "time_breakdown_s": breakdown,
        "final_model": final_dir,
    }
    del trainer, model
    gc.collect()
    return result


def held_out_accuracy(model_dir: Path, rows: list[dict[str, Any]]) -> float:
    chat = HFChat(model_dir)
    accuracy, _ = exact_match_accuracy(chat, rows, EVAL_PARAMS)
    return round(accuracy, 4)


NOTES = [
    "Timed loop, posttrain: wall time around RLTrainer.train() (train_call_s) minus the "
    "held-out evaluation it runs before step 1, save_final() and the end-of-run report.html "
    "rendering (each timed and listed under excluded_s); per-step metrics logging (fsynced "
    "jsonl) and the progress bar stay in.",
    "Timed loop, TRL: wall time around GRPOTrainer.train(), nothing subtracted (it also "
    "builds the dataloader and optimizer inside train()); TRL's own train_runtime is "
    "recorded beside it. save_model() runs after the timed region.",
    "samples_per_s_step_sum divides by the summed per-step times only (posttrain's "
    "time/step_s; TRL from on_step_begin to on_step_end), i.e. without loop overhead.",
    "rollout_s: posttrain's time/rollout_s (collect: generate, reward, advantages); TRL's "
    "_generate_and_score_completions (tokenise, generate, reward, advantages).",
    "samples_per_s and samples_per_s_step_sum are totals over the seeds (all completions / "
    "all time); heldout_accuracy and reward_last_10 are means over the seeds. Per-run "
    "values are under runs and *_runs.",
    "samples_per_s_median_step: 128 completions / the median step time over all steps of "
    "all runs (robust to bursts of contention on a shared machine).",
    "samples_per_cpu_s divides by this process's CPU seconds (all threads) over the same "
    "timed region: less sensitive than wall time to other work on a shared machine. Each "
    "run's machine entry gives the CPU seconds other processes used meanwhile and the "
    "hypervisor steal fraction.",
    "time_breakdown_s: seconds summed over the steps of all runs. posttrain: its own "
    "time/* metrics (generation = rollout through the generator; rewards = the rest of "
    "collect: scoring, advantages, metrics; logprob_passes = the no-grad pi_old / reference "
    "passes; forward_backward = the training micro-batches; optimizer = clipping + step). "
    "TRL: _generate, _calculate_rewards, no-grad _get_per_token_logps_and_entropies calls, "
    "training_step minus _generate_and_score_completions, which TRL calls inside it "
    "(forward + backward), and the optimizer step between the "
    "on_pre_optimizer_step / on_optimizer_step callbacks. other = step time not in a part.",
    "A throwaway generate + forward/backward runs first so that one-time process start-up "
    "costs are charged to neither trainer.",
    "TRL batch shape: per_device_train_batch_size=64, gradient_accumulation_steps=2, "
    "steps_per_generation=2 (generation batch = per_device_train_batch_size x "
    "steps_per_generation = 128 completions, consumed by exactly one optimizer step). "
    "steps_per_generation=1 would need per_device_train_batch_size=128, i.e. one 128-wide "
    "backward instead of posttrain's two micro-batches of 64.",
    "TRL: gradient_checkpointing=False set explicitly (GRPOConfig defaults to True; posttrain "
    "does not recompute activations). TRL keeps its default optimizer adamw_torch_fused; "
    "posttrain uses torch.optim.AdamW unfused. Same hyper-parameters.",
    "Same sampling (transformers generate, temperature 1, top_p 1, top_k 0) but different "
    "random streams and prompt orders (posttrain's seeded PromptStream vs TRL's "
    "RepeatSampler), so the two runs see different prompts and samples.",
    "posttrain also returns the sampled tokens' log-probs from generate (output_logits) and "
    "computes logits for every position in training; TRL computes logits only for completion "
    "positions (logits_to_keep). Both compute per-token entropy for logging.",
]


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the repeats (throughput = all completions / all loop time) and per-run lists."""
    completions = sum(r["completions"] for r in runs)

    def mean(key: str) -> float:
        return round(sum(r[key] for r in runs) / len(runs), 4)

    return {
        "samples_per_s": round(completions / sum(r["loop_s"] for r in runs), 2),
        "samples_per_s_step_sum": round(completions / sum(r["step_sum_s"] for r in runs), 2),
        "samples_per_s_runs": [r["samples_per_s"] for r in runs],
        "samples_per_cpu_s": round(completions / sum(r["cpu_s"] for r in runs), 2),
        "samples_per_s_median_step": round(
            COMPLETIONS_PER_STEP / statistics.median(t for r in runs for t in r["step_times_s"]),
            2,
        ),
        "heldout_accuracy": mean("heldout_accuracy"),
        "heldout_accuracy_runs": [r["heldout_accuracy"] for r in runs],
        "reward_last_10": mean("reward_last_10"),
        "reward_last_10_runs": [r["reward_last_10"] for r in runs],
        "rollout_frac": round(
            sum(r["rollout_s"] for r in runs) / sum(r["step_sum_s"] for r in runs), 3
        ),
        "mean_completion_tokens": mean("mean_completion_tokens"),
        "time_breakdown_s": {
            part: round(sum(r["time_breakdown_s"][part] for r in runs), 3)
            for part in runs[0]["time_breakdown_s"]
        },
        "runs": runs,
    }


def markdown_table(result: dict[str, Any]) -> str:
    post, trl = result["posttrain"], result["trl"]
    rows = [
        "| trainer | samples/s | held-out accuracy | train reward (last 10 steps) |",
        "|---|---|---|---|",
    ]
    names = ("posttrain RLTrainer", f"TRL GRPOTrainer {result['trl_version']}")
    for name, r in zip(names, (post, trl), strict=True):
        speeds = ", ".join(f"{v:.0f}" for v in r["samples_per_s_runs"])
        accuracies = ", ".join(f"{v:.1%}" for v in r["heldout_accuracy_runs"])
        rows.append(
            f"| {name} | {r['samples_per_s']:.1f} ({speeds}) "
            f"| {r['heldout_accuracy']:.1%} ({accuracies}) | {r['reward_last_10']:.3f} |"
        )
    s = result["settings"]
    rows.append("")
    rows.append(
        f"posttrain / TRL throughput: **{result['ratio_samples_per_s']:.2f}x**. "
        f"{len(s['seeds'])} runs each (seeds {', '.join(map(str, s['seeds']))}; per-run values "
        f"in brackets; samples/s = all completions / all training-loop time, accuracy and "
        f"reward = means), {s['steps']} steps x {s['completions_per_step']} completions "
        f"({s['prompts_per_step']} prompts x {s['group_size']}), up to {s['max_tokens']} new "
        f"tokens, CPU, {result['machine']['torch_threads']} threads, torch "
        f"{result['machine']['torch']}. Warm-start policy: {result['warm_start_accuracy']:.1%} "
        f"held-out accuracy."
    )
    steal = [r["machine"].get("steal_frac", 0.0) for r in post["runs"] + trl["runs"]]
    rows.append("")
    rows.append(
        f"Same ratio from the median step time: {result['ratio_samples_per_s_median_step']:.2f}x;"
        f" per CPU-second: {result['ratio_samples_per_cpu_s']:.2f}x. CPU time stolen by the "
        f"hypervisor during the runs: {min(steal):.0%} to {max(steal):.0%}."
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=list(SEEDS), help="one repeat per seed"
    )
    args = parser.parse_args()
    import transformers
    import trl

    script_started = time.perf_counter()
    warm = warm_start(WarmStartConfig())  # cached after the first build; not timed
    test_rows = load_prompt_rows(None, split="test")
    warm_up_process(warm.model_dir)
    runners = {"posttrain": run_posttrain, "trl": run_trl}
    runs: dict[str, list[dict[str, Any]]] = {"posttrain": [], "trl": []}
    order = []
    with tempfile.TemporaryDirectory(prefix="rl-throughput-") as tmp:
        root = Path(tmp)
        for repeat, seed in enumerate(args.seeds):
            names = ["posttrain", "trl"] if repeat % 2 == 0 else ["trl", "posttrain"]
            for name in names:
                order.append(f"{name}:seed={seed}")
                result = runners[name](warm.model_dir, args.steps, seed, root)
                result["seed"] = seed
                result["heldout_accuracy"] = held_out_accuracy(result.pop("final_model"), test_rows)
                runs[name].append(result)
                print(
                    f"{name} seed={seed}: {result['samples_per_s']} samples/s, "
                    f"held-out {result['heldout_accuracy']:.1%}",
                    flush=True,
                )
        baseline = held_out_accuracy(warm.model_dir, test_rows)
    post, trl_summary = summarise(runs["posttrain"]), summarise(runs["trl"])
    result = {
        "benchmark": "rl_throughput",
        "what": "completions generated+trained per second of training-loop wall time, same "
        "model/data/settings, posttrain RLTrainer vs TRL GRPOTrainer, one after the other",
        "order": order,
        "trl_version": trl.__version__,
        "settings": {
            "model": "warm-start tiny arithmetic policy (WarmStartConfig defaults)",
            "steps": args.steps,
            "seeds": args.seeds,
            "prompts_per_step": PROMPTS_PER_STEP,
            "group_size": GROUP,
            "completions_per_step": COMPLETIONS_PER_STEP,
            "micro_batch": MICRO_BATCH,
            "max_tokens": MAX_TOKENS,
            "temperature": TEMPERATURE,
            "top_p": TOP_P,
            "top_k": 0,
            "loss": "DAPO token-mean (TRL loss_type='dapo'), no KL (beta=0)",
            "eps_low": EPS_LOW,
            "eps_high": EPS_HIGH,
            "advantages": "(r - group mean) / (group std + 1e-4)",
            "lr": LR,
            "betas": list(BETAS),
            "weight_decay": 0.0,
            "scheduler": "constant_with_warmup, 0 warmup",
            "max_grad_norm": MAX_GRAD_NORM,
            "eval": f"greedy, {MAX_TOKENS} tokens, {len(test_rows)} held-out rows, "
            "HFChat + exact_match_accuracy",
            "trl_config": {
                "per_device_train_batch_size": MICRO_BATCH,
                "gradient_accumulation_steps": COMPLETIONS_PER_STEP // MICRO_BATCH,
                "steps_per_generation": COMPLETIONS_PER_STEP // MICRO_BATCH,
                "num_iterations": 1,
                "gradient_checkpointing": False,
            },
        },
        "warm_start_accuracy": baseline,
        "posttrain": post,
        "trl": trl_summary,
        "ratio_samples_per_s": round(post["samples_per_s"] / trl_summary["samples_per_s"], 3),
        "ratio_samples_per_s_runs": [
            round(p["samples_per_s"] / t["samples_per_s"], 3)
            for p, t in zip(post["runs"], trl_summary["runs"], strict=True)
        ],
        "ratio_samples_per_s_step_sum": round(
            post["samples_per_s_step_sum"] / trl_summary["samples_per_s_step_sum"], 3
        ),
        "ratio_samples_per_s_median_step": round(
            post["samples_per_s_median_step"] / trl_summary["samples_per_s_median_step"], 3
        ),
        "ratio_samples_per_cpu_s": round(
            post["samples_per_cpu_s"] / trl_summary["samples_per_cpu_s"], 3
        ),
        "accuracy_delta": round(post["heldout_accuracy"] - trl_summary["heldout_accuracy"], 4),
        "notes": NOTES,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
        "script_s": round(time.perf_counter() - script_started, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print()
    print(markdown_table(result))


if __name__ == "__main__":
    main()
