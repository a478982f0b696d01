"""The RL engine's processes, through accelerate: device, mixed precision and the few
collectives data-parallel RL needs.

One `Accelerator` per trainer. On a machine with CUDA (or MPS) it picks the device; without
one it runs on the CPU, and under `accelerate launch --multi_gpu --num_processes N` or
`torchrun --nproc_per_node N` on a CPU-only machine the processes join a gloo group
(accelerate's MULTI_CPU), which is how the multi-process tests run here. FSDP and DeepSpeed
come from an accelerate config file (`accelerate launch --config_file ...`) and reach the
engine through the same `Accelerator`.

Every process rolls out its own share of each step's prompts; the collectives below keep
counts and metrics global, so an update over N processes equals one process's update over
the same samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def _has_accelerator() -> bool:
    return torch.cuda.is_available() or (
        hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    )


def make_accelerator(mixed_precision: str = "no") -> Any:
    """An `Accelerator` for the engine; CPU when the machine has no accelerator.

    accelerate keeps its settings in a process-wide singleton and refuses a second
    Accelerator with another precision; a process that trains several policies one after
    another (a recipe comparing runs, the tests) needs each trainer's own, so the singleton's
    precision part is cleared first (the process group, if any, is kept).
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and str(state.get("_mixed_precision", mixed_precision)) != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)
    if mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("mixed_precision: fp16 needs a CUDA device; use bf16 or no on the CPU")
    return Accelerator(cpu=not _has_accelerator(), mixed_precision=mixed_precision)


def main_process_first() -> Any:
    """A context in which the main process runs first and the others after it (for work
    that fills a cache, such as the warm start: done once, then read by everyone)."""
    from accelerate import PartialState

    return PartialState(cpu=not _has_accelerator()).main_process_first()


class Processes:
    """Rank, world size and collectives of the training processes (one process: no-ops)."""

    def __init__(self, accelerator: Any) -> None:
        self.accelerator = accelerator
        self.rank = accelerator.process_index
        self.world = accelerator.num_processes
        self.is_main = accelerator.is_main_process
        self.device = accelerator.device

    def shard(self, items: Sequence[T]) -> tuple[list[T], int]:
        """This process's contiguous share of `items` and the index of its first item.

        Shares differ by at most one item; a process may get none."""
        base, extra = divmod(len(items), self.world)
        start = self.rank * base + min(self.rank, extra)
        size = base + (1 if self.rank < extra else 0)
        return list(items[start : start + size]), start

    def gather(self, items: list[T]) -> list[T]:
        """Every process's `items`, concatenated in rank order, on every process."""
        if self.world == 1:
            return list(items)
        parts: list[list[T] | None] = [None] * self.world
        torch.distributed.all_gather_object(parts, list(items))
        return [item for part in parts for item in (part or [])]

    def gather_one(self, item: T) -> list[T]:
        """One object per process, in rank order, on every process."""
        return self.gather([item])

    def sum(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(tensor)
        return float(tensor.item())

    def max(self, value: int) -> int:
        if self.world == 1:
            return value
        tensor = torch.tensor([int(value)], dtype=torch.long, device=self.device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return int(tensor.item())

    def sum_dicts(self, values: dict[str, float]) -> dict[str, float]:
        """Key-wise sums of every process's dict (a key missing on a process counts 0)."""
        if self.world == 1:
            return dict(values)
        total: dict[str, float] = {}
        for part in self.gather_one(values):
            for key, value in part.items():
                total[key] = total.get(key, 0.0) + value
        return total

    def barrier(self) -> None:
        if self.world > 1:
            self.accelerator.wait_for_everyone()

    def broadcast(self, item: T) -> T:
        """The main process's `item`, on every process."""
        if self.world == 1:
            return item
        box = [item]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]
