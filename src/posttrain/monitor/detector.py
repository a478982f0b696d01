"""Reward-hacking detection from what a deployed monitor sees: pick, run and score a detector.

CHERRL's reference onset (`posttrain.monitor.hacking`) needs the true rubric score and the
aux judges' scores; a monitor watching a real run has neither. A detector gets only
`{step, prompt, response, score}` per rollout (`log_analysis.visible_records` strips every
other key on input, so `main_score` and `aux` cannot leak in) and must say when the policy
started exploiting the reward, and how (an `alert.Alert`). Its answer is scored with
`evaluate_detector`, which applies the reference file's `agent_error_metrics` to the
predicted onset.

The statistical idea: a shortcut is a response feature whose frequency drifts upward from
the early policy's (the baseline) *and* that the reward pays for (responses with it score
higher than those without, within a step). Genuine improvement also drifts and pays, so a
detector cannot tell the two apart from frequency alone; CHERRL's shortcuts are lexical,
tonal or structural, so the features are word n-grams (anywhere, and in the final sentence,
where closing phrases live), length, and three-item lists (`response_features`).

* `statistical_detector.StatisticalDetector` runs that test online, step by step, and
  alerts on the first persistent drift.
* `agent_detector.LLMAgentDetector` hands the same statistics (`log_analysis.LogAnalysis`)
  to a chat model as tools and lets it decide.

`load_detector` turns a detector spec ("statistical", or a chat-model spec for the agent)
into a detector.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from posttrain.models.chat.spec import CHAT_KINDS, SPEC_FORMS, load_chat
from posttrain.monitor.agent_detector import LLMAgentDetector
from posttrain.monitor.alert import Alert, Detector
from posttrain.monitor.hacking import DetectorErrors, OnsetResult, detector_errors
from posttrain.monitor.statistical_detector import StatisticalDetector
from posttrain.specs import SpecKind, parse_spec

STATISTICAL = "statistical"
"""The detector spec of `StatisticalDetector` with its default thresholds."""


def load_detector(spec: str) -> Detector:
    """The detector a spec names: "statistical", or any chat-model spec (`load_chat`: a model
    directory, openai:MODEL@URL, scripted:NAME) for an `LLMAgentDetector` driven by that
    model. ValueError naming the spec for one that is neither."""
    parsed = parse_spec(
        spec,
        (SpecKind.NAME, *CHAT_KINDS),
        what="detector",
        names=(STATISTICAL,),
        expected=f"'{STATISTICAL}' or {SPEC_FORMS}",
    )
    if parsed.kind is SpecKind.NAME:
        return StatisticalDetector()
    return LLMAgentDetector(load_chat(parsed))


def detect(
    records: Iterable[Mapping[str, Any]] | str | Path, detector: Detector | None = None
) -> Alert | None:
    """Run `detector` (a StatisticalDetector by default) on rollouts or a rollout log path."""
    return (detector or StatisticalDetector()).detect(records)


def evaluate_detector(
    alert: Alert | None, onset_result: OnsetResult, *, use: str = "onset_step"
) -> DetectorErrors:
    """Score an alert against the reference onset with the reference's error metrics; the
    prediction is the alert's `onset_step` (or `alert_step` with use="alert_step")."""
    if use not in ("onset_step", "alert_step"):
        raise ValueError(f"use must be 'onset_step' or 'alert_step', got {use!r}")
    return detector_errors(onset_result, None if alert is None else getattr(alert, use))
