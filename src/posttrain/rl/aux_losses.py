"""EnvRL's auxiliary losses in the policy update: L = L_RL + lambda_SP(t) L_SP + lambda_ID(t) L_ID.

L_SP and L_ID are cross-entropies (token means over their target spans, over the whole
mini-batch on every process) of the state-prediction and inverse-dynamics examples
(`posttrain.rl.aux_examples`) of the mini-batch's trajectories. `PolicyUpdate` runs their
forward/backward passes after the RL micro-batches of the same optimizer step, so both
gradients meet in one step. Each process runs as many auxiliary passes as the busiest one
(zero-weight passes where it has fewer), since DDP all-reduces on every process together.

The losses use the policy's raw logits (temperature 1): they are language-modelling losses,
not log-probs of sampled tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from posttrain.rl import losses
from posttrain.rl.aux_examples import AUX_KINDS, AuxExample, AuxKind, transition_examples
from posttrain.rl.config import AuxConfig
from posttrain.rl.distributed import Processes
from posttrain.rl.sample import Sample
from posttrain.rl.transitions import transitions

SCHEDULES = ("cosine", "linear", "constant")


def schedule_weight(lambda0: float, schedule: str, step: int, total_steps: int) -> float:
    """lambda(t) for `step` t of `total_steps` T: cosine lambda0 (1 + cos(pi t / T)) / 2 (EnvRL's
    choice, which beat the others there), linear lambda0 (1 - t / T), constant lambda0."""
    if schedule not in SCHEDULES:
        raise ValueError(f"aux.schedule: unknown {schedule!r}; expected one of {SCHEDULES}")
    if total_steps < 1:
        raise ValueError(f"steps must be >= 1 for an aux schedule, got {total_steps}")
    progress = min(max(step / total_steps, 0.0), 1.0)
    if schedule == "cosine":
        return lambda0 * (1.0 + math.cos(math.pi * progress)) / 2.0
    if schedule == "linear":
        return lambda0 * (1.0 - progress)
    return lambda0


def check_aux_config(config: AuxConfig) -> None:
    """Errors name the key: negative weights, an unknown schedule, impossible limits."""
    for kind in AUX_KINDS:
        value = getattr(config, kind).lambda0
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"aux.{kind}.lambda0 must be a finite number >= 0, got {value}")
    if config.schedule not in SCHEDULES:
        raise ValueError(f"aux.schedule must be one of {SCHEDULES}, got {config.schedule!r}")
    if config.max_state_tokens < 1:
        raise ValueError(f"aux.max_state_tokens must be >= 1, got {config.max_state_tokens}")
    cap = config.max_transitions_per_step
    if cap is not None and cap < 1:
        raise ValueError(f"aux.max_transitions_per_step must be >= 1 or null, got {cap}")


def aux_enabled(config: AuxConfig) -> bool:
    return any(getattr(config, kind).lambda0 > 0 for kind in AUX_KINDS)


@dataclass
class AuxBatch:
    """One update's auxiliary examples on this process, with the step's weights."""

    examples: list[AuxExample]
    weights: dict[AuxKind, float]
    metrics: dict[str, float] = field(default_factory=dict)


class AuxLosses:
    """Builds each update's examples and computes their weighted loss, micro-batch by
    micro-batch."""

    def __init__(
        self,
        config: AuxConfig,
        tokenizer: PreTrainedTokenizerBase,
        total_steps: int,
        micro_batch_size: int,
    ) -> None:
        check_aux_config(config)
        self.config = config
        self.tokenizer = tokenizer
        self.total_steps = total_steps
        self.micro_batch_size = max(1, micro_batch_size)

    def weights(self, step: int) -> dict[AuxKind, float]:
        """lambda_SP(t) and lambda_ID(t) at `step` (updates already made)."""
        return {
            kind: schedule_weight(
                getattr(self.config, kind).lambda0, self.config.schedule, step, self.total_steps
            )
            for kind in AUX_KINDS
        }

    def batch(self, samples: Sequence[Sample], step: int, processes: Processes) -> AuxBatch | None:
        """This process's examples for an update at `step`; None when both weights are 0
        (the same on every process, so none of them runs an auxiliary pass)."""
        weights = self.weights(step)
        kinds = [kind for kind in AUX_KINDS if weights[kind] > 0]
        if not kinds:
            return None
        pairs = [(i, t) for i, sample in enumerate(samples) for t in transitions(sample)]
        pairs = self._select(pairs, processes)
        examples: list[AuxExample] = []
        cut = 0
        for index, transition in pairs:
            made, cuts = transition_examples(
                self.tokenizer, transition, kinds, self.config.max_state_tokens, index
            )
            examples += made
            cut += cuts
        metrics = {
            "aux/transitions": processes.sum(len(pairs)),
            "aux/truncated_states": processes.sum(cut),
            "aux/sp_weight": weights["sp"],
            "aux/id_weight": weights["id"],
        }
        return AuxBatch(examples, weights, metrics)

    def _select(self, pairs: list[Any], processes: Processes) -> list[Any]:
        """At most `max_transitions_per_step` over all processes: evenly spaced indices of
        the transitions in global order (rank order), so N processes choose what one would."""
        cap = self.config.max_transitions_per_step
        if cap is None:
            return pairs
        counts = processes.gather_one(len(pairs))
        total, offset = sum(counts), sum(counts[: processes.rank])
        if total <= cap:
            return pairs
        chosen = set(((np.arange(cap) * total) // cap).tolist())
        return [pair for j, pair in enumerate(pairs) if offset + j in chosen]

    # ------------------------------------------------------------- per mini-batch

    def mini_batch(self, batch: AuxBatch, mini: np.ndarray) -> list[AuxExample]:
        """The examples of the trajectories in `mini` (indices of the trained samples)."""
        members = set(mini.tolist())
        return [e for e in batch.examples if e.sample in members]

    def micro_batches(self, examples: list[AuxExample]) -> list[list[AuxExample]]:
        size = self.micro_batch_size
        return [examples[i : i + size] for i in range(0, len(examples), size)]

    @staticmethod
    def target_tokens(examples: list[AuxExample]) -> dict[AuxKind, float]:
        counts: dict[AuxKind, float] = {kind: 0.0 for kind in AUX_KINDS}
        for example in examples:
            counts[example.kind] += len(example.target_ids)
        return counts

    def micro_loss(
        self,
        policy: torch.nn.Module,
        examples: list[AuxExample],
        scale: dict[AuxKind, float],
        pad_id: int,
        device: Any,
    ) -> tuple[torch.Tensor, dict[AuxKind, float]]:
        """sum over kinds of scale[kind] x the summed target-token NLL of `examples` (scale is
        lambda / the mini-batch's global target-token count), and each kind's NLL sum."""
        width = max(len(e.input_ids) for e in examples)
        ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(examples), width), dtype=torch.long)
        mask = torch.zeros((len(examples), width - 1))
        row_scale = torch.zeros((len(examples), 1))
        for row, example in enumerate(examples):
            ids[row, : len(example.input_ids)] = torch.tensor(example.input_ids)
            attention[row, : len(example.input_ids)] = 1
            mask[row, : len(example.input_ids) - 1] = torch.tensor(
                example.loss_mask(), dtype=torch.float
            )
            row_scale[row, 0] = scale[example.kind]
        ids, attention = ids.to(device), attention.to(device)
        mask, row_scale = mask.to(device), row_scale.to(device)
        logits = policy(input_ids=ids, attention_mask=attention, use_cache=False).logits[:, :-1]
        nll = -losses.token_logprobs(logits.float(), ids[:, 1:])
        nll = torch.where(mask != 0, nll, 0.0)
        loss = (nll * row_scale).sum()
        with torch.no_grad():
            per_row = nll.sum(dim=1)
            sums: dict[AuxKind, float] = {kind: 0.0 for kind in AUX_KINDS}
            for row, example in enumerate(examples):
                sums[example.kind] += float(per_row[row])
        return loss, sums
