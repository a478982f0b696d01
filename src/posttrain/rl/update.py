"""The policy update: one rolled-out batch -> mini-batch optimizer steps over micro-batches,
on any number of processes.

Each process holds its own samples. A mini-batch's loss is a mean over tokens or rows of the
whole mini-batch on every process; each micro-batch is weighted by its share of that
global count, and because DDP averages gradients over processes, by the number of processes
too, so the gradient equals a single process's over the same samples. Processes that run
out of micro-batches run zero-weight ones, since DDP needs every process in every
all-reduce.

The loss plug-in point for terms beside the RL loss is `aux` (`posttrain.rl.aux_losses`,
EnvRL's state-prediction and inverse-dynamics losses): its passes follow the RL
micro-batches of each optimizer step, and the step's gradient all-reduce waits for them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from posttrain.rl import losses
from posttrain.rl.aux_losses import AuxBatch, AuxLosses
from posttrain.rl.config import RLConfig
from posttrain.rl.distributed import Processes
from posttrain.rl.loss_inputs import LossInputs
from posttrain.rl.objectives import PolicyLoss
from posttrain.rl.sample import Sample


class PolicyUpdate:
    """Optimizer steps of `policy` (prepared by accelerate) on batches of samples."""

    def __init__(
        self,
        config: RLConfig,
        objective: PolicyLoss,
        *,
        accelerator: Any,
        processes: Processes,
        policy: torch.nn.Module,
        model: torch.nn.Module,
        reference: torch.nn.Module | None,
        optimizer: Any,
        scheduler: Any,
        pad_id: int,
        aux: AuxLosses | None = None,
    ) -> None:
        self.config = config
        self.objective = objective
        self.accelerator = accelerator
        self.processes = processes
        self.policy = policy
        """What forward and backward run through (DDP-wrapped when there are processes)."""
        self.model = model
        """The same module unwrapped (LoRA's disable_adapter, parameters, saving)."""
        self.reference = reference
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.pad_id = pad_id
        self.aux = aux
        """Auxiliary losses added to the RL loss in the same optimizer steps (None: none)."""
        self.times: dict[str, float] = {}
        self._aux_stats: dict[str, list[float]] = {}

    @property
    def temperature(self) -> float:
        """Training log-probs use the sampling temperature, as TRL does: the policy trained
        is the one that sampled (see `posttrain.models.generation`)."""
        t = self.config.rollout.temperature
        return t if t > 0 else 1.0

    def __call__(self, samples: list[Sample], step: int = 0) -> dict[str, float]:
        """Optimizer steps on `samples`; `step` is the number of updates already made (the
        auxiliary weights' schedule position)."""
        config = self.config
        self.times = {"time/old_logprobs_s": 0.0, "time/forward_backward_s": 0.0}
        extra: dict[str, float] = {}
        if self.objective.prepare is not None:
            # Prepared on the whole batch (identical on every process), then shared out, so
            # the rows do not depend on how the rollout was split.
            everything = self.processes.gather(samples)
            rows, extra = self.objective.prepare(everything, config)
            samples = self._shard_rows(rows)
        aux = None
        if self.aux is not None:
            started = time.perf_counter()
            aux = self.aux.batch(samples, step, self.processes)
            self.times["time/aux_s"] = time.perf_counter() - started
            self._aux_stats = {}
        batch = tensorize(samples, self.pad_id) if samples else None
        started = time.perf_counter()
        with torch.no_grad():
            old = self._logprobs(self.model, batch) if self._needs_old() and batch else None
            ref = self._reference_logprobs(batch) if self._needs_ref() and batch else None
        self.times["time/old_logprobs_s"] = time.perf_counter() - started
        self.policy.train()
        totals: dict[str, float] = {}
        steps = 0
        self.times["time/optimizer_s"] = 0.0
        for mini in self._mini_batches(len(samples)):
            stats = self._mini_batch(batch, mini, old, ref, aux)
            if stats is None:
                self.scheduler.step()  # nothing to learn from anywhere: keep the schedule
                continue
            steps += 1
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value
        extra.update({key: value / steps for key, value in totals.items()} if steps else {})
        if aux is not None:
            extra.update(aux.metrics)
            extra.update({key: float(np.mean(v)) for key, v in self._aux_stats.items()})
        extra.update(self.times)
        return extra

    # ----------------------------------------------------------------- parts

    def _needs_old(self) -> bool:
        return self.objective.needs_old_logp(self.config)

    def _needs_ref(self) -> bool:
        return self.objective.needs_reference(self.config.loss)

    def _shard_rows(self, rows: list[Sample]) -> list[Sample]:
        """This process's share of the prepared rows, keeping `rows_together` rows whole."""
        k = self.objective.rows_together
        units = [rows[i : i + k] for i in range(0, len(rows), k)]
        mine, _ = self.processes.shard(units)
        return [row for unit in mine for row in unit]

    def _mini_batches(self, count: int) -> list[np.ndarray]:
        k = self.objective.rows_together
        units = np.array_split(np.arange(count // k), self.config.mini_batches)
        return [(u[:, None] * k + np.arange(k)).reshape(-1) for u in units]

    def _micro_batches(self, mini: np.ndarray) -> list[np.ndarray]:
        k = self.objective.rows_together
        size = max(k, self.config.micro_batch_size // k * k)
        return [mini[i : i + size] for i in range(0, len(mini), size)]

    def _units(self, batch: dict[str, torch.Tensor] | None, index: np.ndarray) -> float:
        if batch is None or len(index) == 0:
            return 0.0
        if self.objective.unit(self.config.loss) == "tokens":
            return float(batch["mask"][torch.as_tensor(index)].sum())
        return float(len(index))

    def _mini_batch(
        self,
        batch: dict[str, torch.Tensor] | None,
        mini: np.ndarray,
        old: torch.Tensor | None,
        ref: torch.Tensor | None,
        aux: AuxBatch | None = None,
    ) -> dict[str, float] | None:
        """One optimizer step; None (and no step) when no process has anything to train on."""
        total = self.processes.sum(self._units(batch, mini))
        if total == 0:
            return None
        micros = self._micro_batches(mini) if batch is not None else []
        count = self.processes.max(len(micros))
        aux_plan = self._aux_plan(aux, mini) if aux is not None else None
        passes = count + (aux_plan[0] if aux_plan is not None else 0)
        self.optimizer.zero_grad(set_to_none=True)
        stats: dict[str, float] = {}
        started = time.perf_counter()
        aux_seconds = 0.0
        for i in range(passes):
            if i >= count:  # the auxiliary losses' passes, after the RL loss's
                aux_started = time.perf_counter()
                with self._sync_on_last(i == passes - 1):
                    self._aux_pass(aux_plan, i - count)  # type: ignore[arg-type]
                aux_seconds += time.perf_counter() - aux_started
                continue
            with self._sync_on_last(i == passes - 1):
                if i < len(micros):
                    share = self._units(batch, micros[i]) / total
                    loss, metrics = self._micro_loss(batch, micros[i], old, ref)  # type: ignore[arg-type]
                    for key, value in metrics.items():
                        stats[key] = stats.get(key, 0.0) + value * share
                else:  # a zero-weight pass, so this process joins the gradient all-reduce
                    share, loss = 0.0, self._idle_loss()
                # DDP averages gradients over processes; the global share already sums to 1.
                self.accelerator.backward(loss * share * self.processes.world)
        self.times["time/forward_backward_s"] += time.perf_counter() - started - aux_seconds
        if aux_plan is not None:
            self.times["time/aux_s"] = self.times.get("time/aux_s", 0.0) + aux_seconds
            self._aux_metrics(aux_plan)
        started = time.perf_counter()
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = self.accelerator.clip_grad_norm_(params, self.config.optim.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.times["time/optimizer_s"] += time.perf_counter() - started
        stats = self.processes.sum_dicts(stats)
        stats["grad_norm"] = float(grad_norm)
        return stats

    # ----------------------------------------------------------------- auxiliary losses

    def _aux_plan(self, aux: AuxBatch, mini: np.ndarray) -> tuple[int, dict[str, Any]]:
        """The number of auxiliary passes every process runs for this mini-batch, and what
        this process's passes need: its micro-batches, and per kind lambda / the global
        target-token count (so the passes sum to lambda_SP L_SP + lambda_ID L_ID)."""
        assert self.aux is not None
        examples = self.aux.mini_batch(aux, mini)
        tokens = self.aux.target_tokens(examples)
        totals = {kind: self.processes.sum(count) for kind, count in tokens.items()}
        scale = {
            kind: aux.weights[kind] / totals[kind] if totals[kind] > 0 else 0.0 for kind in totals
        }
        micros = self.aux.micro_batches(examples)
        passes = self.processes.max(len(micros)) if any(scale.values()) else 0
        sums = dict.fromkeys(totals, 0.0)
        return passes, {"micros": micros, "scale": scale, "totals": totals, "sums": sums}

    def _aux_pass(self, plan: tuple[int, dict[str, Any]], index: int) -> None:
        assert self.aux is not None
        _, parts = plan
        if index < len(parts["micros"]):
            loss, sums = self.aux.micro_loss(
                self.policy, parts["micros"][index], parts["scale"], self.pad_id,
                self.processes.device,
            )  # fmt: skip
            for kind, value in sums.items():
                parts["sums"][kind] += value
        else:  # a zero-weight pass, so this process joins the gradient all-reduce
            loss = self._idle_loss()
        # DDP averages gradients over processes; the scales already use global counts.
        self.accelerator.backward(loss * self.processes.world)

    def _aux_metrics(self, plan: tuple[int, dict[str, Any]]) -> None:
        """aux/sp_loss and aux/id_loss: this mini-batch's token-mean cross-entropies."""
        passes, parts = plan
        if passes == 0:
            return
        for kind, total in parts["totals"].items():
            if total > 0 and parts["scale"][kind] > 0:
                value = self.processes.sum(parts["sums"][kind]) / total
                self._aux_stats.setdefault(f"aux/{kind}_loss", []).append(value)

    @contextlib.contextmanager
    def _sync_on_last(self, last: bool) -> Iterator[None]:
        """Gradients are all-reduced once per optimizer step, on its last backward."""
        if last or self.processes.world == 1:
            yield
        else:
            with self.accelerator.no_sync(self.policy):
                yield

    def _forward_logprobs(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor], index: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Temperature-scaled float32 logits and the sampled tokens' log-probs."""
        device = self.processes.device
        logits = model(
            input_ids=batch["input_ids"][index].to(device),
            attention_mask=batch["attention_mask"][index].to(device),
            use_cache=False,
        ).logits[:, :-1]
        logits = logits.float() / self.temperature
        return logits, losses.token_logprobs(logits, batch["targets"][index].to(device))

    def _micro_loss(
        self,
        batch: dict[str, torch.Tensor],
        micro: np.ndarray,
        old: torch.Tensor | None,
        ref: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        device = self.processes.device
        index = torch.as_tensor(micro)
        logits, logp = self._forward_logprobs(self.policy, batch, index)
        mask = batch["mask"][index].to(device)
        rollout = batch["rollout_logp"][index].to(device)
        old_logp = old[index].to(device) if old is not None else logp.detach()
        inputs = LossInputs(
            logp=logp,
            old_logp=old_logp,
            rollout_logp=rollout,
            ref_logp=ref[index].to(device) if ref is not None else None,
            advantages=batch["advantages"][index].to(device),
            mask=mask,
            config=self.config.loss,
            max_tokens=self.config.rollout.max_tokens,
        )
        loss, metrics = self.objective.fn(inputs)
        with torch.no_grad():
            metrics = dict(metrics)
            metrics["loss"] = loss.item()
            metrics["entropy"] = losses.masked_mean(
                losses.entropy_from_logits(logits.detach()), mask
            ).item()
            metrics.update(losses.mismatch_metrics(old_logp, rollout, mask))
        return loss, metrics

    def _idle_loss(self) -> torch.Tensor:
        ids = torch.tensor([[self.pad_id, self.pad_id]], device=self.processes.device)
        return self.policy(input_ids=ids, use_cache=False).logits.float().sum() * 0.0

    def _logprobs(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """No-grad log-probs through the unwrapped module: no DDP collective, so processes
        with different batch sizes never wait for each other here."""
        model.eval()
        out = []
        size = self.config.micro_batch_size
        with self.accelerator.autocast():
            for start in range(0, len(batch["input_ids"]), size):
                part = slice(start, start + size)
                out.append(self._forward_logprobs(model, batch, part)[1].cpu())
        return torch.cat(out)

    def _reference_logprobs(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.reference is not None:
            return self._logprobs(self.reference, batch)
        with self.model.disable_adapter():  # LoRA: the frozen base is the reference
            return self._logprobs(self.model, batch)


def tensorize(samples: list[Sample], pad_id: int) -> dict[str, torch.Tensor]:
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
        "advantages": _advantages(samples, width),
    }


def _advantages(samples: list[Sample], width: int) -> torch.Tensor:
    """[B] scalar advantages; [B, width - 1] aligned like `mask` when any sample carries
    per-token advantages (GiGPO), the others' scalar spread over their response."""
    scalars = torch.tensor([s.advantage for s in samples])
    if all(s.token_advantages is None for s in samples):
        return scalars
    per_token = torch.zeros((len(samples), width - 1))
    for i, s in enumerate(samples):
        start = len(s.prompt_ids) - 1
        end = start + len(s.response_ids)
        if s.token_advantages is None:
            per_token[i, start:end] = scalars[i]
            continue
        if len(s.token_advantages) != len(s.response_ids):
            raise ValueError(
                f"token_advantages ({len(s.token_advantages)}) must have one entry per "
                f"response token ({len(s.response_ids)})"
            )
        per_token[i, start:end] = torch.tensor(s.token_advantages)
    return per_token
