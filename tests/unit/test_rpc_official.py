"""RPC-Bench's official protocol: templates read from a checkout's files (never imported),
prompts rendered as llm.py / eval.py render them, and eval.py's reading and scoring rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from posttrain.data.io import DataError
from posttrain.eval.rpc.answer import finish_answer
from posttrain.eval.rpc.data import load_items
from posttrain.eval.rpc.official import (
    JUDGE_ORDER,
    claim_verdict,
    load_official,
    merged_ratings,
    paper_text,
    read_rating,
    reply_content,
)
from posttrain.eval.rpc.protocol import POSTTRAIN, load_protocol
from posttrain.eval.rpc.scores import score_run
from posttrain.models.chat.scripted import ScriptedChat


@pytest.fixture(scope="module")
def checkout(rpc_bench_checkout: Path) -> Path:
    """A checkout of RPC-Bench (its upstream files from shared/, our one-paper benchmark)."""
    return rpc_bench_checkout


def split_and_papers(checkout: Path) -> tuple[Path, Path]:
    return checkout / "benchmark" / "test.json", checkout / "benchmark" / "md" / "test"


def literal(path: Path, pattern: str) -> str:
    """A string literal of a fixture file found by text search (not by the code under test):
    triple-quoted ones verbatim, double-quoted ones decoded as JSON strings."""
    source = path.read_text(encoding="utf-8")
    match = re.search(pattern + r' = (?:"""(.*?)"""|("(?:[^"\\]|\\.)*"))', source, re.DOTALL)
    assert match, pattern
    return match.group(1) if match.group(1) is not None else json.loads(match.group(2))


def test_templates_come_verbatim_from_the_checkout(checkout):
    prompts = load_official(checkout)
    prompt_py, llm_py = checkout / "prompt.py", checkout / "llm.py"
    assert prompts.judge_user == literal(prompt_py, "user_prompt_augment")
    for dim in JUDGE_ORDER:
        name = f"system_prompt_{dim.lower()}_augment"
        assert prompts.judge_system[dim] == literal(prompt_py, name)
    source = llm_py.read_text(encoding="utf-8")
    found = [json.loads(m) for m in re.findall(r'prompt_template = ("(?:[^"\\]|\\.)*")', source)]
    assert [prompts.open_answer, prompts.claim_answer] == found  # if != claim: open, else claim
    assert prompts.papers_dir == checkout.resolve() / "benchmark" / "md" / "test"


def test_rendered_prompts_match_llm_py_and_eval_py(checkout):
    split_file, papers = split_and_papers(checkout)
    rules = load_protocol("official", checkout)
    items = load_items(split_file, papers, None, rules.paper_text)
    paper = (papers / "rzQGHXNReU" / "rzQGHXNReU.md").read_text(encoding="utf-8")
    open_item, claim = items[0], items[-1]
    assert claim["category"] == "Claim_Verification" and open_item["context"] == paper
    open_template = json.loads(
        re.findall(r'prompt_template = ("(?:[^"\\]|\\.)*")', (checkout / "llm.py").read_text())[0]
    )
    assert rules.conversation(open_item) == [
        {
            "role": "user",
            "content": open_template.format(question=open_item["question"], content=paper),
        }
    ]
    assert rules.conversation(claim)[0]["content"].startswith("You are an academic judgment")
    assert rules.conversation(claim)[0]["content"].endswith("Paper:\n" + paper)

    system, user = rules.judge_conversation(open_item, "An answer.", "Correctness")
    assert system == {
        "role": "system",
        "content": literal(checkout / "prompt.py", "system_prompt_correctness_augment"),
    }
    assert user["content"] == literal(checkout / "prompt.py", "user_prompt_augment").format(
        title=open_item["title"],
        abstract=open_item["abstract"],
        question=open_item["question"],
        reference_answer=open_item["reference_answer"],
        predicted_answer="An answer.",
    )


def test_posttrain_is_the_default_and_official_needs_a_checkout(checkout):
    assert load_protocol("posttrain") is POSTTRAIN
    with pytest.raises(ValueError, match="needs --rpc-bench"):
        load_protocol("official")
    with pytest.raises(ValueError, match="only read with --protocol official"):
        load_protocol("posttrain", checkout)
    with pytest.raises(ValueError, match="must be one of posttrain, official"):
        load_protocol("paper")


def test_bad_checkouts_are_named(tmp_path, checkout):
    with pytest.raises(DataError, match="missing prompt.py"):
        load_official(tmp_path)
    (tmp_path / "prompt.py").write_text(
        (checkout / "prompt.py")
        .read_text()
        .replace('user_prompt_augment = "', 'user_prompt_augment = PREFIX + "', 1)
    )
    (tmp_path / "llm.py").write_text((checkout / "llm.py").read_text())
    with pytest.raises(DataError, match=r"prompt\.py:1: user_prompt_augment is not a string"):
        load_official(tmp_path)
    (tmp_path / "prompt.py").write_text((checkout / "prompt.py").read_text())
    (tmp_path / "llm.py").write_text("prompt_template = 'x {question} {content}'\n")
    with pytest.raises(DataError, match=r"llm\.py: no `if \.\.\. category"):
        load_official(tmp_path)
    (tmp_path / "llm.py").write_text("def broken(:\n")
    with pytest.raises(DataError, match=r"llm\.py:1: not valid Python"):
        load_official(tmp_path)


def test_papers_follow_the_official_layout(tmp_path):
    (tmp_path / "p1").mkdir()
    (tmp_path / "p1" / "p1.md").write_text("nested")
    (tmp_path / "p2.md").write_text("flat")
    assert paper_text(tmp_path, "p1") == "nested"
    with pytest.raises(DataError, match=r"no full text for paper 'p2': expected .*p2/p2\.md"):
        paper_text(tmp_path, "p2")


@pytest.mark.parametrize(
    ("raw", "verdict"),
    [("True", "True"), ("False", "False"), ("True.", None), (" True", None), ("true", None)],
)
def test_claims_must_be_exactly_true_or_false(raw, verdict):
    assert claim_verdict(raw) == verdict
    record = finish_answer({"category": "Claim_Verification"}, raw, claim_verdict)
    assert record["answer"] == (verdict or "") and record["claim_invalid"] is (verdict is None)


@pytest.mark.parametrize(
    ("reply", "dimension", "rating"),
    [
        ('```json\n{"Correctness": {"rating": "4.03"}}\n```', "Correctness", 4.03),
        # LaTeX inside a fence is escaped, as eval.py's escape_latex does
        (
            '```json\n{"Correctness": {"rating": "2.5", "rationale": "$\\alpha$"}}\n```',
            "Correctness",
            2.5,
        ),
        ('{"Completeness": {"rating": 3}}', "Completeness", 3.0),  # no fence: plain JSON
        ('{"Correctness": {"rating": "7.00"}}', "Correctness", 7.0),  # eval.py has no range check
        ('{"correctness": {"rating": "4"}}', "Correctness", None),  # keys are case-sensitive
        ('Here you go: {"Correctness": {"rating": "4"}}', "Correctness", None),  # not JSON
        ('{"Correctness": {"rating": "4/5"}}', "Correctness", None),  # float() fails
        ('{"Correctness": {"rationale": "no rating"}}', "Correctness", None),
        ('{"Completeness": {"rating": "4"}}', "Correctness", None),
    ],
)
def test_replies_are_read_as_eval_py_reads_them(reply, dimension, rating):
    assert read_rating(reply, dimension) == rating


def test_reply_content_of_an_empty_reply_is_empty():
    assert reply_content("") == {} and reply_content("```json\nnot closed") is None


def test_official_judge_and_scores_follow_eval_py(checkout):
    """Two judges on three items: eval.py's means (an unreadable rating counts 0) are taken per
    judge, then averaged across judges; F1 and the conciseness-adjusted score come from the
    averaged means."""
    split_file, papers = split_and_papers(checkout)
    rules = load_protocol("official", checkout)
    items = [i for i in load_items(split_file, papers, None, rules.paper_text)][:3]
    ratings = {  # judge -> predicted answer -> (Conciseness, Completeness, Correctness)
        "a": {"one": (4.0, 3.0, 2.0), "two": (5.0, 1.0, 4.0), "": (1.0, 0.0, 0.0)},
        "b": {"one": (2.0, 2.0, 2.0), "two": (3.0, None, 5.0), "": (0.0, 0.0, 1.0)},
    }

    def replier(judge):  # noqa: ANN001, ANN202
        def reply(conversation):  # noqa: ANN001, ANN202
            system, user = conversation[0]["content"], conversation[1]["content"]
            dim = next(d for d in JUDGE_ORDER if f"1. {d}:" in system)
            predicted = re.search(r"<predicted-answer>(.*)</predicted-answer>", user, re.S)[1]
            value = ratings[judge][predicted][JUDGE_ORDER.index(dim)]
            if value is None:
                return "The rating is four."  # eval.py could not read this
            return "```json\n" + json.dumps({dim: {"rating": f"{value:.2f}"}}) + "\n```"

        return reply

    answers = ["one", "two", ""]  # eval.py judges an empty answer too
    judgments = {}
    for name in ("a", "b"):
        judge = rules.judge(ScriptedChat(name, default=replier(name)), max_retries=1)
        judgments[name] = judge.judge_batch(list(zip(items, answers, strict=True)))
        assert all(r["protocol"] == "official" for r in judgments[name])
        assert judge.stats.calls == 9 + (1 if name == "b" else 0)  # one re-ask of the bad one
    assert judgments["b"][1]["failed"] == ["Completeness"]
    assert judgments["a"][0]["score"][0].startswith('```json\n{"Conciseness"')  # eval.py order

    records = [{**i, "answer": a} for i, a in zip(items, answers, strict=True)]
    scores = score_run(records, judgments)
    con = ((4 + 5 + 1) / 3 + (2 + 3 + 0) / 3) / 2
    com = ((3 + 1 + 0) / 3 + (2 + 0 + 0) / 3) / 2
    cor = ((2 + 4 + 0) / 3 + (2 + 5 + 1) / 3) / 2
    f1 = 2 * cor * com / (cor + com)
    assert scores["correctness"] == pytest.approx(cor * 20)
    assert scores["completeness"] == pytest.approx(com * 20)
    assert scores["conciseness"] == pytest.approx(con * 20)
    assert scores["f1"] == pytest.approx(f1 * 20)
    assert scores["conciseness_adjusted"] == pytest.approx(con * f1 * 4)


def test_an_items_replies_are_merged_in_eval_py_order(checkout):
    """eval.py merges the three replies' JSON in its call order, so a key repeated in the
    correctness reply (asked last) wins; a reply that is not JSON adds nothing."""
    split_file, papers = split_and_papers(checkout)
    rules = load_protocol("official", checkout)
    [item] = load_items(split_file, papers, 1, rules.paper_text)
    replies = {
        "Conciseness": '{"Conciseness": {"rating": "4"}}',
        "Completeness": '{"Completeness": {"rating": "1"}}',
        "Correctness": '{"Correctness": {"rating": "3"}, "Completeness": {"rating": "2"}}',
    }

    def reply(conversation):  # noqa: ANN001, ANN202
        return next(r for d, r in replies.items() if f"1. {d}:" in conversation[0]["content"])

    [record] = rules.judge(ScriptedChat("merge", default=reply), 0).judge_batch([(item, "x")])
    assert record["ratings"] == {"Correctness": 3.0, "Completeness": 2.0, "Conciseness": 4.0}
    assert merged_ratings(["not json", '{"Correctness": {"rating": "5"}}', ""]) == {
        "Conciseness": None,
        "Completeness": None,
        "Correctness": 5.0,
    }
