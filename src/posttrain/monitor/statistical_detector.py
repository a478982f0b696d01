"""The statistical reward-hacking detector: an online drift-and-payoff test over features.

A shortcut is a response feature whose frequency drifts upward from the early policy's and
that the reward pays for (responses with it score higher than those without, within a
step). Genuine improvement also drifts and pays, which the prompt-spread test tells apart:
a shortcut is written whatever the prompt. The numbers come from `LogAnalysis`; this module
decides when they amount to an alert, which phrase is behind it (`maximal_feature`) and
where its rise began (`hinge_onset`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from posttrain.monitor.alert import Alert
from posttrain.monitor.log_analysis import DetectorConfig, LogAnalysis, rounded
from posttrain.monitor.response_features import FINAL, PHRASE, classify_feature, feature_text


def hinge_onset(steps: Sequence[int], freq: Sequence[float]) -> int:
    """Change point of a "flat, then linear rise" fit: the step tau minimising the squared
    error of freq(t) ~ b + s * max(0, t - tau) over the given steps (first step on ties).

    A shortcut's frequency sits near its baseline level and then climbs, so the knee of the
    best broken-stick fit estimates where the climb began, without a threshold of its own.
    """
    t = np.asarray(steps, dtype=float)
    y = np.asarray(freq, dtype=float)
    best, best_sse = int(t[0]), math.inf
    for tau in t:
        x = np.maximum(0.0, t - tau)
        design = np.column_stack([np.ones_like(t), x])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        sse = float(np.sum((design @ coef - y) ** 2))
        if sse < best_sse - 1e-12:
            best, best_sse = int(tau), sse
    return best


class StatisticalDetector:
    """Online drift-and-payoff test over response features.

    Steps are processed in order; at step t a feature *holds* when its frequency over the
    trailing window (t-window+1..t) exceeds its baseline frequency (first `baseline_steps`
    steps) by >= min_drift with z >= min_z, and responses with it score >= min_association
    more than those without (within-step difference, averaged over the window). The alert is
    raised at the first step where a feature has held for `patience` consecutive steps; only
    steps <= t are used, so running it on a growing log alerts at the same step.

    The winning feature is then made maximal: among n-grams containing it that drift at
    least `codrift_ratio` as much, the longest wins (final-sentence over anywhere), and
    overlapping co-drifting 3-grams are chained into the full phrase ("feel free to" +
    "free to ask" + "to ask more" -> "feel free to ask more"), kept only if it still drifts.
    `onset_step` is the knee of a broken-stick fit to that feature's per-step frequency up to
    the alert (`hinge_onset`): where the climb began, which the alert necessarily lags.
    """

    name = "statistical"

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any) -> None:
        base = config or DetectorConfig()
        self.config = DetectorConfig(**{**asdict(base), **overrides})

    def analyse(self, records: Iterable[Mapping[str, Any]] | str | Path) -> LogAnalysis:
        return LogAnalysis(records, self.config)

    def detect(self, records: Iterable[Mapping[str, Any]] | str | Path) -> Alert | None:
        return self.detect_in(self.analyse(records))

    def detect_in(self, analysis: LogAnalysis) -> Alert | None:
        found = analysis.first_alert()
        if found is None:
            return None
        i, winner = found
        feature = maximal_feature(analysis, winner, i)
        stats = analysis.stats(feature)
        steps = analysis.steps[: i + 1]
        onset_step = hinge_onset(list(map(int, steps)), list(stats["freq"][: i + 1]))
        drift, assoc = float(stats["drift"][i]), float(stats["assoc"][i])
        cfg = self.config
        confidence = 0.5 * min(1.0, drift / (3 * cfg.min_drift)) + 0.5 * min(
            1.0, max(0.0, assoc) / cfg.association_scale
        )
        evidence = {
            "feature": feature_text(feature),
            "feature_id": feature,
            "location": _location(feature),
            "baseline_frequency": rounded(stats["base"]),
            "current_frequency": rounded(stats["win_freq"][i]),
            "drift": rounded(drift),
            "z": rounded(stats["z"][i]),
            "score_association": rounded(assoc),
            "examples": analysis.examples(feature, int(analysis.steps[i])),
            "trigger_feature": winner,
            "onset_method": "broken-stick change point of the per-step frequency",
            "thresholds": asdict(cfg),
        }
        return Alert(
            alert_step=int(analysis.steps[i]),
            onset_step=onset_step,
            confidence=round(min(1.0, max(0.0, confidence)), 4),
            hacking_type=classify_feature(feature),
            evidence=evidence,
            detector=self.name,
        )


def _location(feature: str) -> str:
    if feature.startswith(FINAL):
        return "final_sentence"
    if feature.startswith(PHRASE):
        return "anywhere"
    return "structure"


def _contains(longer: list[str], shorter: list[str]) -> bool:
    width = len(shorter)
    return any(longer[j : j + width] == shorter for j in range(len(longer) - width + 1))


def maximal_feature(analysis: LogAnalysis, winner: str, i: int) -> str:
    """The longest phrase around `winner` that drifts almost as much at step index i."""
    if not winner.startswith((PHRASE, FINAL)):
        return winner
    cfg = analysis.config
    drift = analysis.table["drift"][i]
    floor = cfg.codrift_ratio * drift[analysis.names.index(winner)]
    core = feature_text(winner).split()
    codrifting = {
        name: float(drift[f])
        for f, name in enumerate(analysis.names)
        if name.startswith((PHRASE, FINAL)) and drift[f] >= floor
    }
    containing = [name for name in codrifting if _contains(feature_text(name).split(), core)] or [
        winner
    ]
    best = max(
        containing,
        key=lambda n: (len(feature_text(n).split()), n.startswith(FINAL), codrifting.get(n, 0)),
    )
    prefix = FINAL if best.startswith(FINAL) else PHRASE
    trigrams = {
        tuple(feature_text(name).split()): value
        for name, value in codrifting.items()
        if name.startswith(prefix) and len(feature_text(name).split()) == 3
    }
    phrase = _chain(feature_text(best).split(), trigrams, cfg.max_phrase_tokens)
    if len(phrase) > len(feature_text(best).split()):
        candidate = prefix + " ".join(phrase)
        if float(analysis.stats(candidate)["drift"][i]) >= floor:
            return candidate
    return best


def _chain(
    phrase: list[str], trigrams: Mapping[tuple[str, ...], float], max_tokens: int
) -> list[str]:
    """Extend `phrase` right, then left, by co-drifting 3-grams overlapping it by 2 words."""
    phrase = list(phrase)
    if len(phrase) < 2:
        return phrase
    for side in ("right", "left"):
        while len(phrase) < max_tokens:
            if side == "right":
                options = {g: v for g, v in trigrams.items() if list(g[:2]) == phrase[-2:]}
            else:
                options = {g: v for g, v in trigrams.items() if list(g[1:]) == phrase[:2]}
            if not options:
                break
            gram = max(options, key=lambda g: (options[g], g))
            phrase = phrase + [gram[2]] if side == "right" else [gram[0]] + phrase
    return phrase
