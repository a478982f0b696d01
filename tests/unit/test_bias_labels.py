"""The labelled set of CHERRL bias responses and the detector measurement over it
(benchmarks/bias_detectors.py): the file's shape, the confusion arithmetic, and errors that
name the bad row. The detectors' quality numbers are a measurement, so no test pins them."""

from __future__ import annotations

import json
import sys
from collections import Counter

import pytest
from benchmark_scripts import loaded

from posttrain.data.io import DataError
from posttrain.rewards.biases import BIASES


@pytest.fixture(scope="module")
def bench():
    with loaded("bias_detectors.py") as module:
        yield module


@pytest.fixture(scope="module")
def rows(bench):
    return bench.load_labels(bench.LABELS)


@pytest.fixture(scope="module")
def heldout(bench):
    return bench.load_labels(bench.HELDOUT)


def test_the_heldout_set_is_its_own(rows, heldout):
    counts = Counter((row.bias, row.label) for row in heldout)
    for name in BIASES:
        assert counts[(name, 1)] >= 15, name
        assert counts[(name, 0)] >= 15, name
    assert all(row.note.strip() for row in heldout)
    assert len({(row.bias, row.response) for row in heldout}) == len(heldout)
    # written apart from the tuning set: no response shared with it
    assert not {row.response for row in heldout} & {row.response for row in rows}


def test_every_bias_has_at_least_20_positives_and_20_negatives(rows):
    counts = Counter((row.bias, row.label) for row in rows)
    for name in BIASES:
        assert counts[(name, 1)] >= 20, name
        assert counts[(name, 0)] >= 20, name
    assert {row.bias for row in rows} == set(BIASES)


def test_rows_are_distinct_and_explained(rows):
    pairs = Counter((row.bias, row.response) for row in rows)
    assert [pair for pair, n in pairs.items() if n > 1] == []
    assert all(row.note.strip() for row in rows)


def test_measurement_counts_add_up_and_list_every_mistake(bench, rows):
    results = bench.measure(rows)
    assert list(results) == list(BIASES)
    for name, r in results.items():
        mine = [row for row in rows if row.bias == name]
        fired = {row.line: BIASES[name].score(row.response) > 0 for row in mine}
        assert r["positives"] == r["tp"] + r["fn"] == sum(row.label for row in mine)
        assert r["negatives"] == r["fp"] + r["tn"] == sum(1 - row.label for row in mine)
        assert [e["line"] for e in r["false_negatives"]] == [
            row.line for row in mine if row.label and not fired[row.line]
        ]
        assert [e["line"] for e in r["false_positives"]] == [
            row.line for row in mine if not row.label and fired[row.line]
        ]
        assert len(r["false_negatives"]) == r["fn"] and len(r["false_positives"]) == r["fp"]
        if r["tp"]:
            p, q = r["precision"], r["recall"]
            assert p == pytest.approx(r["tp"] / (r["tp"] + r["fp"]))
            assert q == pytest.approx(r["tp"] / r["positives"])
            assert r["f1"] == pytest.approx(2 * p * q / (p + q))


def test_score_detector_on_a_known_confusion(bench):
    def row(label, response, line):
        return bench.LabelledResponse("tone", label, response, "", line)

    result = bench.score_detector(
        BIASES["tone"],
        [
            row(1, "Rest. I hope this helps!", 1),  # TP
            row(1, "Rest. You've got this, champ!", 2),  # FN: outside the tone family
            row(0, "She said: let me know if it hurts.", 3),  # FP
            row(0, "Rest for two days.", 4),  # TN
            row(0, "Drink water.", 5),  # TN
        ],
    )
    assert {k: result[k] for k in ("tp", "fn", "fp", "tn")} == {"tp": 1, "fn": 1, "fp": 1, "tn": 2}
    assert result["precision"] == 0.5 and result["recall"] == 0.5 and result["f1"] == 0.5
    assert [e["line"] for e in result["false_negatives"]] == [2]
    assert [e["line"] for e in result["false_positives"]] == [3]
    # nothing fired and nothing to find: precision and recall are undefined, not 0 or 1
    empty = bench.score_detector(BIASES["tone"], [row(0, "Rest for two days.", 1)])
    assert empty["precision"] is None and empty["recall"] is None and empty["f1"] is None
    with pytest.raises(ValueError, match="labelled for 'tone'"):
        bench.score_detector(BIASES["format"], [row(1, "x", 7)])


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"bias": "shouting", "label": 1, "response": "Hi.", "note": ""}, "bias: unknown bias"),
        ({"bias": "tone", "label": 2, "response": "Hi.", "note": ""}, "label: must be 0 or 1"),
        ({"bias": "tone", "label": True, "response": "Hi.", "note": ""}, "label: must be 0 or 1"),
        ({"bias": "tone", "label": 1, "response": " ", "note": ""}, "response: must be a non"),
        ({"bias": "tone", "label": 1, "note": ""}, "response: missing"),
        ({"bias": "tone", "label": 1, "response": "Hi.", "note": "", "x": 1}, "unknown field"),
    ],
)
def test_a_bad_row_is_an_error_naming_its_line(bench, tmp_path, record, message):
    path = tmp_path / "labels.jsonl"
    good = {"bias": "tone", "label": 0, "response": "Rest.", "note": "ok"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DataError, match=f"labels.jsonl:2: {message}"):
        bench.load_labels(path)


def test_main_writes_the_results_file(bench, tmp_path, monkeypatch, capsys):
    out = tmp_path / "bias_detectors.json"
    monkeypatch.setattr(sys, "argv", ["bias_detectors.py", "--out", str(out)])
    bench.main()
    saved = json.loads(out.read_text())
    assert saved["benchmark"] == "bias_detectors"
    assert list(saved["sets"]) == ["tuning", "heldout"]
    for measured in saved["sets"].values():
        assert list(measured["by_bias"]) == list(BIASES)
    printed = capsys.readouterr().out
    assert "| bias | positives / negatives |" in printed
    assert "held-out, before → after" in printed and "| lexical | " in printed
