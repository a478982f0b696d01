"""RPC-Bench loading: items per QA pair, contexts, and errors that name file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.data.io import DataError
from posttrain.eval.rpc.data import load_items

SLICE = Path(__file__).parents[1] / "integration" / "data" / "rpc-bench" / "test.jsonl"


def _paper(pid: str = "p1", **overrides) -> dict:
    paper = {
        "id": pid,
        "title": "Sparse Widgets",
        "abstract": "We study widgets. They are sparse.",
        "qa_pairs": [
            {"question": "What is studied?", "answer": "Widgets.", "category": "Method_Mechanics"},
            {"question": "Widgets are sparse.", "answer": "True", "category": "Claim_Verification"},
        ],
    }
    paper.update(overrides)
    return paper


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_items_are_keyed_by_paper_and_one_based_part_index():
    items = load_items(SLICE)
    assert len(items) == 25
    first = items[0]
    assert first["key"] == "rzQGHXNReU_1" and first["part_idx"] == 1
    assert (
        first["context"].startswith("Title: RAFT") and "Abstract: Pretraining" in first["context"]
    )
    assert len({i["key"] for i in items}) == 25
    assert len(load_items(SLICE, limit=4)) == 4


def test_full_text_context_from_a_papers_folder(tmp_path):
    data = _write(tmp_path / "d.jsonl", [json.dumps(_paper("p1")), json.dumps(_paper("p2"))])
    papers = tmp_path / "md"
    (papers / "p2").mkdir(parents=True)
    (papers / "p1.md").write_text("# Full text one", encoding="utf-8")
    (papers / "p2" / "p2.md").write_text("# Full text two", encoding="utf-8")  # RPC-Bench layout
    items = load_items(data, papers)
    assert [i["context"] for i in items] == ["# Full text one"] * 2 + ["# Full text two"] * 2
    (papers / "p1.md").unlink()
    with pytest.raises(DataError, match="no full text for paper 'p1'"):
        load_items(data, papers)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"d.jsonl:2: not valid JSON"),
        (
            json.dumps({"id": "x", "title": "t", "abstract": "a"}),
            r"d.jsonl:2: missing field 'qa_pairs'",
        ),
        (
            json.dumps(_paper("x", qa_pairs=[{"question": "q", "answer": "a", "category": "Odd"}])),
            r"d.jsonl:2: qa_pairs\[0\]: unknown category 'Odd'",
        ),
        (
            json.dumps(
                _paper(
                    "x",
                    qa_pairs=[{"question": "q", "answer": "Yes", "category": "Claim_Verification"}],
                )
            ),
            r"d.jsonl:2: qa_pairs\[0\]: a Claim_Verification answer must be True or False",
        ),
        (json.dumps(_paper("p1")), r"d.jsonl:2: duplicate paper id 'p1'"),
    ],
)
def test_bad_lines_are_named(tmp_path, line, message):
    data = _write(tmp_path / "d.jsonl", [json.dumps(_paper("p1")), line])
    with pytest.raises(DataError, match=message):
        load_items(data)


def test_missing_file_and_bad_limit(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_items(tmp_path / "none.jsonl")
    with pytest.raises(ValueError, match="--limit must be >= 1"):
        load_items(SLICE, limit=0)
