"""Checkpoints that resume exactly: model, optimiser, scheduler, data position, RNG states.

A checkpoint directory is also a loadable model directory (`save_pretrained`), so any step
can be served or evaluated directly. It is written under a temporary name and renamed
when complete, so a crash mid-save never leaves a checkpoint that resume would trust.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "trainer_state.pt"


def rng_states() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])


def save_checkpoint(
    directory: Path,
    model: torch.nn.Module,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
) -> Path:
    """Write everything needed to continue training from this point."""
    scratch = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    model.save_pretrained(scratch)
    tokenizer.save_pretrained(scratch)
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_states(),
            **state,
        },
        scratch / STATE_FILE,
    )
    shutil.rmtree(directory, ignore_errors=True)
    scratch.rename(directory)
    return directory


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete checkpoint under `checkpoints/` (step-NNNNNN), if any."""
    done = [p for p in checkpoints.glob("step-*") if (p / STATE_FILE).exists()]
    return max(done, key=lambda p: p.name) if done else None


def load_trainer_state(directory: Path) -> dict[str, Any]:
    # weights_only=False: the file holds RNG states (numpy arrays, tuples) we wrote ourselves.
    return torch.load(directory / STATE_FILE, weights_only=False)


def prune_checkpoints(checkpoints: Path, keep: int) -> None:
    done = sorted(p for p in checkpoints.glob("step-*") if (p / STATE_FILE).exists())
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
