"""IFEval by the official implementation: our file scoring equals lm-evaluation-harness's
verdicts instruction by instruction on rows covering all 25 instruction ids, the join by
prompt, the `ifeval` reward, and the errors for bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.data.io import DataError
from posttrain.eval.ifeval import ACCURACIES, load_inputs, load_responses, score, score_files
from posttrain.rewards import get_reward
from posttrain.rewards.ifeval import PUNKT_INSTALL_HINT, follow, ifeval_ids, official

DATA = Path(__file__).parents[1] / "integration" / "data" / "ifeval"
INPUTS, RESPONSES = DATA / "input_data.jsonl", DATA / "responses.jsonl"


def _official_verdicts() -> tuple[list[dict], dict]:
    """lm-eval's IFEval code run directly on the fixture, as Google's script reads it."""
    official()  # where nltk finds punkt_tab offline, and langdetect's seed: the same for both
    from lm_eval.tasks.ifeval import utils

    docs = [json.loads(line) for line in INPUTS.read_text().splitlines()]
    responses = {}
    for line in RESPONSES.read_text().splitlines():
        row = json.loads(line)
        responses[row["prompt"]] = row["response"]
    results = []
    for doc in docs:
        example = utils.InputExample(
            key=doc["key"],
            instruction_id_list=doc["instruction_id_list"],
            prompt=doc["prompt"],
            kwargs=doc["kwargs"],
        )
        response = responses[doc["prompt"]]
        results.append(
            {
                "strict": utils.test_instruction_following_strict(example, response),
                "loose": utils.test_instruction_following_loose(example, response),
                "metrics": utils.process_results(doc, [response]),
            }
        )
    return docs, {"results": results, "agg": utils.agg_inst_level_acc}


def test_fixture_covers_every_instruction_passing_and_failing() -> None:
    docs, official_run = _official_verdicts()
    assert len(ifeval_ids()) == 25
    verdicts: dict[str, set[bool]] = {}
    for doc, result in zip(docs, official_run["results"], strict=True):
        for instruction_id, ok in zip(
            doc["instruction_id_list"], result["strict"].follow_instruction_list, strict=True
        ):
            verdicts.setdefault(instruction_id, set()).add(ok)
    assert set(verdicts) == set(ifeval_ids())
    assert all(seen == {True, False} for seen in verdicts.values()), verdicts


def test_scores_equal_the_official_implementation_instruction_by_instruction() -> None:
    docs, official_run = _official_verdicts()
    ours = score(load_inputs(INPUTS), load_responses(RESPONSES))
    for i, result in enumerate(official_run["results"]):
        for mode in ("strict", "loose"):
            assert ours[mode][i]["follow_instruction_list"] == (
                result[mode].follow_instruction_list
            ), (docs[i]["key"], mode)
            assert ours[mode][i]["response"] == result[mode].response
    metrics = [r["metrics"] for r in official_run["results"]]
    expected = {
        name: (
            official_run["agg"]([m[name] for m in metrics])
            if name.startswith("inst_level")
            else sum(m[name] for m in metrics) / len(metrics)
        )
        for name in ACCURACIES
    }
    assert {name: ours[name] for name in ACCURACIES} == pytest.approx(expected)
    # The fixture is built so that strict and loose differ, at both levels.
    assert ours["prompt_level_strict_acc"] < ours["prompt_level_loose_acc"]
    assert ours["inst_level_strict_acc"] < ours["inst_level_loose_acc"]


def test_responses_are_joined_by_prompt_and_the_last_one_counts(tmp_path) -> None:
    first = json.loads(INPUTS.read_text().splitlines()[0])
    responses = load_responses(RESPONSES)
    assert responses[first["prompt"]] != "An earlier draft that the later response replaces."
    only_one = tmp_path / "responses.jsonl"
    only_one.write_text(json.dumps({"prompt": first["prompt"], "response": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"52 of 53 IFEval prompts have no response.*key 1001"):
        score_files(only_one, INPUTS)


def test_rows_carrying_their_instructions_need_no_inputs_file(tmp_path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        json.dumps(
            {
                "prompt": "p",
                "instruction_id_list": ["punctuation:no_comma"],
                "kwargs": [{"relation": None}],  # the HF dataset's empty columns are dropped
                "response": "no commas here",
            }
        )
        + "\n"
    )
    summary = score_files(rows, out=tmp_path / "out")
    assert summary["prompt_level_strict_acc"] == 1.0 and summary["instructions"] == 1
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["inst_level_loose_acc"] == 1.0
    strict = (tmp_path / "out" / "eval_results_strict.jsonl").read_text().splitlines()
    assert json.loads(strict[0])["follow_instruction_list"] == [True]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "p", "instruction_id_list": ["nope"], "kwargs": [{}]}, "unknown IFEval"),
        ({"prompt": "p", "instruction_id_list": ["punctuation:no_comma"]}, "no 'kwargs'"),
        ({"prompt": "p", "instruction_id_list": "punctuation:no_comma", "kwargs": [{}]}, "a list"),
        ({"prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": []}, "1 inst"),
        (
            {
                "prompt": "p",
                "instruction_id_list": ["length_constraints:number_words"],
                "kwargs": [{"num_words": 5}],
            },
            "needs relation",
        ),
        ({"instruction_id_list": [], "kwargs": []}, "needs a string 'prompt'"),
    ],
)
def test_bad_rows_name_the_file_line_and_problem(tmp_path, row: dict, message: str) -> None:
    path = tmp_path / "input_data.jsonl"
    path.write_text(json.dumps({"prompt": "ok", "instruction_id_list": [], "kwargs": []}) + "\n")
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=message) as caught:
        load_inputs(path)
    assert f"{path}:2" in str(caught.value)


def test_ifeval_reward_scores_rows_in_the_ifeval_format() -> None:
    reward = get_reward("ifeval")
    ids = [["punctuation:no_comma", "keywords:existence"]] * 2 + [[]]
    kwargs = [[{}, {"keywords": ["rest"]}]] * 2 + [[]]
    completions = [
        "please rest then hydrate",
        [{"role": "assistant", "content": "rest, then"}],
        "x",
    ]
    prompts = ["a", [{"role": "user", "content": "b"}], "c"]
    scores = reward(
        prompts=prompts, completions=completions, instruction_id_list=ids, kwargs=kwargs
    )
    assert scores == [1.0, 0.0, None]
    with pytest.raises(ValueError, match="needs the IFEval columns"):
        reward(prompts=["a"], completions=["x"], instruction_id_list=[["punctuation:no_comma"]])


def test_missing_punkt_data_is_an_error_that_says_how_to_install(monkeypatch) -> None:
    official()
    from lm_eval.tasks.ifeval import instructions_util

    def no_punkt(text: str) -> int:
        raise LookupError("Resource punkt_tab not found.")

    monkeypatch.setattr(instructions_util, "count_sentences", no_punkt)
    row = {
        "prompt": "p",
        "instruction_id_list": ["length_constraints:number_sentences"],
        "kwargs": [{"relation": "less than", "num_sentences": 2}],
    }
    with pytest.raises(LookupError, match="nltk.downloader punkt_tab") as caught:
        follow(row, "One. Two.")
    assert str(caught.value) == PUNKT_INSTALL_HINT
