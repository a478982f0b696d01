"""What a reward-hacking detector answers, and the one method every detector has.

An `Alert` says when a detector alerted, when it thinks hacking began, what kind of hacking
it is and why; a `Detector` turns a rollout log (records or a path) into an Alert, or None
when it sees no hacking. The detectors are in `statistical_detector` and `agent_detector`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Alert:
    """A detector's verdict: when it alerted, when it thinks hacking began, and why."""

    alert_step: int
    onset_step: int
    confidence: float
    hacking_type: str
    evidence: dict[str, Any] = field(default_factory=dict)
    detector: str = "statistical"
    """What produced it: "statistical", or "llm:<model name>"."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Detector(Protocol):
    """Anything that reads a rollout log (records, or a rollouts.jsonl / run directory) and
    returns an Alert, or None when it sees no reward hacking."""

    def detect(self, records: Iterable[Mapping[str, Any]] | str | Path) -> Alert | None: ...
