"""Run directories: `config.yaml`, `metrics.jsonl`, `checkpoints/` and `report.html`.

Metrics are appended one JSON object per line and flushed as written, so a crash loses at
most the line in flight; reading tolerates that torn last line. `report_to` also sends each
line's numbers to experiment trackers (`posttrain.tracking`); metrics.jsonl stays the record.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from posttrain import atomic
from posttrain.config import dump_config
from posttrain.errors import InputError
from posttrain.tracking import check_report_to, numeric, open_trackers

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_WATCH_ONLY = ("report_to",)
"""Settings that only watch a run (trackers): they never make reused stages differ."""


def check_run_name(name: str) -> str:
    """`name`, if it names one directory inside the runs root: not empty, not `.` or `..`,
    no path separator (a name that leaves `runs/` would write a run over other files)."""
    if not name.strip(".") or "/" in name or "\\" in name:
        raise InputError(
            f"{name!r} is not a run directory name: no '/', not empty, '.' or '..'",
            key="run_name",
        )
    return name


class Run:
    """One training or evaluation run, writing under `root/name`."""

    def __init__(self, path: str | Path, report_to: Sequence[str] = ()) -> None:
        """`report_to`: trackers (tensorboard, trackio, wandb) that also get every `log`."""
        names = check_report_to(report_to)
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._trackers = open_trackers(names, self.path, _saved_config(self.path)) if names else []
        self._metrics = open(self.metrics_path, "a", encoding="utf-8")  # noqa: SIM115

    @classmethod
    def create(
        cls,
        name: str,
        config: Any = None,
        root: str | Path = "runs",
        report_to: Sequence[str] = (),
    ) -> Run:
        """Open (or reopen, to resume) `root/name` and write the resolved config (before the
        trackers start, so they record it too)."""
        check_report_to(report_to)  # a bad name leaves no directory behind
        path = Path(root) / _SAFE_NAME.sub("-", check_run_name(name))
        if config is not None:
            path.mkdir(parents=True, exist_ok=True)
            dump_config(config, path / "config.yaml")
        return cls(path, report_to=report_to)

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint_dir(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:06d}"

    def link_checkpoint(self, model_dir: str | Path, name: str = "final") -> Path:
        """Point `checkpoints/<name>` at a model kept elsewhere (a cache) instead of copying it."""
        link = self.checkpoints / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(model_dir).resolve(), target_is_directory=True)
        return link

    def log(self, step: int, **metrics: Any) -> None:
        """Append one step's metrics (JSON-safe scalars) and flush to the OS at once; the
        numeric ones go to the trackers too."""
        record = {"step": step, "time": round(time.time(), 3), **metrics}
        self._metrics.write(json.dumps(record, default=_json_default) + "\n")
        self._metrics.flush()
        os.fsync(self._metrics.fileno())
        values = numeric(metrics) if self._trackers else {}
        if values:
            for tracker in self._trackers:
                tracker.log(step, values)

    def truncate_metrics_after(self, step: int) -> None:
        """Drop records past `step`: a resumed run redoes those steps and logs them anew."""
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        self._metrics.close()
        atomic.write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))
        self._metrics = open(self.metrics_path, "a", encoding="utf-8")  # noqa: SIM115

    def write_json(self, name: str, data: Any) -> Path:
        """Write a summary file atomically and durably (a kill leaves the old one or the new)."""
        text = json.dumps(data, indent=2, default=_json_default)
        return atomic.write_text(self.path / name, text)

    def close(self) -> None:
        """Close metrics.jsonl and finish the trackers (again is a no-op)."""
        self._metrics.close()
        trackers, self._trackers = self._trackers, []
        for tracker in trackers:
            tracker.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All complete metric records of a run; a torn final line (the line in flight when the
    process died, or a live run's) is skipped, a bad line elsewhere is an error."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    from posttrain.data.io import read_jsonl

    return read_jsonl(path, tolerate_torn_tail=True)


def _saved_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's config.yaml as data, for the trackers' config panels."""
    import yaml

    path = run_dir / "config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy and torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def changed_settings(
    config_path: str | Path, now: dict[str, Any], ignore: tuple[str, ...] = ()
) -> list[str]:
    """Dotted keys whose value in `now` differs from the run's saved `config.yaml`.

    Recipes reuse finished stages of a run directory; this names the settings that would
    make that reuse mix two configurations. Top-level keys in `ignore` may differ (they only
    add work, such as more seeds). No saved config: nothing differs.
    """
    import yaml

    path = Path(config_path)
    if not path.exists():
        return []
    before = yaml.safe_load(path.read_text()) or {}
    old = _flat({k: v for k, v in before.items() if k not in ignore})
    new = _flat({k: v for k, v in now.items() if k not in ignore})
    return [
        key
        for key, value in new.items()
        if old.get(key) != value and key.rpartition(".")[2] not in _WATCH_ONLY
    ]


def require_unchanged(
    config_path: str | Path, now: dict[str, Any], ignore: tuple[str, ...] = ()
) -> None:
    """Raise a ValueError naming the settings that differ from a run's saved config (see
    `changed_settings`), so a recipe never reuses stages trained under other settings."""
    changed = changed_settings(config_path, now, ignore)
    if changed:
        raise ValueError(
            f"{', '.join(changed)}: differ from {config_path}, whose finished stages would be"
            " reused; set another run_name (or remove that directory) to start afresh"
        )


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
