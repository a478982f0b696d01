"""The RL engine: rollout -> rewards -> group advantages -> clipped policy update.

Rollout and training meet only through a list of `Sample`s, so an asynchronous producer
can replace `collect` later; synchronous training is the case with zero staleness.
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
from posttrain.report import write_report
from posttrain.rewards import RewardSet
from posttrain.rl import losses, online_dpo
from posttrain.rl.checkpoint import (
    latest_checkpoint,
    load_trainer_state,
    prune_checkpoints,
    restore_rng_states,
    save_checkpoint,
)
from posttrain.rl.config import RLConfig
from posttrain.rl.rollout import TokenGenerator, rollout_multi_turn, rollout_single_turn
from posttrain.rl.rollout_log import RolloutLog, rollouts_path
from posttrain.rl.sample import Sample
from posttrain.runs import Run


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
        if config.loss.kind == "online_dpo":
            online_dpo.check_config(config)
        self.config = config
        seed_everything(config.seed)
        self.run = run or Run.create(config.run_name, config, root=config.runs_root)
        self.model_dir = config.model or self._warm_start_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, padding_side="left")
        resume = latest_checkpoint(self.run.checkpoints)
        self.model = self._load_policy(resume)
        self.ref_model = self._reference() if config.loss.kl_coef > 0 else None
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params,
            lr=config.optim.lr,
            betas=tuple(config.optim.betas),
            weight_decay=config.optim.weight_decay,
        )
        self.scheduler = get_scheduler(
            config.optim.scheduler,
            self.optimizer,
            num_warmup_steps=config.optim.warmup_steps,
            num_training_steps=config.steps * config.mini_batches,
        )
        self.generator = LocalGenerator(self.model, self.tokenizer)
        if rewards is None and config.rewards:
            rewards = RewardSet(config.rewards, config.reward_weights)
        self.rewards = rewards
        if rollout_log is None and config.log_rollouts:
            rollout_log = RolloutLog(rollouts_path(self.run.path))
        self.rollout_log = rollout_log
        self.make_env = env_factory(config.env, **config.env_args) if config.env else None
        if self.rewards is None and self.make_env is None:
            raise ValueError("no reward: set `rewards` or a multi-turn `env`")
        column = config.data.prompt_column
        self.stream = PromptStream(load_prompt_rows(config.data.train, column), config.seed)
        # Held-out rows: the given test file, or the embedded task's test split; a user's
        # training file without a test file means no held-out evaluation (never train rows).
        if config.data.test is not None or config.data.train is None:
            test_rows = load_prompt_rows(config.data.test, column, split="test")
        else:
            test_rows = []
        self.test_rows = test_rows[: config.eval_size]
        self.step = 0
        if resume is not None:
            self._restore(resume)
        elif self.rollout_log is not None:
            self.rollout_log.truncate_after(0)  # lines of a run that crashed before a save

    # ----------------------------------------------------------------- set-up

    def _warm_start_dir(self) -> str:
        from posttrain.models.warm_start import warm_start

        return str(warm_start(self.config.warm_start).model_dir)

    def _load_policy(self, resume: Any) -> torch.nn.Module:
        lora = self.config.lora
        if not lora.enabled:
            return AutoModelForCausalLM.from_pretrained(resume or self.model_dir)
        from peft import LoraConfig, PeftModel, get_peft_model

        base = AutoModelForCausalLM.from_pretrained(self.model_dir)
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
        reference = AutoModelForCausalLM.from_pretrained(self.model_dir).eval()
        reference.requires_grad_(False)
        return reference

    def _restore(self, checkpoint: Any) -> None:
        state = load_trainer_state(checkpoint)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        self.stream.consumed = state["consumed"]
        restore_rng_states(state["rng"])
        self.run.truncate_metrics_after(self.step)
        if self.rollout_log is not None:
            self.rollout_log.truncate_after(self.step)

    # ----------------------------------------------------------------- loop

    def train(self, stop_at: int | None = None) -> dict[str, float]:
        """Train to `config.steps` (or stop after `stop_at`); return the last metrics."""
        config = self.config
        last: dict[str, float] = {}
        if self.step == 0 and self.test_rows:
            last = self.evaluate()
            self.run.log(0, **last)
        columns = [
            TextColumn("[bold]rl"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task("rl", total=config.steps, completed=self.step, status="")
            while self.step < config.steps and (stop_at is None or self.step < stop_at):
                self.step += 1
                last = self.train_step()
                if (
                    self.test_rows
                    and config.eval_every
                    and (self.step % config.eval_every == 0 or self.step == config.steps)
                ):
                    last.update(self.evaluate())
                self.run.log(self.step, **last)
                if config.save_every and (
                    self.step % config.save_every == 0
                    or self.step == config.steps
                    or self.step == stop_at
                ):
                    self.save()
                status = f"reward {last['reward']:.3f}"
                if "eval/reward" in last:
                    status += f"  eval {last['eval/reward']:.3f}"
                progress.update(task, completed=self.step, status=status)
        if self.step == config.steps:
            self.save_final()
        write_report(self.run.path, title=f"RL: {self.run.path.name}")
        return last

    def train_step(self) -> dict[str, float]:
        started = time.perf_counter()
        samples, collect_metrics = self.collect()
        rollout_seconds = time.perf_counter() - started
        if self.rollout_log is not None:
            self.rollout_log(self.step, samples)
        metrics = dict(collect_metrics)
        # A failed rollout (environment error) carries no tokens worth learning from.
        trainable = [s for s in samples if s.status != "failed"]
        if trainable:
            metrics.update(self.update(trainable))
        elapsed = time.perf_counter() - started
        metrics.update(
            {
                "time/rollout_s": rollout_seconds,
                "time/step_s": elapsed,
                "samples_per_s": len(samples) / elapsed,
                "lr": self.scheduler.get_last_lr()[0],
            }
        )
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
        """Roll out `prompts_per_step` groups, scored and with advantages.

        With dynamic sampling, groups whose rewards all agree carry no learning signal:
        they are dropped and more prompts are drawn, up to `max_resample_rounds` times.
        """
        config = self.config
        kept: list[list[Sample]] = []
        dropped = 0
        all_samples: list[Sample] = []
        self.model.eval()
        for round_ in range(config.max_resample_rounds if config.dynamic_sampling else 1):
            rows = self.stream.take(config.prompts_per_step - len(kept))
            seed = config.seed * 1_000_003 + self.step * 101 + round_
            params = self._params(config.rollout.n, config.rollout.temperature, seed)
            samples = self.rollout(rows, params, first_group_id=len(kept))
            all_samples += samples
            for group in _groups(samples, config.rollout.n):
                rewards = {s.reward for s in group}
                if config.dynamic_sampling and len(rewards) == 1:
                    dropped += 1
                else:
                    kept.append(group)
            if len(kept) >= config.prompts_per_step:
                break
        samples = [s for group in kept for s in group]
        if samples:
            rewards = torch.tensor([s.reward for s in samples])
            advantages = losses.group_advantages(
                rewards, config.rollout.n, scale=config.loss.scale_advantages
            )
            for sample, advantage in zip(samples, advantages.tolist(), strict=True):
                sample.advantage = advantage
        return samples, self._rollout_metrics(all_samples, kept, dropped)

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

    def _rollout_metrics(
        self, samples: list[Sample], kept: list[list[Sample]], dropped: int
    ) -> dict[str, float]:
        rewards = torch.tensor([s.reward for s in samples])
        metrics = {
            "reward": rewards.mean().item(),
            "reward_std": rewards.std().item() if len(rewards) > 1 else 0.0,
            "completions/mean_length": float(np.mean([s.generated_tokens for s in samples])),
            "completions/clipped_ratio": float(np.mean([s.status == "truncated" for s in samples])),
            "groups/kept": float(len(kept)),
            "groups/dropped": float(dropped),
        }
        metrics.update(self._reward_means(samples, "rewards/{}/mean"))
        return metrics

    def _reward_means(self, samples: list[Sample], key: str) -> dict[str, float]:
        """Mean of each reward function over the samples it scored (None: not applicable)."""
        means = {}
        for name in self.reward_names:
            values = [s.reward_breakdown[name] for s in samples]
            values = [v for v in values if v is not None]
            means[key.format(name)] = float(np.mean(values)) if values else 0.0
        return means

    # ----------------------------------------------------------------- update

    def update(self, samples: list[Sample]) -> dict[str, float]:
        """One or more optimizer steps on the batch (mini-batches x micro-batches)."""
        config = self.config
        if config.loss.kind == "online_dpo":  # pairs, not advantages: see rl/online_dpo.py
            return online_dpo.update(self, samples)
        self.model.train()
        batch = _tensorize(samples, self.tokenizer.pad_token_id)
        needs_old = (
            config.mini_batches > 1
            or config.loss.tis_cap
            or config.loss.icepop_beta
            or config.loss.kind == "decoupled_ppo"
        )
        old_logp = self._logprobs(self.model, batch) if needs_old else None
        ref_logp = self._reference_logprobs(batch) if config.loss.kl_coef > 0 else None
        totals: dict[str, float] = {}
        minis = np.array_split(np.arange(len(samples)), config.mini_batches)
        for mini in minis:
            self.optimizer.zero_grad(set_to_none=True)
            stats = self._accumulate(batch, mini, old_logp, ref_logp)
            params = [p for p in self.model.parameters() if p.requires_grad]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.optim.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            stats["grad_norm"] = float(grad_norm)
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value / len(minis)
        return totals

    def _accumulate(
        self,
        batch: dict[str, torch.Tensor],
        mini: np.ndarray,
        old_logp: torch.Tensor | None,
        ref_logp: torch.Tensor | None,
    ) -> dict[str, float]:
        """Backward over micro-batches so the summed gradient equals the mini-batch's."""
        loss_cfg = self.config.loss
        mask = batch["mask"]
        token_level = loss_cfg.aggregation == "token-mean"
        denominator = mask[mini].sum().clamp(min=1) if token_level else len(mini)
        stats: dict[str, float] = {}
        size = self.config.micro_batch_size
        for start in range(0, len(mini), size):
            index = torch.as_tensor(mini[start : start + size])
            micro_mask = mask[index]
            logits = self.model(
                input_ids=batch["input_ids"][index], attention_mask=batch["attention_mask"][index]
            ).logits[:, :-1]
            logp = losses.token_logprobs(logits, batch["targets"][index])
            old = old_logp[index] if old_logp is not None else logp.detach()
            rollout = batch["rollout_logp"][index]
            advantages = batch["advantages"][index]
            loss, metrics = self._policy_loss(logp, old, rollout, advantages, micro_mask)
            share = float(micro_mask.sum() if token_level else len(index)) / float(denominator)
            if ref_logp is not None:
                kl = losses.masked_mean(
                    losses.kl_penalty(logp, ref_logp[index], kind=loss_cfg.kl_estimator),
                    micro_mask,
                )
                loss = loss + loss_cfg.kl_coef * kl
                metrics["kl"] = kl.item()
            (loss * share).backward()
            with torch.no_grad():
                metrics["loss"] = loss.item()
                metrics["entropy"] = losses.masked_mean(
                    losses.entropy_from_logits(logits.detach()), micro_mask
                ).item()
                metrics.update(losses.mismatch_metrics(old, rollout, micro_mask))
            for key, value in metrics.items():
                stats[key] = stats.get(key, 0.0) + value * share
        return stats

    def _policy_loss(
        self,
        logp: torch.Tensor,
        old: torch.Tensor,
        rollout: torch.Tensor,
        advantages: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The configured loss: GRPO's clipped surrogate (optionally with TIS / IcePop),
        GLM-5's direct double-sided IS, or AReaL's decoupled PPO."""
        cfg = self.config.loss
        common = {
            "eps_low": cfg.eps_low,
            "eps_high": cfg.eps_high,
            "aggregation": cfg.aggregation,
            "max_tokens": self.config.rollout.max_tokens,
        }
        if cfg.kind == "direct_is":
            return losses.direct_is_loss(logp, rollout, advantages, mask, **common)
        if cfg.kind == "decoupled_ppo":
            return losses.decoupled_ppo_loss(
                logp, old, rollout, advantages, mask, behaviour_cap=cfg.behaviour_cap, **common
            )
        weights = None
        if cfg.tis_cap:
            weights = losses.tis_weights(old, rollout, cap=cfg.tis_cap)
        if cfg.icepop_beta:
            keep = losses.icepop_mask(old, rollout, beta=cfg.icepop_beta)
            weights = keep if weights is None else weights * keep
        return losses.policy_loss(logp, old, advantages, mask, weights=weights, **common)

    @torch.no_grad()
    def _logprobs(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = []
        size = self.config.micro_batch_size
        for start in range(0, len(batch["input_ids"]), size):
            part = slice(start, start + size)
            logits = model(
                input_ids=batch["input_ids"][part], attention_mask=batch["attention_mask"][part]
            ).logits[:, :-1]
            out.append(losses.token_logprobs(logits, batch["targets"][part]))
        return torch.cat(out)

    def _reference_logprobs(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.ref_model is not None:
            return self._logprobs(self.ref_model, batch)
        with self.model.disable_adapter():  # LoRA: the frozen base is the reference
            return self._logprobs(self.model, batch)

    # ----------------------------------------------------------------- eval & saving

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Greedy answers on the held-out rows, scored by the same reward functions."""
        self.model.eval()
        samples = self.rollout(self.test_rows, self._params(1, 0.0, self.config.seed))
        return {
            "eval/reward": float(np.mean([s.reward for s in samples])),
            **self._reward_means(samples, "eval/{}"),
        }

    def save(self) -> None:
        directory = self.run.checkpoint_dir(self.step)
        directory.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(
            directory,
            self.model,
            self.tokenizer,
            self.optimizer,
            self.scheduler,
            {"step": self.step, "consumed": self.stream.consumed},
        )
        prune_checkpoints(self.run.checkpoints, self.config.keep_checkpoints)

    def save_final(self) -> None:
        """A plain model directory (LoRA merged) that `posttrain serve` can load."""
        final = self.run.checkpoints / "final"
        model = self.model
        if self.config.lora.enabled:
            model = copy.deepcopy(self.model).merge_and_unload()
        model.save_pretrained(final)
        self.tokenizer.save_pretrained(final)


def _groups(samples: list[Sample], size: int) -> list[list[Sample]]:
    return [samples[i : i + size] for i in range(0, len(samples), size)]


def _tensorize(samples: list[Sample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded prompt+response ids, with per-position targets, mask and rollout log-probs.

    Position t of `targets`, `mask` and `rollout_logp` describes token t+1 of the sequence.
    """
    width = max(len(s.prompt_ids) + len(s.response_ids) for s in samples)
    count = len(samples)
    input_ids = torch.full((count, width), pad_id, dtype=torch.long)
    attention = torch.zeros((count, width), dtype=torch.long)
    mask = torch.zeros((count, width - 1))
    rollout = torch.zeros((count, width - 1))
    for i, s in enumerate(samples):
        ids = s.prompt_ids + s.response_ids
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        start = len(s.prompt_ids) - 1
        end = start + len(s.response_ids)
        mask[i, start:end] = torch.tensor(s.loss_mask, dtype=torch.float)
        rollout[i, start:end] = torch.tensor(s.rollout_logprobs)
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "targets": input_ids[:, 1:],
        "mask": mask,
        "rollout_logp": rollout,
        "advantages": torch.tensor([s.advantage for s in samples]),
    }
