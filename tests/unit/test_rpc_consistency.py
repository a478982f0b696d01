"""Judge–human consistency: RPC-Bench's demo table reproduced, and its edge cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from posttrain.data.io import DataError
from posttrain.eval.rpc.consistency import (
    bradley_terry,
    consistency_table,
    item_f1,
    load_pairwise,
    pairwise_auc,
)

DEMO = Path(__file__).parents[1] / "integration" / "data" / "rpc-bench" / "consistency"

# RPC-Bench's consistency tool on its demo data (its README / the shared data README).
EXPECTED = {
    "Model_A": {"Pearson_BT": 0.6387, "Spearman_BT": 0.7500, "Pairwise_auc": 0.6667, "avg": 0.6851},
    "Model_B": {"Pearson_BT": 0.6623, "Spearman_BT": 0.7500, "Pairwise_auc": 0.5000, "avg": 0.6374},
}


def test_reproduces_the_demo_table_to_four_decimals():
    table = consistency_table(DEMO / "pairwise_demo.json", [DEMO / "Model_A", DEMO / "Model_B"])
    rounded = {j: {k: round(v, 4) for k, v in m.items()} for j, m in table["judges"].items()}
    assert rounded == EXPECTED
    bt = table["human_bt"]
    assert bt["alpha"] > bt["beta"] > bt["gamma"]


def test_item_f1():
    fenced = '```json\n{"Correctness": {"rating": "4.00"}, "Completeness": {"rating": "2.00"}}\n```'
    assert item_f1({"predicted_answer": "x", "score": fenced}) == pytest.approx(2 * 8 / 6)
    split = ['{"Correctness": {"rating": "3"}}', '{"Completeness": {"rating": "3"}}', "junk"]
    assert item_f1({"predicted_answer": "x", "score": split}) == pytest.approx(3.0)
    assert item_f1({"predicted_answer": "", "score": fenced}) == 0.0
    assert item_f1({"predicted_answer": "x", "score": '{"Correctness": {"rating": "4"}}'}) == 0.0


def test_ties_are_skipped(tmp_path):
    rows = [
        {"id": "q1", "part_idx": 0, "file_a": "x", "file_b": "y", "better": "x"},
        {"id": "q2", "part_idx": 0, "file_a": "x", "file_b": "y", "better": "Tie"},
        {"id": "q3", "part_idx": 0, "file_a": "y", "file_b": "x", "better": "x"},
    ]
    path = tmp_path / "pairs.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pairs = load_pairwise(path)
    bt = bradley_terry(pairs)
    assert bt["x"] > bt["y"]
    scores = {
        "x": {"q1_0": 4.0, "q2_0": 0.0, "q3_0": 3.0},
        "y": {"q1_0": 3.0, "q2_0": 5.0, "q3_0": 2.0},
    }
    # The judge ranks x above y on both decisive items (q1: a=x wins by 1, q3: a=y loses by
    # 1): AUC 1; counting the tie q2 (margin -5) as a win for a would lower it.
    assert pairwise_auc(pairs, scores) == 1.0
    assert math.isnan(pairwise_auc(pairs[:2], scores))  # one class only


def test_bad_pairwise_line_is_named(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(
        '{"id": "q1", "part_idx": 0, "file_a": "x", "file_b": "y", "better": "x"}\n'
        '{"id": "q2", "part_idx": 0, "file_a": "x"}\n',
        encoding="utf-8",
    )
    with pytest.raises(DataError, match=r"pairs.json:2: missing field 'file_b'"):
        load_pairwise(path)
    with pytest.raises(DataError, match="judge folder not found"):
        consistency_table(DEMO / "pairwise_demo.json", [tmp_path / "nope"])
