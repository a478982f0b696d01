"""Grader of circle_packing_26: exact validity check, score = sum of radii (standard library only).

Numbers are converted from the decimal strings as written to `fractions.Fraction`, so the
tolerance rule of INSTRUCTION.md is decided exactly, with no float rounding on the way.
"""

import json
import re
from fractions import Fraction
from itertools import combinations
from pathlib import Path

COUNT = 26
TOLERANCE = Fraction(1, 10**6)
MAX_BYTES = 1 << 20
# Bounded mantissa and exponent: "1e999999999" would make Fraction build a gigantic integer.
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?")


class Invalid(Exception):
    """The submission breaks a rule; the message names it."""


def _number(text, where):
    text = str(text).strip()
    if len(text) > 100 or not NUMBER.fullmatch(text):
        raise Invalid(f"{where}: {text[:40]!r} is not a finite decimal number")
    return Fraction(text)


def _rows(text):
    """The raw (x, y, r) string triples of a text or JSON submission."""
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            # parse_float/parse_int keep the digits exactly as written.
            data = json.loads(text, parse_float=str, parse_int=str)
        except ValueError as err:
            raise Invalid(f"malformed JSON: {err}") from None
        if isinstance(data, dict):
            if "circles" not in data:
                raise Invalid('malformed JSON: an object needs the key "circles"')
            data = data["circles"]
        if not isinstance(data, list):
            raise Invalid("malformed JSON: expected a list of [x, y, r] triples")
        rows = []
        for i, item in enumerate(data, 1):
            if (
                not isinstance(item, list)
                or len(item) != 3
                or not all(isinstance(v, str) for v in item)
            ):
                raise Invalid(f"circle {i}: expected [x, y, r] with three numbers")
            rows.append((f"circle {i}", item))
        return rows
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.replace(",", " ").split()
        if len(fields) != 3:
            raise Invalid(f"line {number}: expected 'x y r', got {len(fields)} fields")
        rows.append((f"line {number}", fields))
    return rows


def parse(path):
    """The circles of the submission at `path` as exact (x, y, r) Fractions."""
    data = Path(path).read_bytes()
    if len(data) > MAX_BYTES:
        raise Invalid(f"file too large: {len(data)} bytes (at most {MAX_BYTES})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("malformed file: not UTF-8 text") from None
    circles = []
    for where, fields in _rows(text):
        circles.append(
            tuple(_number(v, f"{where}, {n}") for v, n in zip(fields, "xyr", strict=True))
        )
    return circles


def check(circles):
    """Raise Invalid naming the first rule `circles` break (rules 1-4 of INSTRUCTION.md)."""
    if len(circles) != COUNT:
        raise Invalid(f"wrong count: expected {COUNT} circles, got {len(circles)}")
    for i, (x, y, r) in enumerate(circles, 1):
        if r <= 0:
            raise Invalid(f"circle {i}: radius {float(r)} is not positive")
        if (
            x - r < -TOLERANCE
            or x + r > 1 + TOLERANCE
            or y - r < -TOLERANCE
            or y + r > 1 + TOLERANCE
        ):
            raise Invalid(f"circle {i} lies outside the unit square (tolerance 1e-6)")
    for (i, (xi, yi, ri)), (j, (xj, yj, rj)) in combinations(enumerate(circles, 1), 2):
        reach = ri + rj - TOLERANCE
        if reach > 0 and (xi - xj) ** 2 + (yi - yj) ** 2 < reach**2:
            raise Invalid(f"circles {i} and {j} overlap (tolerance 1e-6)")


def grade_submission(path, ctx):
    """{"score", "valid", "message", "exact_sum"}; score is None when invalid."""
    try:
        circles = parse(path)
        check(circles)
    except Invalid as err:
        return {"score": None, "valid": False, "message": str(err)}
    except OSError as err:
        return {"score": None, "valid": False, "message": f"cannot read the submission: {err}"}
    total = sum(r for _, _, r in circles)
    return {
        "score": float(total),
        "valid": True,
        "message": f"valid: {COUNT} circles, sum of radii {float(total):.9f}",
        "exact_sum": f"{total.numerator}/{total.denominator}",
    }


def is_better(new, old):
    """A valid result beats an invalid or missing one; between valid ones the larger sum wins."""
    if not new or not new.get("valid"):
        return False
    if not old or not old.get("valid"):
        return True
    return new["score"] > old["score"]
