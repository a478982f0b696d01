"""Experiment trackers (`report_to`): TensorBoard, Trackio and Weights & Biases.

A `Run` fans each `log(step, **metrics)` out to the trackers named in `report_to`, through
each package's own API; `metrics.jsonl` stays the record that resume and reports read, so a
tracker is a view, never a dependency. The packages are optional extras, imported only when
a tracker is asked for. TRL-driven stages hand the same names to TRL instead
(`trl_report_to`), whose own integrations then log the trainer.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

TRACKERS = ("tensorboard", "trackio", "wandb")
"""The names `report_to` accepts (an empty list reports nowhere)."""

PROJECT = "posttrain"
"""Project name in Trackio and W&B ($WANDB_PROJECT still wins for W&B)."""


class Tracker(Protocol):
    def log(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


def check_report_to(report_to: str | Sequence[str] | None, key: str = "report_to") -> list[str]:
    """The tracker names, de-duplicated in order; an unknown name is a ValueError naming `key`."""
    if report_to is None:
        return []
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    for name in names:
        if name not in TRACKERS:
            raise ValueError(
                f"{key}: unknown tracker {name!r}; allowed: {', '.join(TRACKERS)}"
                " (or an empty list for none)"
            )
    return list(dict.fromkeys(names))


def trl_report_to(report_to: str | Sequence[str] | None, key: str = "report_to") -> Any:
    """`report_to` for a TRL / transformers config: the names, or "none" for an empty list."""
    return check_report_to(report_to, key) or "none"


def numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The values a tracker can plot: ints, floats and numpy / torch scalars. Strings, None,
    booleans (flags such as `cached`) and containers are skipped."""
    out = {}
    for name, value in metrics.items():
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def open_trackers(
    report_to: Sequence[str], run_dir: Path, config: Mapping[str, Any] | None = None
) -> list[Tracker]:
    """Start one tracker per name for the run in `run_dir`; if one fails, close the others."""
    opened: list[Tracker] = []
    try:
        for name in check_report_to(report_to):
            opened.append(_OPENERS[name](run_dir, dict(config or {})))
    except BaseException:
        for tracker in opened:
            tracker.close()
        raise
    return opened


def _missing(name: str, err: ImportError) -> ImportError:
    return ImportError(
        f"report_to: {name!r} needs the {name} package; install it with "
        f"pip install 'posttrain[{name}]' ({err})"
    )


class TensorBoardTracker:
    """Event files under `run_dir/tensorboard`, written by torch's SummaryWriter."""

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise _missing("tensorboard", err) from None
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), flush_secs=10)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, global_step=step)

    def close(self) -> None:
        self.writer.close()


class TrackioTracker:
    """A Trackio run named after the run directory, in Trackio's local store ($TRACKIO_DIR)
    or wherever Trackio's own settings send it."""

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        try:
            import trackio
        except ImportError as err:
            raise _missing("trackio", err) from None
        self.run = trackio.init(project=PROJECT, name=run_dir.name, config=config)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        # Trackio stores NaN / inf awkwardly; a diverged value is still in metrics.jsonl.
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        if finite:
            self.run.log(finite, step=step)

    def close(self) -> None:
        self.run.finish()


class WandbTracker:
    """A W&B run named after the run directory; its files go under the run directory unless
    $WANDB_DIR says otherwise, and $WANDB_MODE=offline keeps it off the network."""

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        try:
            import wandb
        except ImportError as err:
            raise _missing("wandb", err) from None
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or PROJECT,
            name=run_dir.name,
            dir=os.environ.get("WANDB_DIR") or str(run_dir),
            config=config,
            reinit="create_new",  # several runs may be open at once (a recipe's stages)
        )

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.run.log(dict(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


_OPENERS = {"tensorboard": TensorBoardTracker, "trackio": TrackioTracker, "wandb": WandbTracker}
