"""The rule verifier: each step of a chain checked against the item's scene graph.

Truth comes only from the scene graph and the fact table, never from the gold steps'
sentences (the gold claims are read only to know *what was asked*: which claim settles the
answer). Perception claims are checked against the scene, knowledge claims against the fact
table, reasoning claims by arithmetic and against the chain's own earlier statements; a
sentence that is none of our templates is `unverifiable`. It applies to generated items
only: an item without `scene` is a ValueError.
"""

from __future__ import annotations

import operator
import re
from typing import Any

from posttrain.data.scenes.facts import fact_table
from posttrain.data.scenes.graph import Scene, scene_from_dict
from posttrain.data.scenes.questions import answer_of
from posttrain.data.scenes.steps import INVERSE, Claim, parse_step
from posttrain.eval.mmthe.taxonomy import StepLabel

_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}
_HOLDS = {">": operator.gt, "<": operator.lt, "=": operator.eq}
_NUMERIC = ("count", "value", "arithmetic")


def _scene(item: dict[str, Any]) -> Scene:
    if not isinstance(item.get("scene"), dict):
        raise ValueError(
            f"item {item.get('id', '?')}: no scene graph; the rule verifier applies only to"
            " generated scene items (judge other items with an LLM judge)"
        )
    return scene_from_dict(item["scene"])


def _wrong(index: int, category: str, subcategory: str, reason: str) -> StepLabel:
    return StepLabel(index, "hallucinated", category, subcategory, reason)


def _perception(scene: Scene, claim: Claim) -> tuple[str, str] | None:
    """(sub-category, reason) of a false perception claim, None when it is true."""
    kind = claim["type"]
    if kind == "count":
        truth = scene.count(claim["colour"], claim["shape"])
        if truth != claim["value"]:
            return "count", f"the image has {truth} {claim['colour']} {claim['shape']}(s)"
        return None
    if kind == "value":
        if claim["source"] == "bar":
            truth = scene.bar(claim["key"])
        else:
            row, _, column = claim["key"].partition("/")
            truth = scene.cell(row, column)
        if truth is None:
            return "object", f"the image has no {claim['source']} {claim['key']!r}"
        return None if truth == claim["value"] else ("text_value", f"it shows {truth}")
    labels = [claim[k] for k in ("label", "subject", "object") if k in claim]
    objects = [scene.object(label) for label in labels]
    if any(o is None for o in objects):
        return "object", f"the image has no object labelled {labels[objects.index(None)]}"
    first = objects[0]
    if kind == "attribute":
        if (first.colour, first.shape) != (claim["colour"], claim["shape"]):
            return "attribute", f"object {first.label} is a {first.colour} {first.shape}"
        return None
    if kind == "name":
        if first.name != claim["name"]:
            return "text_value", f"object {first.label} is captioned {first.name or 'nothing'}"
        return None
    if kind == "position":
        if (first.row, first.col) != (claim["row"], claim["col"]):
            return "spatial", f"object {first.label} is in row {first.row}, column {first.col}"
        return None
    second = objects[1]  # a relation
    holds = {
        "left_of": first.col < second.col,
        "right_of": first.col > second.col,
        "above": first.row < second.row,
        "below": first.row > second.row,
    }[claim["relation"]]
    return None if holds else ("spatial", f"object {first.label} is not {claim['relation']}")


def _knowledge(claim: Claim) -> tuple[str, str] | None:
    known = fact_table().get(claim["thing"], {})
    if claim["property"] not in known:
        return "fabricated", f"the fact table holds no {claim['property']!r} for {claim['thing']!r}"
    if known[claim["property"]] != claim["value"]:
        return "fact", f"the fact table says {claim['property']}={known[claim['property']]}"
    return None


def _implied_answer(item: dict[str, Any], claims: list[Claim]) -> str | None:
    """The answer the chain's own claims settle, found the way the gold chain settles it
    (the last claim of the kind the gold conclusion rests on); None if the chain has none."""
    gold = [s["claim"] for s in item.get("steps") or [] if s.get("claim")]
    basis = next((c for c in reversed(gold) if c["type"] != "conclusion"), None)
    if basis is None:
        return None
    choices = item.get("choices")
    if basis["type"] == "relation":  # the last relation stated, turned round if reversed
        said = [c for c in claims if c["type"] == "relation"]
        if not said:
            return None
        last = said[-1]
        if (last["object"], last["subject"]) == (basis["subject"], basis["object"]):
            last = {**last, "relation": INVERSE[last["relation"]]}
        return answer_of(last, choices)
    if basis["type"] == "position":
        match = [c for c in claims if c["type"] == "position"
                 and (c["row"], c["col"]) == (basis["row"], basis["col"])]  # fmt: skip
        return answer_of(match[-1], choices) if match else None
    if basis["type"] == "fact":
        facts = [c for c in claims if c["type"] == "fact"]
        asked = [c for c in facts if c["property"] == basis["property"]]
        return answer_of((asked or facts)[-1], choices) if facts else None
    same = [c for c in claims if c["type"] == basis["type"]]
    return answer_of(same[-1], choices) if same else None


def normalise_answer(text: Any, choices: list[str] | None = None) -> str:
    """Lower case, no article, trailing punctuation or surrounding space; integral numbers
    as integers; a choice letter ("B", "(b)") as its choice's text when it is not a choice."""
    text = re.sub(r"\s+", " ", str(text)).strip().strip(".!;:").strip()
    text = re.sub(r"^(the|a|an) ", "", text.lower())
    try:
        number = float(text.replace(",", ""))
        if number.is_integer():
            return str(int(number))
    except ValueError:
        pass
    options = [normalise_answer(c) for c in choices or []]
    letter = re.fullmatch(r"\(?([a-z])\)?", text)
    if letter and text not in options and ord(letter[1]) - 97 < len(options):
        return options[ord(letter[1]) - 97]
    return text


def answer_allowed(item: dict[str, Any], answer: str | None) -> bool:
    """Whether `answer` is in a form the question allows: found at all, and one of the
    item's choices where it has them ("Answer with left or right" takes nothing else)."""
    if answer is None:
        return False
    choices = item.get("choices")
    if not choices:
        return True
    return normalise_answer(answer, choices) in {normalise_answer(c) for c in choices}


def answer_correct(item: dict[str, Any], answer: str | None) -> bool:
    """Whether `answer` matches the item's gold answer after normalisation (choice letter or
    choice text both count)."""
    if answer is None:
        return False
    choices = item.get("choices")
    return normalise_answer(answer, choices) == normalise_answer(item["answer"], choices)


def verify_steps(item: dict[str, Any], steps: list[str]) -> list[StepLabel]:
    """One label per step: correct, hallucinated (category and sub-category), unverifiable."""
    scene = _scene(item)
    truths = scene.numbers()
    stated: set[int] = set()
    claims: list[Claim] = []
    labels = []
    for index, text in enumerate(steps):
        claim = parse_step(text)
        if claim is None:
            labels.append(StepLabel(index, "unverifiable", reason="not a sentence we can check"))
            continue
        labels.append(_check(index, claim, item, scene, stated | truths, claims))
        claims.append(claim)
        if claim["type"] in _NUMERIC:
            stated.add(claim["value"])
    return labels


def _check(index, claim, item, scene, known: set[int], earlier: list[Claim]) -> StepLabel:
    kind = claim["type"]
    if kind in ("count", "value", "attribute", "name", "position", "relation"):
        wrong = _perception(scene, claim)
        return _wrong(index, "perception", *wrong) if wrong else StepLabel(index, "correct")
    if kind == "fact":
        wrong = _knowledge(claim)
        return _wrong(index, "knowledge", *wrong) if wrong else StepLabel(index, "correct")
    if kind in ("arithmetic", "comparison"):
        unknown = [n for n in (claim["left"], claim["right"]) if n not in known]
        if unknown:
            reason = f"{unknown[0]} was not stated before and is no quantity in the image"
            return _wrong(index, "reasoning", "inconsistency", reason)
        if kind == "arithmetic":
            truth = _OPS.get(claim["op"], operator.add)(claim["left"], claim["right"])
            if truth != claim["value"]:
                return _wrong(index, "reasoning", "arithmetic", f"it equals {truth}")
        elif not _HOLDS[claim["relation"]](claim["left"], claim["right"]):
            return _wrong(index, "reasoning", "comparison", "the comparison is false")
        return StepLabel(index, "correct")
    # a conclusion: it must follow from the chain (or, if the chain settles nothing, be true)
    choices = item.get("choices")
    implied = _implied_answer(item, earlier)
    expected = item["answer"] if implied is None else implied
    if normalise_answer(claim["answer"], choices) != normalise_answer(expected, choices):
        return _wrong(index, "reasoning", "conclusion", f"the steps give {expected}")
    return StepLabel(index, "correct")
