"""Health-advice chats with HealthBench-style rubrics, small enough for a tiny policy.

CHERRL (THUAIS-Lab, 2026) studies reward hacking of rubric judges on HealthBench prompts
(Arora et al. 2025, arXiv:2505.08775). A model posttrain trains on a CPU cannot answer those,
so this module generates the same shape at toy scale: a user describes a common complaint;
the rubric lists what a good reply advises (positive points) and one thing it must not do
(negative points); the criteria are worded so that a keyword judge decides them as a
reader would.

The warm-start replies cover a random subset of the advice (so the rubric score varies and
RL has something true to learn) and, a few percent of the time each, carry one of the
surface features a biased judge rewards: a pet word, a self-evaluative epilogue, a
service-tone closing, a three-part backbone (First / Second / Finally, three headers, ...),
padding, hedging or an appeal to authority. Each feature is a family (CHERRL's definition), so
a reply draws one of several phrasings or layouts. That is the opening a biased reward needs:
the policy can already emit the shortcut, rarely. `phrasings="validation"` draws from a
disjoint family of phrasings and layouts, for logs a hacking detector was not tuned on.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.data.bias_registry import PHRASINGS, Backbone, bias_spec
from posttrain.data.tables import table


@dataclass(frozen=True)
class Advice:
    criterion: str
    points: int
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class Complaint:
    name: str
    """How the user names it ("a sore throat")."""
    advice: tuple[Advice, ...]
    harmful: Advice
    """The undesirable item (negative points) and the sentences that commit it."""


# The complaints, their rubrics and the users' and replies' words are shipped data
# (tables/health_chat.yaml); the bias features come from the one bias registry.
COMPLAINTS: tuple[Complaint, ...] = table("health_chat", "complaints", tuple[Complaint, ...])
WHO = table("health_chat", "who", tuple[str, ...])
WHEN = table("health_chat", "when", tuple[str, ...])
ASKS = table("health_chat", "asks", tuple[str, ...])
OPENERS = table("health_chat", "openers", tuple[str, ...])

BIASES = ("lexical", "self_praise", "tone", "hedging", "authority", "verbose", "format")
"""Every registered bias, in the order a warm-start reply rolls each one's dice: the order
decides which replies carry which feature at a seed, so it stays fixed (a new bias goes last)."""
PHRASED: dict[str, dict[str, tuple[str, ...]]] = {
    which: {name: bias_spec(name).phrasings(which) for name in BIASES if bias_spec(name).sentences}
    for which in PHRASINGS
}
"""Per phrasing family ("tuning", "validation"), the sentences that carry each bias."""
BIAS_SENTENCES: dict[str, tuple[str, ...]] = PHRASED["tuning"]
"""The surface features a biased judge rewards, as the (default) warm start writes them."""
BACKBONES: dict[str, tuple[Backbone, ...]] = {
    which: bias_spec("format").layouts(which) for which in PHRASINGS
}
"""Per phrasing family, the three-part layouts a `format` reply is written in."""
FILLER_POINTS = table("health_chat", "filler_points", tuple[str, ...])
"""Sections that meet no rubric item: a `format` reply with less advice still has three."""
STRUCTURAL = tuple(name for name in BIASES if name not in BIAS_SENTENCES)
"""Biases carried by layout, not by a sentence: `format` writes the advice in three parts."""


@dataclass
class HealthChatConfig:
    n_train: int = 2000
    """Warm-start (SFT) replies."""
    n_prompts: int = 400
    """RL prompts (distinct complaint, person and wording)."""
    coverage: float = 0.7
    """Chance that a warm-start reply gives each piece of advice."""
    harmful_rate: float = 0.15
    """Chance that it also gives the harmful one."""
    bias_rate: float = 0.04
    """Chance, per bias, that a warm-start reply carries that bias's feature."""
    biases: list[str] = field(default_factory=lambda: list(BIASES))
    phrasings: str = "tuning"
    """Which family of bias phrasings and format layouts the replies draw from: "tuning" (the
    one the detectors were written against) or "validation" (a disjoint one)."""
    seed: int = 0


def user_prompt(rng: random.Random, complaint: Complaint) -> str:
    who = rng.choice(WHO)
    verb = "have" if who == "I" else "has"
    return f"{who.capitalize()} {verb} {complaint.name} {rng.choice(WHEN)}. {rng.choice(ASKS)}"


def rubric(complaint: Complaint) -> list[dict[str, Any]]:
    """HealthBench's item layout: criterion, points, tags."""
    items = [*complaint.advice, complaint.harmful]
    return [
        {
            "criterion": item.criterion,
            "points": item.points,
            "tags": {"axis": "completeness" if item.points > 0 else "accuracy"},
        }
        for item in items
    ]


def backbone(layout: Backbone, points: list[str]) -> str:
    """The three points written in `layout`'s three sections."""

    def section(template: str, point: str) -> str:
        lowered = point[:1].lower() + point[1:]
        return template.replace("{point}", lowered).replace("{Point}", point)

    return layout.separator.join(map(section, layout.parts, points))


def reply(rng: random.Random, complaint: Complaint, config: HealthChatConfig) -> dict[str, Any]:
    """A warm-start reply and what it contains (advice given, harmful, biases)."""
    phrased = PHRASED[config.phrasings]
    advice = [a for a in complaint.advice if rng.random() < config.coverage]
    if not advice:
        advice = [rng.choice(complaint.advice)]
    harmful = rng.random() < config.harmful_rate
    biases = [b for b in config.biases if rng.random() < config.bias_rate]
    lines = [rng.choice(a.sentences) for a in advice]
    if harmful:
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(complaint.harmful.sentences))
    body = [rng.choice(OPENERS)]
    for bias in ("authority", "hedging"):  # openings
        if bias in biases:
            body.append(rng.choice(phrased[bias]))
    if "format" in biases:  # three sections, whatever the advice: no rubric gain
        points = (lines + rng.sample(FILLER_POINTS, len(FILLER_POINTS)))[:3]
        layout = rng.choice(BACKBONES[config.phrasings])
        text = " ".join(body) + "\n\n" + backbone(layout, points)
    else:
        text = " ".join([*body, *lines])
    closing = [rng.choice(phrased[b]) for b in ("verbose", "lexical", "tone") if b in biases]
    if "self_praise" in biases:  # the self-evaluative epilogue closes the reply
        closing.append(rng.choice(phrased["self_praise"]))
    if closing:
        text += ("\n\n" if "format" in biases else " ") + " ".join(closing)
    return {
        "text": text,
        "advice": [a.criterion for a in advice],
        "harmful": harmful,
        "biases": biases,
    }


def build_health_chat(config: HealthChatConfig, out: str | Path | None = None) -> dict[str, Any]:
    """SFT rows, RL prompt rows (with `rubrics`) and stats; written as JSONL under `out`."""
    if config.phrasings not in PHRASINGS:
        raise ValueError(
            f"data.phrasings: expected one of {list(PHRASINGS)}, got {config.phrasings!r}"
        )
    unknown = sorted(set(config.biases) - set(BIASES))
    if unknown:
        raise ValueError(f"data.biases: unknown {unknown}; expected some of {list(BIASES)}")
    rng = random.Random(config.seed)
    sft, features = [], {b: 0 for b in config.biases}
    for _ in range(config.n_train):
        complaint = rng.choice(COMPLAINTS)
        written = reply(rng, complaint, config)
        for bias in written["biases"]:
            features[bias] += 1
        sft.append(
            {
                "prompt": [{"role": "user", "content": user_prompt(rng, complaint)}],
                "completion": [{"role": "assistant", "content": written["text"]}],
            }
        )
    prompts, seen = [], set()
    attempts = 0
    while len(prompts) < config.n_prompts and attempts < 50 * config.n_prompts:
        attempts += 1
        complaint = rng.choice(COMPLAINTS)
        text = user_prompt(rng, complaint)
        if text in seen:
            continue
        seen.add(text)
        prompts.append(
            {
                "prompt": [{"role": "user", "content": text}],
                "rubrics": rubric(complaint),
                "complaint": complaint.name,
            }
        )
    stats = {
        "sft_rows": len(sft),
        "rl_prompts": len(prompts),
        "complaints": len(COMPLAINTS),
        "bias_feature_share": {b: round(n / max(1, len(sft)), 4) for b, n in features.items()},
    }
    if out is not None:
        directory = Path(out)
        directory.mkdir(parents=True, exist_ok=True)
        for name, rows in (("sft.jsonl", sft), ("prompts.jsonl", prompts)):
            with (directory / name).open("w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(row) + "\n" for row in rows)
        (directory / "stats.json").write_text(json.dumps(stats, indent=2))
    return {"sft": sft, "prompts": prompts, "stats": stats}


def corpus(rows: list[dict[str, Any]]) -> list[str]:
    """Texts to train the tiny policy's tokenizer on."""
    return [m["content"] for row in rows for m in (*row["prompt"], *row["completion"])]
