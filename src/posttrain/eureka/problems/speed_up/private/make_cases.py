"""Regenerates cases.json (the hidden inputs of speed_up and their reference outputs).

Run from anywhere: `python make_cases.py`. Deterministic (fixed seed), standard library only.
"""

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 2026


def build():
    """The cases.json content: hidden inputs, expected outputs, timing settings."""
    namespace = {}
    exec((HERE / "reference.py").read_text(encoding="utf-8"), namespace)
    reference = namespace["count_inversions"]
    rng = random.Random(SEED)
    inputs = [[], [7], [1, 2], [2, 1], [5, 5, 5, 5], list(range(50)), list(range(50, 0, -1))]
    inputs.append([-3, 10**12, -(10**12), 0, 0, 4, -3])
    for n, low, high in ((300, -5, 5), (800, -1000, 1000), (1200, 0, 10**9), (2000, -50, 50)):
        inputs.append([rng.randint(low, high) for _ in range(n)])
    return {
        "inputs": inputs,
        "expected": [reference(values) for values in inputs],
        "timing": {"n": 1000, "repeats": 7, "pairs": 3, "low": -(10**6), "high": 10**6},
    }


def text():
    return json.dumps(build(), separators=(",", ":")) + "\n"


if __name__ == "__main__":
    (HERE / "cases.json").write_text(text(), encoding="utf-8")
