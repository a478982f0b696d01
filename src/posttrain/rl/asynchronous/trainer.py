"""The asynchronous trainer: the RL engine with rollout moved onto workers.

Rollout threads keep generating on the engines while the trainer updates; the trainer takes
`prompts_per_step` finished groups per step from the buffer (dropping those past the
staleness bound), updates, pushes new weights every `push_every` updates and advances the
staleness gate. Everything else (losses, evaluation, checkpoints, resume, reports) is the
synchronous `RLTrainer`'s.
"""

from __future__ import annotations

import copy
import queue
import shutil
import time
from typing import Any

import numpy as np
import torch

from posttrain.rl import objectives
from posttrain.rl.asynchronous.engines import BatchedEngine, WeightUpdate
from posttrain.rl.asynchronous.producer import RolloutProducer
from posttrain.rl.asynchronous.staleness import StalenessGate, is_stale, staleness
from posttrain.rl.asynchronous.workers import build_engines
from posttrain.rl.config import RLConfig
from posttrain.rl.rollout import TokenGenerator
from posttrain.rl.sample import Sample
from posttrain.rl.trainer import RLTrainer
from posttrain.runs import Run


class AsyncRLTrainer(RLTrainer):
    def __init__(self, config: RLConfig, run: Run | None = None) -> None:
        settings = config.async_
        if settings.eta is None:
            raise ValueError("async.eta is not set; the synchronous RLTrainer runs that config")
        if settings.push_every < 1:
            raise ValueError(f"async.push_every must be >= 1, got {settings.push_every}")
        super().__init__(config, run)
        if self.processes.world > 1:
            raise ValueError(
                "async.eta: asynchronous RL trains in one process (its rollout scales out on "
                "async.workers); launch it without accelerate launch / torchrun"
            )
        self.settings = settings
        self.version = self.step // settings.push_every
        """Weight version: pushes made so far (the engines' weights are this version)."""
        batch = config.prompts_per_step
        self.gate = StalenessGate(settings.eta, batch)
        self.gate.version = self.step
        self.gate.admitted = self.step * batch  # groups already trained on, when resuming
        self.engines: list[BatchedEngine] = build_engines(
            settings.workers,
            self.model_dir,
            log_dir=self.run.path,
            weights_root=self.run.path / "weights",  # where `_save_weights` writes
        )
        self._push(self.version, wait=True)
        threads = settings.rollout_threads or min(64, (settings.eta + 1) * batch)
        self.producer = RolloutProducer(
            engines=self.engines,
            rollout_group=self._rollout_group,
            next_row=lambda: self.stream.take(1)[0],
            gate=self.gate,
            group_size=config.rollout.n,
            threads=threads,
            mask_stale_prefix=settings.mask_stale_prefix,
        )
        self.waited_s = 0.0
        self.trained_samples = 0
        self.started: float | None = None

    # ----------------------------------------------------------------- lifecycle

    def train(self, stop_at: int | None = None) -> dict[str, float]:
        self.started = time.perf_counter()
        self.producer.start()
        try:
            return super().train(stop_at)
        finally:
            self.close()
            self.run.write_json("async_summary.json", self.summary())

    def summary(self) -> dict[str, Any]:
        """Totals of the run so far: throughput, idle time and what was dropped or padded."""
        elapsed = time.perf_counter() - (self.started or time.perf_counter())
        return {
            "eta": self.settings.eta,
            "max_version_gap": self.settings.max_version_gap,
            "workers": f"{self.settings.workers.count} x {self.settings.workers.kind}",
            "steps": self.step,
            "trained_samples": self.trained_samples,
            "wall_s": elapsed,
            "samples_per_s": self.trained_samples / elapsed if elapsed > 0 else 0.0,
            "trainer_idle_frac": self.waited_s / elapsed if elapsed > 0 else 0.0,
            "capacity_exceeded_by": self.gate.peak_excess,
            **{k: v for k, v in vars(self.producer.counts).items() if k != "started_at"},
        }

    def close(self) -> None:
        self.producer.stop()
        for engine in self.engines:
            engine.close()

    # ----------------------------------------------------------------- rollout side

    def _rollout_group(
        self, row: dict[str, Any], engine: TokenGenerator, group_id: int
    ) -> list[Sample]:
        """One prompt's group on `engine` (runs on a rollout thread)."""
        seed = self.config.seed * 1_000_003 + group_id
        params = self._params(self.config.rollout.n, self.config.rollout.temperature, seed)
        version = getattr(engine, "version", self.version)
        return self.rollout([row], params, group_id, generator=engine, weight_version=version)

    # ----------------------------------------------------------------- trainer side

    def collect(self) -> tuple[list[Sample], dict[str, float]]:
        """Take `prompts_per_step` groups from the buffer, past the drop and filter rules."""
        config = self.config
        kept: list[list[Sample]] = []
        stale = uniform = 0
        started = time.perf_counter()
        while len(kept) < config.prompts_per_step:
            group = self._next_group()
            oldest = min(s.weight_version for s in group)
            if is_stale(self.version, oldest, self.settings.max_version_gap):
                stale += 1
                self.gate.release()
            elif config.dynamic_sampling and len({s.reward for s in group}) == 1:
                uniform += 1
                self.gate.release()
            else:
                kept.append(group)
        waited = time.perf_counter() - started
        self.waited_s += waited
        samples = [s for group in kept for s in group]
        advantage_metrics = objectives.assign_advantages(
            self.advantages, samples, config.rollout.n, config.loss
        )
        self.trained_samples += len(samples)
        metrics = self._rollout_metrics(samples, len(kept), uniform)
        metrics.update(advantage_metrics)
        metrics.update(self._async_metrics(samples, stale, waited))
        return samples, metrics

    def _next_group(self) -> list[Sample]:
        while True:
            if self.producer.fatal is not None:
                raise RuntimeError("asynchronous rollout stopped") from self.producer.fatal
            try:
                return self.producer.buffer.get(timeout=0.5)
            except queue.Empty:
                continue

    def _async_metrics(self, samples: list[Sample], stale: int, waited: float) -> dict[str, float]:
        gaps = [staleness(self.version, s.weight_version) for s in samples]
        counts = self.producer.counts
        elapsed = time.perf_counter() - (self.started or time.perf_counter())
        return {
            "async/weight_version": float(self.version),
            "async/staleness_mean": float(np.mean(gaps)),
            "async/staleness_max": float(max(gaps)),
            "async/dropped_stale": float(stale),
            "async/buffered_groups": float(self.producer.buffer.qsize()),
            "async/wait_s": waited,
            "async/trainer_idle_frac": self.waited_s / elapsed if elapsed > 0 else 0.0,
            "async/samples_per_s": self.trained_samples / elapsed if elapsed > 0 else 0.0,
            "groups/padded": float(counts.groups_padded),
            "groups/invalid": float(counts.groups_invalid),
            "groups/errored": float(counts.groups_errored),
            "samples/failed": float(counts.samples_failed),
        }

    def train_step(self) -> dict[str, float]:
        metrics = super().train_step()
        if self.step % self.settings.push_every == 0:
            self._push(self.version + 1)
            if self.settings.reset_optimizer:
                self.optimizer.state.clear()
        # After the push: groups admitted from now on are generated with the new weights.
        self.gate.advance(self.step)
        return metrics

    # ----------------------------------------------------------------- weights

    def _push(self, version: int, wait: bool = False) -> None:
        """Send the policy's weights to every engine as `version` (applied between batches)."""
        model = self.model
        if self.config.lora.enabled:
            model = copy.deepcopy(self.model).merge_and_unload()
        update = WeightUpdate(version)
        if self.settings.workers.kind == "server":
            update.path = str(self._save_weights(model, version))
        else:
            update.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        resume = self.settings.partial_rollout == "resume"  # abort and resume mid-generation
        for engine in self.engines:
            engine.push(update, wait=wait, interrupt=resume)
        self.version = version

    def _save_weights(self, model: torch.nn.Module, version: int) -> Any:
        """A checkpoint directory per pushed version; the two newest are kept."""
        root = self.run.path / "weights"
        directory = root / f"v{version:06d}"
        model.save_pretrained(directory)
        for old in sorted(root.glob("v*"))[:-2]:
            shutil.rmtree(old, ignore_errors=True)
        return directory
