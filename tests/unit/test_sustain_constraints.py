"""Constraint checkers, extraction from solved outputs, verification and the solver's parsing."""

from __future__ import annotations

import random

import pytest

from posttrain.eval.sustain import constraints, scripted, tasks
from posttrain.eval.sustain.pipeline import make_variants
from posttrain.rewards.instructions import check_instruction, instruction_ids


def _solved(domain: str, n: int = 6) -> list[tuple[dict, str]]:
    items = tasks.make_items(domain, n, seed=3)
    return [(it, scripted.respond([{"role": "user", "content": it["prompt"]}])) for it in items]


def test_ifeval_constraints_are_checked_by_the_official_code() -> None:
    official = set(instruction_ids())
    ifeval = {
        i for i, c in constraints.CHECKERS.items() if isinstance(c, constraints.IFEvalInstruction)
    }
    assert ifeval and ifeval <= official
    own = set(constraints.CHECKERS) - ifeval
    assert not own & official  # SustainScore's own checks never borrow an IFEval id
    # The SustainScore word bound "at most 10" is IFEval's "less than 11", counted as IFEval does.
    spec = {"id": "length_constraints:number_words", "relation": "less than", "num_words": 11}
    assert constraints.describe(spec) == "Answer with at most 10 words."
    for text in ("has_close_elements " * 10, "don't " * 6):
        assert constraints.check(text, spec) == check_instruction(text, spec)
    assert constraints.check("has_close_elements " * 10, spec)
    assert not constraints.check("don't " * 6, spec)  # 12 words to IFEval
    with pytest.raises(ValueError, match="unknown constraint"):
        constraints.check("x", {"id": "nope"})


@pytest.mark.parametrize(
    ("spec", "good", "bad"),
    [
        ({"id": "punctuation:forbidden_character", "character": ";"}, "a b", "a; b"),
        ({"id": "startend:start_checker", "start_phrase": "Dear Dad"}, "dear dad, hi", "Hi Dad"),
        (
            {"id": "length_constraints:number_blank_line_paragraphs", "num_paragraphs": 2},
            "a\n\nb",
            "a\nb",
        ),
        ({"id": "detectable_format:answer_format", "format": "boxed"}, "so \\boxed{4}", "4"),
        (
            {"id": "detectable_format:answer_format", "format": "answer_line"},
            "x\nAnswer: Rome",
            "answer: Rome",
        ),
        ({"id": "code:function_name", "name": "f"}, "def f(x):\n  pass", "def g(x):\n  pass"),
        ({"id": "code:no_imports"}, "def f():\n  return 1", "import os\ndef f(): pass"),
        ({"id": "length_constraints:number_lines", "num_lines": 2}, "a\n\nb", "a\nb\nc"),
    ],
)
def test_new_checkers(spec: dict, good: str, bad: str) -> None:
    assert constraints.check(good, spec) and not constraints.check(bad, spec)
    assert constraints.describe(spec)


@pytest.mark.parametrize("domain", ["math", "qa", "code"])
def test_every_extracted_constraint_passes_its_source_output(domain: str) -> None:
    for item, output in _solved(domain):
        assert tasks.grade(item, output)["correct"]
        proposed = constraints.extract_constraints(output, item, random.Random(0))
        kept, dropped = constraints.verify_constraints(output, proposed)
        assert len(kept) >= 3
        assert all(constraints.check(output, spec) for spec in kept)
        assert all(not constraints.check(output, spec) for spec in dropped)
        for spec in kept:  # never give the answer away in the inserted text
            text = constraints.describe(spec).lower()
            if domain != "code":
                assert item["gold"].lower() not in text


def test_unsatisfied_constraint_is_dropped_and_counted() -> None:
    kept, dropped = constraints.verify_constraints(
        "one, two",
        [{"id": "punctuation:no_comma"}, {"id": "keywords:existence", "keywords": ["two"]}],
    )
    assert kept == [{"id": "keywords:existence", "keywords": ["two"]}]
    assert dropped == [{"id": "punctuation:no_comma"}]
    # In the pipeline: HumanEval/0's prompt imports `typing`, so `no_imports` is proposed from
    # the oracle answer, fails its own output and is counted as dropped.
    item = next(it for it in tasks.make_items("code", 164, 0) if it["task_id"] == "HumanEval/0")
    answer = scripted.respond([{"role": "user", "content": item["prompt"]}])
    baseline = [{"key": item["key"], "correct": True, "answer": answer}]
    variants, extraction = make_variants({item["key"]: item}, baseline, 3, seed=0)
    assert extraction["code"]["dropped_by_type"].get("code:no_imports") == 1
    assert (
        extraction["code"]["kept"] == extraction["code"]["proposed"] - extraction["code"]["dropped"]
    )
    assert [v["k"] for v in variants] == [1, 2, 3]
    assert variants[2]["constraints"][:2] == variants[1]["constraints"]  # nested
    assert all(s["id"] != "code:no_imports" for v in variants for s in v["constraints"])


def test_solver_recognises_every_inserted_constraint() -> None:
    for domain in ("math", "qa", "code"):
        for item, output in _solved(domain, 3):
            kept, _ = constraints.verify_constraints(
                output, constraints.extract_constraints(output, item, random.Random(1))
            )
            prompt, block = constraints.insert_constraints(item["prompt"], kept)
            task, found = scripted.split_prompt(prompt)
            assert task == item["prompt"] and block in prompt
            assert [s["id"] for s in found] == [s["id"] for s in kept]
