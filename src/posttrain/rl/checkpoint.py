"""Checkpoints that resume exactly: model, optimiser, scheduler, data position, RNG states.

A checkpoint directory is also a loadable model directory (`save_pretrained`), so any step
can be served or evaluated directly. A save is staged under a hidden scratch name that no
`step-*` pattern matches (`posttrain.atomic`), closed by a manifest (`checkpoint.json`:
every file and its size), fsynced and renamed into place. Resume trusts only the newest
`step-NNNNNN` whose manifest matches its files, so a kill at any moment of a save or a prune
costs at most that save; what a killed save left behind is removed on the next start.
"""

from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posttrain import atomic

STATE_FILE = "trainer_state.pt"
MANIFEST = "checkpoint.json"
"""Written last into a staged checkpoint: {"step": N, "files": {relative path: bytes}}."""
_STEP_DIR = re.compile(r"^step-(\d+)$")
_OLD_SCRATCH = re.compile(r"^step-\d+\.tmp$")
"""The scratch name of posttrain before manifests; such a directory is never complete."""

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read back."""


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
    """Write everything needed to continue training from this point, all or nothing."""
    clean_scratch(directory.parent)
    with atomic.staged_dir(directory) as scratch:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        trainer_state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_states(),
            **state,
        }
        with open(scratch / STATE_FILE, "wb") as handle:
            torch.save(trainer_state, handle)
        _write_manifest(scratch, state.get("step"))
    return directory


def save_model_dir(directory: Path, model: torch.nn.Module, tokenizer: Any) -> Path:
    """A plain model directory (`save_pretrained`), published all or nothing: a stage that
    finds it may trust it."""
    with atomic.staged_dir(directory) as scratch:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
    return directory


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete checkpoint under `checkpoints/` (step-NNNNNN), if any.

    Newer directories that are not complete (a save killed on a file system whose rename
    is not atomic, a truncated file) are skipped with a warning naming what is wrong, and
    scratch left by killed saves is removed.
    """
    if not checkpoints.is_dir():
        return None
    clean_scratch(checkpoints)
    for directory in reversed(_step_dirs(checkpoints)):
        problem = incomplete(directory)
        if problem is None:
            return directory
        logger.warning(
            "%s: not a complete checkpoint (%s); resuming from an earlier one", directory, problem
        )
    return None


def incomplete(directory: Path) -> str | None:
    """What makes `directory` an incomplete checkpoint, or None when its manifest lists
    files that are all there with the sizes they were written with."""
    manifest = directory / MANIFEST
    try:
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        sizes = {str(name): int(size) for name, size in files.items()}
    except FileNotFoundError:
        return f"no {MANIFEST}: its save did not finish"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return f"{MANIFEST} unreadable: {type(err).__name__}: {err}"
    if STATE_FILE not in sizes:
        return f"{MANIFEST} lists no {STATE_FILE}"
    for name, size in sizes.items():
        try:
            actual = (directory / name).stat().st_size
        except FileNotFoundError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} has {actual} bytes, {MANIFEST} says {size}"
    return None


def load_trainer_state(directory: Path) -> dict[str, Any]:
    path = directory / STATE_FILE
    try:
        # weights_only=False: the file holds RNG states (numpy arrays, tuples) we wrote.
        return torch.load(path, weights_only=False)
    except Exception as err:  # EOFError would reach the CLI as a bare "Aborted!"
        raise CheckpointError(
            f"{path}: unreadable trainer state ({type(err).__name__}: {err}); move "
            f"{directory} aside to resume from the checkpoint before it"
        ) from err


def prune_checkpoints(checkpoints: Path, keep: int) -> None:
    """Keep the newest `keep` complete checkpoints (0: all of them)."""
    if keep <= 0:
        return
    done = [p for p in _step_dirs(checkpoints) if incomplete(p) is None]
    for old in done[:-keep]:
        atomic.retire(old)


def clean_scratch(checkpoints: Path) -> None:
    """Remove what killed saves and prunes left under `checkpoints/`. A run has one writer
    (the main process) and other processes only look before training starts, so scratch
    there is a dead writer's whichever host wrote it."""
    for removed in atomic.clean_stale(checkpoints, any_host=True):
        logger.info("removed %s, left by a killed save", removed)
    if checkpoints.is_dir():
        for old in checkpoints.iterdir():
            if _OLD_SCRATCH.match(old.name):
                atomic.retire(old, missing_ok=True)  # every process of a run looks at start


def _step_dirs(checkpoints: Path) -> list[Path]:
    """The step-NNNNNN directories, oldest first (by number: steps may pass 999999)."""
    if not checkpoints.is_dir():
        return []
    found = [(int(m[1]), p) for p in checkpoints.iterdir() if (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found) if p.is_dir()]


def _write_manifest(directory: Path, step: int | None) -> None:
    files = {
        p.relative_to(directory).as_posix(): p.stat().st_size
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
    text = json.dumps({"step": step, "files": files}, indent=2)
    (directory / MANIFEST).write_text(text, encoding="utf-8")
