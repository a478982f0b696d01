"""The three domains and the scripted solver's documented interference."""

from __future__ import annotations

import random

from posttrain.eval.sustain import code_task, constraints, math_task, qa_task, scripted, tasks


def _ask(prompt: str) -> str:
    return scripted.respond([{"role": "user", "content": prompt}])


def test_math_items_are_deterministic_and_gold_is_the_computed_value() -> None:
    assert math_task.make_items(5, 1) == math_task.make_items(5, 1)
    assert math_task.make_items(5, 1) != math_task.make_items(5, 2)
    for item in math_task.make_items(20, 0):
        value = int(item["problem"].split(" has ")[1].split()[0])
        for op in item["operations"]:
            value = math_task.apply(op["kind"], value, op["args"])
        assert str(value) == item["gold"] and 2 <= item["difficulty"] <= 5


def test_grading_reads_boxed_answer_line_and_runs_code() -> None:
    item = {"gold": "12"}
    assert math_task.grade(item, "3 + 9 = 12, so \\boxed{12}.")["correct"]
    assert not math_task.grade(item, "\\boxed{13} though 12 appears")["correct"]
    assert math_task.grade(item, "it is 12")["correct"]
    qa = {"gold": "Tarvo City", "aliases": []}
    assert qa_task.grade(qa, "Answer: tarvo city\nbecause ...")["correct"]
    assert not qa_task.grade(qa, "Answer: Tarvo\nTarvo City")["correct"]
    code = tasks.make_items("code", 1, 0)[0]
    problem = code_task.problems()[code["task_id"]]
    good = f"```python\n{problem['prompt']}{problem['canonical_solution']}```"
    assert tasks.grade(code, good)["correct"]
    assert not tasks.grade(code, "```python\n    return None\n```")["correct"]


def test_solver_solves_every_item_without_constraints_and_labels_oracle_code() -> None:
    for domain in ("math", "qa"):
        for item in tasks.make_items(domain, 15, 4):
            assert tasks.grade(item, _ask(item["prompt"]))["correct"], item["key"]
    item = tasks.make_items("code", 1, 4)[0]
    assert scripted.ORACLE_MARK in _ask(item["prompt"])
    assert "oracle code answers" in scripted.SOLVER_LABEL


def test_constraints_cost_effort_and_word_limits_cut_the_final_answer() -> None:
    item = next(it for it in math_task.make_items(40, 0) if it["difficulty"] == 5)
    output = _ask(item["prompt"])
    keyword = {"id": "keywords:existence", "keywords": ["count"]}
    prompt, _ = constraints.insert_constraints(item["prompt"], [keyword])
    assert tasks.grade(item, _ask(prompt))["correct"]  # effort 5 still covers 5 steps
    words = {
        "id": "length_constraints:number_words",
        "relation": "at most",
        "num_words": len(output.split()) + 40,
    }  # loose: only the effort cost matters
    prompt, _ = constraints.insert_constraints(item["prompt"], [words])
    assert not tasks.grade(item, _ask(prompt))["correct"]  # effort 4 < 5 steps
    qa = next(it for it in qa_task.make_items(30, 0) if it["difficulty"] == 4)
    tight = constraints.extract_constraints(_ask(qa["prompt"]), qa, random.Random(0))
    counting = [s for s in tight if s["id"].startswith("length_constraints")][:2]
    prompt, _ = constraints.insert_constraints(qa["prompt"], counting)
    assert not tasks.grade(qa, _ask(prompt))["correct"]  # effort 2 < 4 hops
    short = math_task.make_items(40, 0)[0]
    exact = constraints.extract_constraints(_ask(short["prompt"]), short, random.Random(0))[0]
    assert exact["id"] == "length_constraints:number_words"
    text = scripted.comply(_ask(short["prompt"]), [exact])
    assert len(text.split()) < len(_ask(short["prompt"]).split())  # the safety margin cut it
