"""Grader of tabular_classification: accuracy of a predictions CSV on hidden labels (standard
library only)."""

import csv
import io
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_BYTES = 8 << 20


class Invalid(Exception):
    """The submission breaks the format; the message names how."""


def _labels(private):
    with open(private / "test_labels.csv", encoding="utf-8", newline="") as file:
        return {row["id"]: row["label"] for row in csv.DictReader(file)}


def _predictions(path, expected_ids):
    data = Path(path).read_bytes()
    if len(data) > MAX_BYTES:
        raise Invalid(f"file too large: {len(data)} bytes (at most {MAX_BYTES})")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("malformed file: not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != ["id", "label"]:
        raise Invalid(f"the header must be 'id,label', got {','.join(header or [])[:60]!r}")
    predictions = {}
    for number, row in enumerate(reader, 2):
        if not row:
            continue
        if len(row) != 2:
            raise Invalid(f"line {number}: expected 2 fields (id,label), got {len(row)}")
        row_id, value = row[0].strip(), row[1].strip()
        if row_id in predictions:
            raise Invalid(f"line {number}: duplicate id {row_id}")
        if row_id not in expected_ids:
            raise Invalid(f"line {number}: id {row_id[:30]} is not a test id")
        if value not in ("0", "1"):
            raise Invalid(f"line {number}: label {value[:30]!r} is not 0 or 1")
        predictions[row_id] = value
    missing = [i for i in expected_ids if i not in predictions]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise Invalid(f"missing predictions for {len(missing)} test ids: {shown}")
    return predictions


def grade_submission(path, ctx):
    """{"score": accuracy, "valid", "message", "correct", "total"}; score None when invalid."""
    labels = _labels(Path(ctx.get("private_dir") or HERE))
    try:
        predictions = _predictions(path, labels)
    except Invalid as err:
        return {"score": None, "valid": False, "message": str(err)}
    except OSError as err:
        return {"score": None, "valid": False, "message": f"cannot read the submission: {err}"}
    correct = sum(predictions[i] == label for i, label in labels.items())
    accuracy = correct / len(labels)
    return {
        "score": accuracy,
        "valid": True,
        "message": f"valid: accuracy {accuracy:.4f} ({correct} of {len(labels)} correct)",
        "correct": correct,
        "total": len(labels),
    }


def is_better(new, old):
    """A valid result beats an invalid or missing one; between valid ones the higher accuracy."""
    if not new or not new.get("valid"):
        return False
    if not old or not old.get("valid"):
        return True
    return new["score"] > old["score"]
