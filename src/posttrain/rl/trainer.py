"""The RL engine: rollout -> rewards -> group advantages -> policy update, through accelerate.

Rollout and training meet only through a list of `Sample`s, so an asynchronous producer
can replace `collect`; synchronous training is the case with zero staleness. With several
processes (`accelerate launch` / `torchrun`) every process rolls out and scores its own
share of each step's prompts (a group never spans two processes), gradients are
all-reduced, metrics gathered, and only the main process writes the run directory.
"""

from __future__ import annotations

import copy
import random
import time
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import AutoModelForCausalLM, AutoTokenizer, get_scheduler

from posttrain.data.prompts import PromptStream, load_prompt_rows
from posttrain.envs import env_factory
from posttrain.models.chat.base import GenerationParams
from posttrain.models.generation import LocalGenerator
from posttrain.models.model_dir import require_model_dir
from posttrain.report import write_report
from posttrain.rewards import RewardSet
from posttrain.rl import objectives, online_dpo
from posttrain.rl.aux_losses import AuxLosses, aux_enabled, check_aux_config
from posttrain.rl.checkpoint import (
    latest_checkpoint,
    load_trainer_state,
    prune_checkpoints,
    restore_rng_states,
    rng_states,
    save_checkpoint,
    save_model_dir,
)
from posttrain.rl.config import RLConfig
from posttrain.rl.distributed import Processes, make_accelerator
from posttrain.rl.rollout import TokenGenerator, rollout_multi_turn, rollout_single_turn
from posttrain.rl.rollout_log import RolloutLog, prompt_text, rollouts_path
from posttrain.rl.sample import Sample
from posttrain.rl.update import PolicyUpdate
from posttrain.runs import Run

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_RANK_SEED = 7_919_711
"""Offsets each process's sampling seeds, so processes never draw the same randomness."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class RLTrainer:
    """GRPO-family training of a causal LM policy on prompts with reward functions."""

    def __init__(
        self,
        config: RLConfig,
        run: Run | None = None,
        *,
        rewards: RewardSet | None = None,
        rollout_log: RolloutLog | None = None,
    ) -> None:
        """`rewards` replaces the set `config.rewards` names (for reward functions built in
        code, e.g. a judge with settings); `rollout_log` replaces the default log that
        `config.log_rollouts` turns on."""
        if config.model is None:
            raise ValueError(
                "model: set a policy model directory (`posttrain rl` warm-starts the embedded "
                "tiny policy for `model: null` before building the trainer)"
            )
        self.objective = objectives.policy_loss(config.loss.kind)
        self.advantages = objectives.advantage_estimator(config.loss.advantage)
        if config.loss.kind == "online_dpo":
            online_dpo.check_config(config)
        check_aux_config(config.aux)
        if aux_enabled(config.aux) and config.env is None:
            raise ValueError(
                "aux.sp.lambda0 / aux.id.lambda0: the auxiliary losses learn from environment "
                "transitions; set a multi-turn `env` (or both lambda0 to 0)"
            )
        self.config = config
        # The user's inputs first: a bad data file or model directory is named before any
        # run directory is written or any weights load.
        require_model_dir(config.model, key="model")
        column = config.data.prompt_column
        self.stream = PromptStream(
            load_prompt_rows(config.data.train, column), config.seed, order=config.data.order
        )
        # Held-out rows: the given test file, or the embedded task's test split; a user's
        # training file without a test file means no held-out evaluation (never train rows).
        if config.data.test is not None or config.data.train is None:
            test_rows = load_prompt_rows(config.data.test, column, split="test")
        else:
            test_rows = []
        self.test_rows = test_rows[: config.eval_size]
        self.accelerator = make_accelerator(config.mixed_precision)
        self.processes = Processes(self.accelerator)
        seed_everything(config.seed)
        self.run = self._open_run(run)
        self.model_dir = config.model
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, padding_side="left")
        resume = latest_checkpoint(self.run.checkpoints)
        model = self._load_policy(resume)
        if config.gradient_checkpointing:
            # transformers 5.25 renamed it; older releases (a GPU image's) have the old name.
            kwargs = {"use_reentrant": False}
            if hasattr(model, "activation_checkpointing_enable"):
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=config.optim.lr,
            betas=tuple(config.optim.betas),
            weight_decay=config.optim.weight_decay,
        )
        self.policy, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.model = self.accelerator.unwrap_model(self.policy)
        """The policy module itself (parameters, generation, saving); `policy` may be its
        DDP wrapper."""
        self.ref_model = self._reference() if self.objective.needs_reference(config.loss) else None
        # Stepped by hand once per optimizer step: accelerate's prepared scheduler would step
        # once per process.
        self.scheduler = get_scheduler(
            config.optim.scheduler,
            self.optimizer.optimizer,
            num_warmup_steps=config.optim.warmup_steps,
            num_training_steps=config.steps * config.mini_batches,
        )
        self.generator = LocalGenerator(self.model, self.tokenizer)
        aux = None
        if aux_enabled(config.aux):  # both lambda0 = 0: the update is the RL loss's alone
            aux = AuxLosses(config.aux, self.tokenizer, config.steps, config.micro_batch_size)
        self.updater = PolicyUpdate(
            config,
            self.objective,
            accelerator=self.accelerator,
            processes=self.processes,
            policy=self.policy,
            model=self.model,
            reference=self.ref_model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            pad_id=self.tokenizer.pad_token_id,
            aux=aux,
        )
        if rewards is None and config.rewards:
            rewards = RewardSet(config.rewards, config.reward_weights)
        self.rewards = rewards
        if rollout_log is None and config.log_rollouts:
            rollout_log = RolloutLog(rollouts_path(self.run.path))
        self.rollout_log = rollout_log
        self.make_env = env_factory(config.env, **config.env_args) if config.env else None
        if self.rewards is None and self.make_env is None:
            raise ValueError("no reward: set `rewards` or a multi-turn `env`")
        self.step = 0
        if resume is not None:
            self._restore(resume)
        elif self.is_main:  # what a run killed before its first save logged is redone
            self.run.truncate_metrics_after(-1)
            if self.rollout_log is not None:
                self.rollout_log.truncate_after(0)
        self.monitor = self._hacking_monitor()
        self.stopped_by_monitor = False

    # ----------------------------------------------------------------- set-up

    def _hacking_monitor(self) -> Any:
        """`monitor.hacking`'s detector on the main process (None when off, or elsewhere),
        holding the rollouts of the steps already trained when the run resumes."""
        settings = self.config.monitor
        if settings.hacking is None or not self.is_main:
            return None
        from posttrain.monitor.live import HackingMonitor

        monitor = HackingMonitor(settings.hacking, self.run.path, settings.on_alert)
        monitor.resume(self.step)
        return monitor

    @property
    def is_main(self) -> bool:
        return self.processes.is_main

    def _open_run(self, run: Run | None) -> Run:
        """The run directory: created by the main process; the others open the same path
        (they read checkpoints from it and never write)."""
        config = self.config
        if self.is_main and run is None:
            run = Run.create(
                config.run_name, config, root=config.runs_root, report_to=config.report_to
            )
        path = self.processes.broadcast(str(run.path) if self.is_main else None)
        return run if run is not None and self.is_main else Run(path)

    def _dtype(self) -> Any:
        return "auto" if self.config.torch_dtype == "auto" else _DTYPES[self.config.torch_dtype]

    def _load_policy(self, resume: Any) -> torch.nn.Module:
        lora = self.config.lora
        if not lora.enabled:
            path = resume or self.model_dir
            return AutoModelForCausalLM.from_pretrained(path, dtype=self._dtype())
        from peft import LoraConfig, PeftModel, get_peft_model

        base = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=self._dtype())
        if resume is not None:
            return PeftModel.from_pretrained(base, resume, is_trainable=True)
        settings = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules),
            task_type="CAUSAL_LM",
        )
        return get_peft_model(base, settings)

    def _reference(self) -> torch.nn.Module | None:
        if self.config.lora.enabled:
            return None  # the base model with the adapter disabled is the reference
        # The starting weights, also when resuming (the policy then holds trained weights).
        reference = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=self._dtype())
        reference.requires_grad_(False)
        return self.accelerator.prepare_model(reference.eval(), evaluation_mode=True)

    def _restore(self, checkpoint: Any) -> None:
        state = load_trainer_state(checkpoint)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        self.stream.consumed = state["consumed"]
        per_process = state.get("rng_per_process")
        if per_process is not None and len(per_process) != self.processes.world:
            raise ValueError(
                f"{checkpoint}: saved by {len(per_process)} processes, resumed with "
                f"{self.processes.world}; resume with the same number of processes"
            )
        restore_rng_states(per_process[self.processes.rank] if per_process else state["rng"])
        if self.is_main:
            self.run.truncate_metrics_after(self.step)
            if self.rollout_log is not None:
                self.rollout_log.truncate_after(self.step)
            # A save killed while pruning: its checkpoint is complete, the old one still there.
            prune_checkpoints(self.run.checkpoints, self.config.keep_checkpoints)

    # ----------------------------------------------------------------- loop

    def train(self, stop_at: int | None = None) -> dict[str, float]:
        """Train to `config.steps` (or stop after `stop_at`); return the last metrics."""
        config = self.config
        last: dict[str, float] = {}
        if self.step == 0 and self.test_rows:
            last = self.evaluate()
            self._log(0, last)
        columns = [
            TextColumn("[bold]rl"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, transient=False, disable=not self.is_main) as progress:
            task = progress.add_task("rl", total=config.steps, completed=self.step, status="")
            while self.step < config.steps and (stop_at is None or self.step < stop_at):
                self.step += 1
                last = self.train_step()
                evaluated = (
                    self.test_rows
                    and config.eval_every
                    and (self.step % config.eval_every == 0 or self.step == config.steps)
                )
                if evaluated:
                    last.update(self.evaluate())
                if (
                    evaluated
                    or self.step % max(1, config.log_every) == 0
                    or self.stopped_by_monitor
                ):
                    self._log(self.step, last)
                # A run the monitor stops keeps the policy it stopped with, whatever save_every.
                if self.stopped_by_monitor or (
                    config.save_every
                    and (
                        self.step % config.save_every == 0
                        or self.step == config.steps
                        or self.step == stop_at
                    )
                ):
                    self.save()
                status = f"reward {last['reward']:.3f}"
                if "eval_reward" in last:
                    status += f"  eval {last['eval_reward']:.3f}"
                progress.update(task, completed=self.step, status=status)
                if self.stopped_by_monitor:
                    if self.is_main:
                        progress.console.print(
                            f"stopped at step {self.step}: monitor.hacking raised an alert"
                            f" (monitor.on_alert=stop; see {self.run.path / 'alerts.jsonl'})"
                        )
                    break
        if self.step == config.steps:
            self.save_final()
        if self.is_main:
            write_report(self.run.path, title=f"RL: {self.run.path.name}")
        return last

    def _log(self, step: int, metrics: dict[str, float]) -> None:
        if self.is_main:
            self.run.log(step, **metrics)

    def train_step(self) -> dict[str, float]:
        started = time.perf_counter()
        samples, collect_metrics = self.collect()
        rollout_seconds = time.perf_counter() - started
        watched = self.config.monitor.hacking is not None
        logged = self.rollout_log is not None or watched
        everything = self.processes.gather(samples) if logged else []
        if self.rollout_log is not None and self.is_main:
            self.rollout_log(self.step, everything)
        metrics = dict(collect_metrics)
        if watched:
            metrics.update(self._watch(everything))
        # A failed rollout (environment error) carries no tokens worth learning from.
        metrics.update(self.update([s for s in samples if s.status != "failed"]))
        elapsed = time.perf_counter() - started
        metrics.update(
            {
                "time/rollout_s": rollout_seconds,
                "time/step_s": elapsed,
                "samples_per_s": self.processes.sum(len(samples)) / elapsed,
                "learning_rate": self.scheduler.get_last_lr()[0],
            }
        )
        return metrics

    def _watch(self, samples: list[Sample]) -> dict[str, float]:
        """The hacking monitor's `monitor/*` metrics after this step's rollouts; with
        `on_alert: stop`, every process learns that the run ends at this step."""
        metrics: dict[str, float] = {}
        if self.monitor is not None:
            records = [
                {"step": self.step, "prompt": prompt_text(s.prompt), "response": s.completion,
                 "score": s.reward}
                for s in samples
            ]  # fmt: skip
            metrics = self.monitor.observe(self.step, records)
        stop = self.monitor is not None and self.monitor.should_stop
        self.stopped_by_monitor = bool(self.processes.broadcast(stop))
        return metrics

    # ----------------------------------------------------------------- rollout

    def _params(self, n: int, temperature: float, seed: int) -> GenerationParams:
        rollout = self.config.rollout
        return GenerationParams(
            n=n,
            temperature=temperature,
            top_p=rollout.top_p,
            max_tokens=rollout.max_tokens,
            seed=seed,
            logprobs=True,
        )

    def collect(self) -> tuple[list[Sample], dict[str, float]]:
        """Roll out `prompts_per_step` groups (this process's share), scored and with
        advantages.

        With dynamic sampling, groups whose rewards all agree carry no learning signal:
        they are dropped and more prompts are drawn, up to `max_resample_rounds` times.
        Every process draws the same rows from the stream and keeps its share, so the
        stream's position is the same everywhere.
        """
        config = self.config
        n = config.rollout.n
        kept: list[list[Sample]] = []
        kept_everywhere = dropped = 0
        all_samples: list[Sample] = []
        self.model.eval()
        self._generation_s = 0.0  # evaluation between steps generates too
        started = time.perf_counter()
        for round_ in range(config.max_resample_rounds if config.dynamic_sampling else 1):
            rows = self.stream.take(config.prompts_per_step - kept_everywhere)
            mine, first = self.processes.shard(rows)
            seed = config.seed * 1_000_003 + self.step * 101 + round_
            seed += self.processes.rank * _RANK_SEED
            params = self._params(n, config.rollout.temperature, seed)
            samples = self.rollout(mine, params, first_group_id=kept_everywhere + first)
            all_samples += samples
            for group in _groups(samples, n):
                if config.dynamic_sampling and len({s.reward for s in group}) == 1:
                    dropped += 1
                else:
                    kept.append(group)
            kept_everywhere = int(self.processes.sum(len(kept)))
            if kept_everywhere >= config.prompts_per_step:
                break
        seconds = time.perf_counter() - started
        samples = [s for group in kept for s in group]
        advantage_metrics = objectives.assign_advantages(self.advantages, samples, n, config.loss)
        everything = self.processes.gather(all_samples)
        metrics = self._rollout_metrics(
            everything, kept_everywhere, int(self.processes.sum(dropped))
        )
        metrics.update(advantage_metrics)
        metrics["time/generation_s"] = self.processes.sum(self._generation_s) / self.processes.world
        metrics["time/collect_s"] = seconds
        return samples, metrics

    _generation_s = 0.0

    def rollout(
        self,
        rows: list[dict[str, Any]],
        params: GenerationParams,
        first_group_id: int = 0,
        *,
        generator: TokenGenerator | None = None,
        weight_version: int | None = None,
    ) -> list[Sample]:
        """Generate and score: single-turn by default, turn by turn with an environment.

        `generator` defaults to the trainer's own policy; versions default to the current one.
        """
        generator = generator or self.generator
        version = self.step - 1 if weight_version is None else weight_version
        started = time.perf_counter()
        if self.make_env is not None:
            samples = rollout_multi_turn(
                generator,
                self.tokenizer,
                rows,
                self.make_env,
                params,
                max_turns=self.config.max_turns,
                first_group_id=first_group_id,
                weight_version=version,
                env_threads=self.config.env_threads,
            )
        else:
            samples = rollout_single_turn(
                generator,
                self.tokenizer,
                rows,
                params,
                first_group_id=first_group_id,
                weight_version=version,
                prompt_column=self.config.data.prompt_column,
            )
        self._generation_s += time.perf_counter() - started
        self.score(samples)
        return samples

    @property
    def reward_names(self) -> list[str]:
        return (["env"] if self.make_env else []) + (self.rewards.names if self.rewards else [])

    def score(self, samples: list[Sample]) -> None:
        """Add the reward functions' weighted total (and breakdown) to each sample's reward.

        Environment rewards, when there is an environment, are already in `sample.reward`.
        """
        if self.rewards is None or not samples:
            return
        columns: dict[str, list[Any]] = {}
        for key in samples[0].columns if samples else []:
            columns[key] = [s.columns.get(key) for s in samples]
        result = self.rewards(
            prompts=[s.prompt for s in samples],
            completions=[s.completion for s in samples],
            completion_ids=[s.response_ids for s in samples],
            **columns,
        )
        for i, sample in enumerate(samples):
            sample.reward += result.total[i]
            sample.reward_breakdown.update(
                {name: values[i] for name, values in result.breakdown.items()}
            )

    def _rollout_metrics(self, samples: list[Sample], kept: int, dropped: int) -> dict[str, float]:
        """TRL's names where TRL has the metric (reward, reward_std, rewards/<f>/mean|std,
        frac_reward_zero_std, completions/*), over every process's samples."""
        rewards = torch.tensor([s.reward for s in samples])
        groups = _groups(samples, self.config.rollout.n)
        metrics = {
            "reward": rewards.mean().item(),
            "reward_std": rewards.std().item() if len(rewards) > 1 else 0.0,
            "frac_reward_zero_std": float(
                np.mean([len({s.reward for s in group}) == 1 for group in groups])
            ),
            "completions/mean_length": float(np.mean([s.generated_tokens for s in samples])),
            "completions/clipped_ratio": float(np.mean([s.status == "truncated" for s in samples])),
            "groups/kept": float(kept),
            "groups/dropped": float(dropped),
        }
        metrics.update(self._reward_means(samples, "rewards/{}/mean"))
        metrics.update(self._reward_means(samples, "rewards/{}/std", _sample_std))
        return metrics

    def _reward_means(
        self, samples: list[Sample], key: str, reduce: Any = np.mean
    ) -> dict[str, float]:
        """Mean (or `reduce`) of each reward function over the samples it scored (None: not
        applicable)."""
        means = {}
        for name in self.reward_names:
            values = [s.reward_breakdown[name] for s in samples]
            values = [v for v in values if v is not None]
            means[key.format(name)] = float(reduce(values)) if values else 0.0
        return means

    # ----------------------------------------------------------------- update

    def update(self, samples: list[Sample]) -> dict[str, float]:
        """One or more optimizer steps on the batch (mini-batches x micro-batches); every
        process calls it, with its own samples (possibly none)."""
        return self.updater(samples, step=max(self.step - 1, 0))

    # ----------------------------------------------------------------- eval & saving

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Greedy answers on the held-out rows (shared out between processes), scored by the
        same reward functions."""
        self.model.eval()
        mine, _ = self.processes.shard(self.test_rows)
        samples = self.processes.gather(self.rollout(mine, self._params(1, 0.0, self.config.seed)))
        return {
            "eval_reward": float(np.mean([s.reward for s in samples])),
            **self._reward_means(samples, "eval_rewards/{}/mean"),
        }

    def save(self) -> None:
        """A checkpoint written by the main process, holding every process's RNG states."""
        states = self.processes.gather_one(rng_states())
        if self.is_main:
            directory = self.run.checkpoint_dir(self.step)
            directory.parent.mkdir(parents=True, exist_ok=True)
            extra: dict[str, Any] = {"step": self.step, "consumed": self.stream.consumed}
            if self.processes.world > 1:
                extra["rng_per_process"] = states
            save_checkpoint(
                directory, self.model, self.tokenizer, self.optimizer, self.scheduler, extra
            )
            prune_checkpoints(self.run.checkpoints, self.config.keep_checkpoints)
        self.processes.barrier()

    def save_final(self) -> None:
        """A plain model directory (LoRA merged) that `posttrain serve` can load."""
        if self.is_main:
            final = self.run.checkpoints / "final"
            model = self.model
            if self.config.lora.enabled:
                model = copy.deepcopy(self.model).merge_and_unload()
            save_model_dir(final, model, self.tokenizer)  # recipes trust it once it exists
        self.processes.barrier()


def _sample_std(values: list[float]) -> float:
    """The unbiased standard deviation, as TRL logs rewards/<f>/std (0 for one value)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _groups(samples: list[Sample], size: int) -> list[list[Sample]]:
    return [samples[i : i + size] for i in range(0, len(samples), size)]
