"""Questions about a scene with their gold answer and gold steps, and the way back.

Each question type has a sentence template and the regex that reads it back; generation
proposes a question's text and then builds its gold chain *from that text* (`gold_chain`),
the same path a scripted reader takes when it only sees the image and the question.

A gold step is {"text", "needs", "claim"} and, for a step derived from earlier ones,
"uses": the indices of the steps whose claims it is computed from (`derive_claim`): so a
reader that perturbs one step can carry the change forward exactly as a reasoner would.
"""

from __future__ import annotations

import operator
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from posttrain.data.scenes.facts import QUESTION_PHRASES, lookup
from posttrain.data.scenes.graph import Scene, Shape
from posttrain.data.scenes.steps import Claim, render_claim

RELATION_WORDS = {"left_of": "left", "right_of": "right", "above": "above", "below": "below"}
_OPS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}


@dataclass(frozen=True)
class Gold:
    task: str
    steps: list[dict[str, Any]]
    answer: str
    choices: list[str] | None


def answer_of(claim: Claim, choices: list[str] | None) -> str:
    """The answer a claim settles: a number, the chosen option, a direction, a label, yes/no."""
    kind = claim["type"]
    if kind in ("count", "value", "arithmetic"):
        return str(claim["value"])
    if kind == "comparison":
        if claim["relation"] == "=" or not choices:
            return "same"
        return choices[0] if claim["relation"] == ">" else choices[1]
    if kind == "relation":
        return RELATION_WORDS[claim["relation"]]
    if kind == "position":
        return claim["label"]
    if kind == "fact":
        return "yes" if claim["value"] else "no"
    raise ValueError(f"a {kind} claim settles no answer")


def derive_claim(claim: Claim, used: list[Claim], choices: list[str] | None) -> Claim:
    """A derived claim recomputed from the claims it uses (correct reasoning on those claims)."""
    kind = claim["type"]
    if kind == "arithmetic":
        left, right = used[0]["value"], used[1]["value"]
        return {**claim, "left": left, "right": right, "value": _OPS[claim["op"]](left, right)}
    if kind == "comparison":
        left, right = used[0]["value"], used[1]["value"]
        relation = ">" if left > right else "<" if left < right else "="
        return {**claim, "left": left, "right": right, "relation": relation}
    if kind == "fact":
        value = lookup(used[0]["name"], claim["property"])
        return {**claim, "thing": used[0]["name"], "value": bool(value)}
    if kind == "conclusion":
        return {**claim, "answer": answer_of(used[0], choices)}
    raise ValueError(f"a {kind} claim is not derived")


def make_step(claim: Claim, needs: str, uses: list[int] | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"text": render_claim(claim), "needs": needs, "claim": claim}
    if uses is not None:
        step["uses"] = uses
    return step


def _finish(task: str, steps: list[dict[str, Any]], choices: list[str] | None) -> Gold:
    """Derive every step that uses others, in order, and read the answer off the conclusion."""
    for step in steps:
        if "uses" in step:
            used = [steps[j]["claim"] for j in step["uses"]]
            step["claim"] = derive_claim(step["claim"], used, choices)
            step["text"] = render_claim(step["claim"])
    return Gold(task, steps, steps[-1]["claim"]["answer"], choices)


def _conclusion(uses: int) -> dict[str, Any]:
    return make_step({"type": "conclusion", "answer": ""}, "reasoning", [uses])


def _count(scene: Scene, colour: str, shape: str) -> dict[str, Any]:
    value = scene.count(colour, shape)
    return make_step(
        {"type": "count", "colour": colour, "shape": shape, "value": value}, "perception"
    )


def _unique(scene: Scene, colour: str, shape: str) -> Shape | None:
    found = [o for o in scene.objects if o.colour == colour and o.shape == shape]
    return found[0] if len(found) == 1 else None


def _attribute(obj: Shape) -> dict[str, Any]:
    claim = {"type": "attribute", "label": obj.label, "colour": obj.colour, "shape": obj.shape}
    return make_step(claim, "perception")


# -- builders: (scene, match of the question) -> Gold, or None when the scene cannot answer --
def _build_count(scene: Scene, m: re.Match[str]) -> Gold | None:
    return _finish("counting", [_count(scene, m[1], m[2]), _conclusion(0)], None)


def _build_count_pair(scene: Scene, m: re.Match[str], op: str) -> Gold | None:
    steps = [_count(scene, m[1], m[2]), _count(scene, m[3], m[4])]
    steps.append(make_step({"type": "arithmetic", "left": 0, "op": op, "right": 0, "value": 0},
                           "reasoning", [0, 1]))  # fmt: skip
    return _finish("count_arithmetic", [*steps, _conclusion(2)], None)


def _comparison(task: str, first: dict, second: dict, choices: list[str]) -> Gold:
    claim = {"type": "comparison", "left": 0, "relation": "=", "right": 0}
    steps = [first, second, make_step(claim, "reasoning", [0, 1]), _conclusion(2)]
    return _finish(task, steps, choices)


def _build_count_compare(scene: Scene, m: re.Match[str]) -> Gold | None:
    choices = [f"{m[1]} {m[2]}s", f"{m[3]} {m[4]}s"]
    return _comparison("comparison", _count(scene, m[1], m[2]), _count(scene, m[3], m[4]), choices)


def _build_spatial(scene: Scene, m: re.Match[str], axis: str) -> Gold | None:
    a, b = _unique(scene, m[1], m[2]), _unique(scene, m[3], m[4])
    if a is None or b is None or a is b:
        return None
    if axis == "col":
        relation = "left_of" if a.col < b.col else "right_of" if a.col > b.col else None
        choices = ["left", "right"]
    else:
        relation = "above" if a.row < b.row else "below" if a.row > b.row else None
        choices = ["above", "below"]
    if relation is None:
        return None
    claim = {"type": "relation", "subject": a.label, "relation": relation, "object": b.label}
    steps = [_attribute(a), _attribute(b), make_step(claim, "perception"), _conclusion(2)]
    return _finish("spatial", steps, choices)


def _build_at(scene: Scene, m: re.Match[str]) -> Gold | None:
    row, col = int(m[1]), int(m[2])
    obj = next((o for o in scene.objects if (o.row, o.col) == (row, col)), None)
    if obj is None:
        return None
    claim = {"type": "position", "label": obj.label, "row": row, "col": col}
    choices = sorted(o.label for o in scene.objects)
    return _finish("spatial", [make_step(claim, "perception"), _conclusion(0)], choices)


def _build_knowledge(scene: Scene, m: re.Match[str]) -> Gold | None:
    obj, prop = scene.object(m[1]), _PHRASE_PROPERTY.get(m[2].lower())
    if obj is None or obj.name is None or prop is None or lookup(obj.name, prop) is None:
        return None
    name = make_step({"type": "name", "label": obj.label, "name": obj.name}, "perception")
    fact = {"type": "fact", "thing": "", "property": prop, "value": False}
    steps = [name, make_step(fact, "knowledge", [0]), _conclusion(1)]
    return _finish("knowledge", steps, ["yes", "no"])


def _bar(scene: Scene, key: str) -> dict[str, Any] | None:
    value = scene.bar(key)
    claim = {"type": "value", "source": "bar", "key": key, "value": value}
    return None if value is None else make_step(claim, "perception")


def _cell(scene: Scene, row: str, column: str) -> dict[str, Any] | None:
    value = scene.cell(row, column)
    claim = {"type": "value", "source": "cell", "key": f"{row}/{column}", "value": value}
    return None if value is None else make_step(claim, "perception")


def _build_bar_read(scene: Scene, m: re.Match[str]) -> Gold | None:
    bar = _bar(scene, m[1])
    return None if bar is None else _finish("chart_value", [bar, _conclusion(0)], None)


def _build_bar_sum(scene: Scene, m: re.Match[str]) -> Gold | None:
    first, second = _bar(scene, m[1]), _bar(scene, m[2])
    if first is None or second is None:
        return None
    add = {"type": "arithmetic", "left": 0, "op": "+", "right": 0, "value": 0}
    steps = [first, second, make_step(add, "reasoning", [0, 1]), _conclusion(2)]
    return _finish("chart_value", steps, None)


def _build_bar_compare(scene: Scene, m: re.Match[str]) -> Gold | None:
    first, second = _bar(scene, m[1]), _bar(scene, m[2])
    if first is None or second is None:
        return None
    return _comparison("comparison", first, second, [m[1], m[2]])


def _build_cell_read(scene: Scene, m: re.Match[str]) -> Gold | None:
    cell = _cell(scene, m[2], m[1])
    return None if cell is None else _finish("table_value", [cell, _conclusion(0)], None)


def _build_cell_compare(scene: Scene, m: re.Match[str]) -> Gold | None:
    first, second = _cell(scene, m[2], m[1]), _cell(scene, m[3], m[1])
    if first is None or second is None:
        return None
    return _comparison("table_value", first, second, [m[2], m[3]])


_PHRASE_PROPERTY = {phrase: prop for prop, phrase in QUESTION_PHRASES.items()}


# -- proposers: (scene, rng) -> a question's text, or None when the scene has no such question --
def _kinds(scene: Scene) -> list[tuple[str, str]]:
    return sorted({(o.colour, o.shape) for o in scene.objects})


def _pair_of_kinds(scene: Scene, rng: random.Random, differ: bool) -> tuple | None:
    kinds = _kinds(scene)
    pairs = [(a, b) for a in kinds for b in kinds if a != b]
    if differ:
        pairs = [(a, b) for a, b in pairs if scene.count(*a) > scene.count(*b)]
    return rng.choice(pairs) if pairs else None


def _propose_count(scene, rng):
    colour, shape = rng.choice(_kinds(scene))
    return f"How many {colour} {shape}s are there?"


def _propose_sum(scene, rng):
    pair = _pair_of_kinds(scene, rng, differ=False)
    if pair is None:
        return None
    (c1, s1), (c2, s2) = pair
    return f"How many {c1} {s1}s and {c2} {s2}s are there in all?"


def _propose_diff(scene, rng):
    pair = _pair_of_kinds(scene, rng, differ=True)
    if pair is None:
        return None
    (c1, s1), (c2, s2) = pair
    return f"How many more {c1} {s1}s than {c2} {s2}s are there?"


def _propose_compare(scene, rng):
    pair = _pair_of_kinds(scene, rng, differ=True)
    if pair is None:
        return None
    (c1, s1), (c2, s2) = rng.sample(pair, 2)
    return f"Are there more {c1} {s1}s or {c2} {s2}s?"


def _propose_spatial(axis: str) -> Callable:
    def propose(scene, rng):
        unique = [o for o in scene.objects if _unique(scene, o.colour, o.shape) is o]
        pairs = [(a, b) for a in unique for b in unique if getattr(a, axis) != getattr(b, axis)]
        if not pairs:
            return None
        a, b = rng.choice(pairs)
        words, link = ("left or right", " of") if axis == "col" else ("above or below", "")
        return (f"Is the {a.colour} {a.shape} {words}{link} the {b.colour} {b.shape}?"
                f" Answer with {words}.")  # fmt: skip

    return propose


def _propose_at(scene, rng):
    obj = rng.choice(scene.objects)
    return f"Which object is in row {obj.row}, column {obj.col}? Answer with its letter."


def _propose_knowledge(scene, rng):
    options = [
        (o, phrase)
        for o in scene.objects
        if o.name
        for prop, phrase in QUESTION_PHRASES.items()
        if lookup(o.name, prop) is not None
    ]
    if not options:
        return None
    obj, phrase = rng.choice(options)
    return f"Is the object labelled {obj.label} {phrase}? Answer yes or no."


def _propose_bar(count: int, template: str, differ: bool = False) -> Callable:
    def propose(scene, rng):
        pairs = [(a, b) for a in scene.bars for b in scene.bars if a != b]
        if differ:
            pairs = [(a, b) for a, b in pairs if a[1] != b[1]]
        if count == 1:
            return template.format(rng.choice(scene.bars)[0])
        return template.format(*(k for k, _ in rng.choice(pairs))) if pairs else None

    return propose


def _propose_cell_read(scene, rng):
    row, column = rng.choice(scene.table)[0], rng.choice(scene.header[1:])
    return f"How many {column} does {row} have?"


def _propose_cell_compare(scene, rng):
    column = rng.choice(scene.header[1:])
    at = scene.header.index(column)
    pairs = [(a, b) for a in scene.table for b in scene.table if a[at] != b[at]]
    if not pairs:
        return None
    first, second = rng.choice(pairs)
    return f"Who has more {column}, {first[0]} or {second[0]}?"


@dataclass(frozen=True)
class QuestionType:
    name: str
    kind: str
    pattern: re.Pattern[str]
    propose: Callable[[Scene, random.Random], str | None]
    build: Callable[[Scene, re.Match[str]], Gold | None]


def _q(name, kind, pattern, propose, build) -> QuestionType:
    return QuestionType(name, kind, re.compile(rf"^{pattern}$", re.IGNORECASE), propose, build)


W = r"([A-Za-z]+)"
QUESTION_TYPES: tuple[QuestionType, ...] = (
    _q("count", "shapes", rf"How many {W} {W}s are there\?", _propose_count, _build_count),
    _q("count_sum", "shapes", rf"How many {W} {W}s and {W} {W}s are there in all\?",
       _propose_sum, lambda s, m: _build_count_pair(s, m, "+")),
    _q("count_diff", "shapes", rf"How many more {W} {W}s than {W} {W}s are there\?",
       _propose_diff, lambda s, m: _build_count_pair(s, m, "-")),
    _q("count_compare", "shapes", rf"Are there more {W} {W}s or {W} {W}s\?",
       _propose_compare, _build_count_compare),
    _q("left_right", "shapes",
       rf"Is the {W} {W} left or right of the {W} {W}\? Answer with left or right\.",
       _propose_spatial("col"), lambda s, m: _build_spatial(s, m, "col")),
    _q("above_below", "shapes",
       rf"Is the {W} {W} above or below the {W} {W}\? Answer with above or below\.",
       _propose_spatial("row"), lambda s, m: _build_spatial(s, m, "row")),
    _q("at", "shapes", r"Which object is in row (\d+), column (\d+)\? Answer with its letter\.",
       _propose_at, _build_at),
    _q("knowledge", "shapes",
       rf"Is the object labelled {W} ({'|'.join(QUESTION_PHRASES.values())})\? Answer yes or no\.",
       _propose_knowledge, _build_knowledge),
    _q("bar_read", "chart", rf"What is the value of the bar for {W}\?",
       _propose_bar(1, "What is the value of the bar for {}?"), _build_bar_read),
    _q("bar_sum", "chart", rf"What is the total of the bars for {W} and {W}\?",
       _propose_bar(2, "What is the total of the bars for {} and {}?"), _build_bar_sum),
    _q("bar_compare", "chart", rf"Which bar is higher, {W} or {W}\?",
       _propose_bar(2, "Which bar is higher, {} or {}?", differ=True), _build_bar_compare),
    _q("cell_read", "table", rf"How many {W} does {W} have\?", _propose_cell_read,
       _build_cell_read),
    _q("cell_compare", "table", rf"Who has more {W}, {W} or {W}\?", _propose_cell_compare,
       _build_cell_compare),
)  # fmt: skip


TASKS = {
    "count": "counting", "count_sum": "count_arithmetic", "count_diff": "count_arithmetic",
    "count_compare": "comparison", "left_right": "spatial", "above_below": "spatial",
    "at": "spatial", "knowledge": "knowledge", "bar_read": "chart_value",
    "bar_sum": "chart_value", "bar_compare": "comparison", "cell_read": "table_value",
    "cell_compare": "table_value",
}  # fmt: skip
"""Question type -> the item's task."""


def gold_chain(scene: Scene, question: str) -> Gold | None:
    """The gold chain of one of our questions about `scene` (None if it is not one of ours or
    the scene cannot answer it)."""
    # The whole text, else each line: a prompt may wrap the question in instructions.
    lines = [question, *question.splitlines()]
    for line in lines:
        text = re.sub(r"^\s*question\s*:\s*", "", " ".join(line.split()), flags=re.IGNORECASE)
        for qtype in QUESTION_TYPES:
            match = qtype.pattern.search(text) if qtype.kind == scene.kind else None
            if match:
                return qtype.build(scene, match)
    return None


def propose_questions(scene: Scene, rng: random.Random, n: int) -> list[tuple[str, Gold]]:
    """Up to `n` distinct questions about `scene`, each with its gold chain, types mixed."""
    by_task: dict[str, list[QuestionType]] = {}
    for qtype in QUESTION_TYPES:
        if qtype.kind == scene.kind:
            by_task.setdefault(TASKS[qtype.name], []).append(qtype)
    found: dict[str, Gold] = {}
    for _ in range(n * 6):
        if len(found) == n:
            break
        # a task first, then one of its question types: tasks come up about equally often
        question = rng.choice(by_task[rng.choice(sorted(by_task))]).propose(scene, rng)
        if question and question not in found:
            gold = gold_chain(scene, question)
            if gold is not None:
                found[question] = gold
    return list(found.items())
