"""The hacking detector on a run while it trains: inside the trainer, or following its log.

`HackingMonitor` is what an RL config's `monitor: {hacking: statistical}` runs: the trainer
hands it each step's scored rollouts; it runs the detector on every step so far (the
statistical detector uses only steps <= t, so it alerts at the step it would offline),
returns `monitor/*` metrics, writes the first alert to `alerts.jsonl` in the run directory,
and says whether `on_alert: stop` should end the run.

`watch` follows a rollout log another process is writing (posttrain's, or any trainer's
through a field mapping, `trainer_logs`), polling the file, and returns at the first alert,
when the run has finished, or at a timeout. Only whole steps are judged: a step counts once
a later step has begun, or once the run has finished.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posttrain.data.io import append_jsonl, read_jsonl, write_jsonl
from posttrain.monitor.alert import Alert, Detector
from posttrain.monitor.detector import load_detector
from posttrain.monitor.log_analysis import VISIBLE_KEYS
from posttrain.monitor.trainer_logs import ROLLOUTS_FILE, TrainerLog, read_trainer_log

ALERTS_FILE = "alerts.jsonl"
ON_ALERT = ("continue", "stop")


class HackingMonitor:
    """Runs a detector on a training run's rollouts as each step is logged."""

    def __init__(self, spec: str, run_dir: str | Path, on_alert: str = "continue") -> None:
        if on_alert not in ON_ALERT:
            raise ValueError(f"monitor.on_alert: {on_alert!r} is not one of {list(ON_ALERT)}")
        self.spec = spec
        self.detector: Detector = load_detector(spec)
        self.on_alert = on_alert
        self.alerts_path = Path(run_dir) / ALERTS_FILE
        self.records: list[dict[str, Any]] = []
        self.alert: Alert | None = None

    def resume(self, step: int) -> None:
        """Continue a run resumed at `step`: the rollouts it logged up to there (from its
        rollouts.jsonl, when it keeps one) and an alert it already raised."""
        log = self.alerts_path.parent / ROLLOUTS_FILE
        if log.is_file():
            logged = read_trainer_log(log, allow_empty=True).records
            self.records = [r for r in logged if r["step"] <= step]
        if self.alerts_path.is_file():
            # An alert raised after `step` is redone (or not) as the steps are trained again.
            kept = [
                record
                for record in read_jsonl(self.alerts_path, tolerate_torn_tail=True)
                if record.get("seen_at_step", 0) <= step
            ]
            write_jsonl(self.alerts_path, kept)
            if kept:
                self.alert = Alert(**kept[0]["alert"])

    def observe(self, step: int, records: list[Mapping[str, Any]]) -> dict[str, float]:
        """Add one step's rollouts; the `monitor/*` metrics after looking at every step."""
        self.records += [{key: r.get(key, "") for key in VISIBLE_KEYS} for r in records]
        if self.alert is None:
            self.alert = self.detector.detect(self.records)
            if self.alert is not None:
                append_jsonl(
                    self.alerts_path,
                    {"seen_at_step": step, "detector": self.spec, "alert": self.alert.to_dict()},
                )
        metrics = {"monitor/alert": float(self.alert is not None)}
        if self.alert is not None:
            metrics["monitor/alert_step"] = float(self.alert.alert_step)
            metrics["monitor/onset_step"] = float(self.alert.onset_step)
            metrics["monitor/confidence"] = float(self.alert.confidence)
        return metrics

    @property
    def should_stop(self) -> bool:
        return self.alert is not None and self.on_alert == "stop"


@dataclass(frozen=True)
class WatchResult:
    """How a watch ended: "alert", "finished" or "timeout"; the alert, and the log read."""

    outcome: str
    alert: Alert | None
    log: TrainerLog | None
    steps_judged: int

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": self.outcome, "steps_judged": self.steps_judged}
        out["alert"] = None if self.alert is None else self.alert.to_dict()
        if self.alert is not None and self.log is not None and self.log.step_values:
            out["logged_alert_step"] = self.log.logged_step(self.alert.alert_step)
            out["logged_onset_step"] = self.log.logged_step(self.alert.onset_step)
        return out


def run_finished(run_dir: Path) -> bool:
    """A posttrain run that saved its final checkpoint, or any run with a `DONE` file."""
    return (run_dir / "checkpoints" / "final").exists() or (run_dir / "DONE").exists()


def watch(
    path: str | Path,
    *,
    fields: Mapping[str, str] | None = None,
    detector: Detector | None = None,
    interval: float = 10.0,
    timeout: float | None = None,
    finished: Callable[[], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> WatchResult:
    """Poll the rollout log at `path` (a file, or a run directory's rollouts.jsonl) every
    `interval` seconds until the detector alerts on its whole steps, the run has finished
    (`finished()`, by default `run_finished` of the run directory) and its last step has
    been judged, or `timeout` seconds have passed. A log not written yet is waited for."""
    path = Path(path)
    file = path / ROLLOUTS_FILE if path.is_dir() else path
    run_dir = file.parent
    finished = finished or (lambda: run_finished(run_dir))
    detector = detector or load_detector("statistical")
    started = time.monotonic()
    judged, size, log = 0, -1, None
    while True:
        done = finished()  # before reading: a run that finishes after this is read again
        current = file.stat().st_size if file.is_file() else -1
        if current > 0 and (current != size or done):
            if current != size:
                size, log = current, read_trainer_log(file, fields, allow_empty=True)
            steps = sorted({r["step"] for r in log.records})
            whole = steps if done else steps[:-1]  # the last step may still be written
            if len(whole) > judged:
                judged = len(whole)
                last = whole[-1]
                alert = detector.detect([r for r in log.records if r["step"] <= last])
                if alert is not None:
                    return WatchResult("alert", alert, log, judged)
        if done:
            return WatchResult("finished", None, log, judged)
        if timeout is not None and time.monotonic() - started >= timeout:
            return WatchResult("timeout", None, log, judged)
        sleep(interval)
