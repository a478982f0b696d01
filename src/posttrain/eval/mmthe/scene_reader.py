"""`scripted:scene-reader`: reasons from the scene graph in the image, with labelled errors.

The reader sees what a model sees: the last user message's image (a data URL) and its text.
It reads the scene graph from the PNG's `posttrain-scene` chunk, re-derives the question's
gold chain from the question's text with the generators' own templates (so one image serves
all of its questions; nothing about the item travels besides the image), and writes it in the
chain format with errors injected at known steps. Each perturbation changes one claim; the
steps after it reason correctly from the changed claim, as a real reasoner carrying a
mistake forward would, so exactly the injected steps are wrong. Everything it writes says
`scripted:scene-reader` (the ScriptedChat's name).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from posttrain.data.scenes.facts import PROPERTY_PHRASES, fact_table, lookup
from posttrain.data.scenes.generate import CHART_KEYS, TABLE_NAMES
from posttrain.data.scenes.graph import SCENE_CHUNK, Scene, scene_from_dict, scene_from_json
from posttrain.data.scenes.questions import derive_claim, gold_chain
from posttrain.data.scenes.render import PALETTE, SHAPES
from posttrain.data.scenes.steps import INVERSE, Claim, format_chain, render_claim
from posttrain.eval.mmthe.taxonomy import CATEGORIES, StepLabel
from posttrain.models.chat.base import Conversation
from posttrain.models.chat.images import content_image_urls, content_text, png_text
from posttrain.models.chat.scripted import ScriptedChat, register_script

REFLECTION = "Wait, let me re-check:"
NO_SCENE = "Step 1: I cannot read a scene in this image.\nAnswer: unknown"
UNKNOWN_QUESTION = "Step 1: I cannot answer this question from the image.\nAnswer: unknown"
_INVALID_FORMAT = {
    "left": "on the left side",
    "right": "on the right side",
    "above": "higher up",
    "below": "lower down",
}
"""Spatial answers in a form the question does not allow ("Answer with left or right")."""


@dataclass(frozen=True)
class ReaderOptions:
    """`error_rates`: category -> chance that each step needing it is made wrong;
    `reflection_rate`: chance of one "Wait, let me re-check: ..." step after a perception
    step, which restates the truth or, with `reflection_error_rate`, a new error;
    `invalid_format_rate`: chance a spatial answer is written in a non-allowed form."""

    error_rates: dict[str, float] = field(default_factory=dict)
    reflection_rate: float = 0.0
    reflection_error_rate: float = 0.5
    invalid_format_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.error_rates) - set(CATEGORIES)
        if unknown:
            raise ValueError(
                f"error_rates: unknown categories {sorted(unknown)}; use {tuple(CATEGORIES)}"
            )
        rates = {f"error_rates[{k}]": v for k, v in self.error_rates.items()}
        rates |= {k: getattr(self, k) for k in ("reflection_rate", "reflection_error_rate",
                                                 "invalid_format_rate")}  # fmt: skip
        for name, rate in rates.items():
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {rate}")


def _scene(source: Any) -> Scene:
    if isinstance(source, Scene):
        return source
    if isinstance(source, dict) and isinstance(source.get("scene"), dict):
        return scene_from_dict(source["scene"])
    if isinstance(source, dict) and "kind" in source:
        return scene_from_dict(source)
    raise ValueError("reader_chain needs a Scene, a scene graph dict or an item with 'scene'")


def reader_chain(
    item_or_scene: Any, question: str, options: ReaderOptions | None = None
) -> tuple[str, list[StepLabel]]:
    """(the chain text, the labels of the injected errors: step index, category,
    sub-category); deterministic per (seed, question, scene)."""
    options = options or ReaderOptions()
    scene = _scene(item_or_scene)
    gold = gold_chain(scene, question)
    if gold is None:
        return UNKNOWN_QUESTION, []
    key = f"{options.seed}\0{' '.join(question.split())}\0{scene.to_json()}"
    rng = random.Random(hashlib.sha256(key.encode()).hexdigest())
    wanted = {c["property"] for s in gold.steps if (c := s["claim"])["type"] == "fact"}
    perturb = _Perturber(scene, rng, wanted, gold.choices)
    current: dict[int, Claim] = {}
    texts: list[str] = []
    injected: list[StepLabel] = []
    reflected = False

    def emit(claim: Claim, needs: str, sub: str | None, prefix: str = "") -> None:
        if sub:
            reason = "injected" + (" after self-reflection" if prefix else "")
            injected.append(StepLabel(len(texts), "hallucinated", needs, sub, reason))
        texts.append(prefix + render_claim(claim))
        if "value" in claim and claim["type"] in ("count", "value", "arithmetic"):
            perturb.numbers.add(claim["value"])

    for i, step in enumerate(gold.steps):
        claim, needs = step["claim"], step["needs"]
        if "uses" in step:  # reason correctly from the claims now in force
            claim = derive_claim(claim, [current[j] for j in step["uses"]], gold.choices)
        sub = None
        if rng.random() < options.error_rates.get(needs, 0.0):
            claim, sub = perturb(claim)
        emit(claim, needs, sub)
        current[i] = claim
        if needs == "perception" and not reflected and rng.random() < options.reflection_rate:
            reflected, again, sub = True, step["claim"], None  # a perception step is the truth
            if rng.random() < options.reflection_error_rate:
                again, sub = perturb(again)
            emit(again, needs, sub, prefix=REFLECTION + " ")
            # A re-check that puts an object in another cell says nothing about the cell
            # asked for: the conclusion keeps resting on the earlier step about that cell.
            asked = step["claim"]
            if again["type"] != "position" or (
                (again["row"], again["col"]) == (asked["row"], asked["col"])
            ):
                current[i] = again
    answer = current[len(gold.steps) - 1]["answer"]
    if gold.task == "spatial" and rng.random() < options.invalid_format_rate:
        answer = _INVALID_FORMAT.get(answer, f"object {answer}")
    return format_chain(texts, answer), injected


class _Perturber:
    """Makes one claim wrong in one sub-category (the result is never the claim's truth)."""

    def __init__(self, scene: Scene, rng: random.Random, wanted: set[str], choices) -> None:
        self.scene, self.rng, self.wanted, self.choices = scene, rng, wanted, choices
        self.numbers = set(scene.numbers())

    def _unused_label(self) -> str:
        used = {o.label for o in self.scene.objects}
        return self.rng.choice([chr(c) for c in range(65, 91) if chr(c) not in used])

    def _near(self, value: int, steps=(-2, -1, 1, 2)) -> int:
        return self.rng.choice([value + d for d in steps if value + d >= 0])

    def __call__(self, claim: Claim) -> tuple[Claim, str]:
        rng, kind = self.rng, claim["type"]
        if kind == "count":
            return {**claim, "value": self._near(claim["value"], (-1, 1))}, "count"
        if kind == "value":
            if rng.random() < 0.75:
                return {**claim, "value": self._near(claim["value"])}, "text_value"
            if claim["source"] == "bar":
                keys = [k for k in CHART_KEYS if self.scene.bar(k) is None] or ["owls"]
                return {**claim, "key": rng.choice(keys)}, "object"
            names = [n for n in TABLE_NAMES if all(r[0] != n for r in self.scene.table)]
            column = claim["key"].split("/", 1)[1]
            return {**claim, "key": f"{rng.choice(names or ['Zed'])}/{column}"}, "object"
        if kind in ("attribute", "name", "position", "relation") and rng.random() < 0.25:
            field_ = "subject" if kind == "relation" else "label"
            return {**claim, field_: self._unused_label()}, "object"
        if kind == "attribute":
            if rng.random() < 0.5:
                colours = [c for c in PALETTE if c != claim["colour"]]
                return {**claim, "colour": rng.choice(colours)}, "attribute"
            shapes = [s for s in SHAPES if s != claim["shape"]]
            return {**claim, "shape": rng.choice(shapes)}, "attribute"
        if kind == "name":
            things = [t for t in fact_table() if t != claim["name"]
                      and all(lookup(t, p) is not None for p in self.wanted)]  # fmt: skip
            return {**claim, "name": rng.choice(things)}, "text_value"
        if kind == "position":
            axis = rng.choice(("row", "col"))
            cells = [n for n in range(1, self.scene.rows + 1) if n != claim[axis]]
            return {**claim, axis: rng.choice(cells)}, "spatial"
        if kind == "relation":
            return {**claim, "relation": INVERSE[claim["relation"]]}, "spatial"
        if kind == "fact":
            known = fact_table().get(claim["thing"], {})
            missing = [p for p in _PROPERTIES if p not in known]
            if missing and rng.random() < 0.5:
                return {**claim, "property": rng.choice(missing)}, "fabricated"
            return {**claim, "value": not claim["value"]}, "fact"
        if kind in ("arithmetic", "comparison"):
            if rng.random() < 0.5:  # an operand the chain never stated, reasoned on correctly
                left = max(self.numbers | {claim["left"], claim["right"]}) + rng.randint(1, 3)
                used = [{"value": left}, {"value": claim["right"]}]
                return derive_claim(claim, used, self.choices), "inconsistency"
            if kind == "arithmetic":
                return {**claim, "value": self._near(claim["value"])}, "arithmetic"
            wrong = [r for r in (">", "<") if r != claim["relation"]]
            return {**claim, "relation": rng.choice(wrong)}, "comparison"
        # a conclusion that does not follow
        answer = claim["answer"]
        others = [c for c in self.choices or [] if c.lower() != answer.lower()]
        if others:
            return {**claim, "answer": rng.choice(others)}, "conclusion"
        return {**claim, "answer": str(self._near(int(answer), (-1, 1)))}, "conclusion"


_PROPERTIES = tuple(PROPERTY_PHRASES)


def scene_reader(**options: Any) -> ScriptedChat:
    """The `scripted:scene-reader` chat model; options are ReaderOptions' fields."""
    reader_options = ReaderOptions(**options)

    def respond(conversation: Conversation) -> str:
        users = [m for m in conversation if m.get("role") == "user"]
        content = users[-1].get("content", "") if users else ""
        urls = content_image_urls(content)
        chunk = png_text(urls[-1]).get(SCENE_CHUNK) if urls else None
        if not chunk:
            return NO_SCENE
        return reader_chain(scene_from_json(chunk), content_text(content), reader_options)[0]

    return ScriptedChat("scene-reader", default=respond)


register_script("scene-reader", scene_reader, replace=True)
