"""`scripted:sustain-solver`: a deterministic stand-in model that shows interference honestly.

It is NOT an LLM (see `SOLVER_LABEL`). It solves the generated math by computing it, answers
the QA by following the relation chain through the facts in the prompt, and for HumanEval
returns the problem's canonical solution: ORACLE code answers, marked in every code answer by
a first comment line. It recognises the constraints `constraints.describe` writes and tries to
follow them, by two documented mechanisms that can break the task:

- Effort. The solver has `BUDGET` effort units; every recognised constraint costs `COST`
  (counting constraints 2, others 1). It performs at most that many reasoning steps (math
  operations, QA hops, code in units of 4 lines): a harder item under more constraints is cut
  short and answered with the intermediate result. This is a simulation of the interference
  SustainScore measures in real models, not a claim about how they work.
- Literal compliance. It edits its draft to comply: removes forbidden words, characters and
  commas, lowercases, appends keywords and phrases, and under a word or line limit stops
  `MARGIN_WORDS` words or `MARGIN_LINES` lines short of it (a safety margin, as it cannot
  count while it writes), which can cut off a final answer written at the end (math) or the
  end of a function (code).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from posttrain.data.kg import RELATION_TEXT
from posttrain.eval.sustain import code_task, math_task, qa_task
from posttrain.eval.sustain.constraints import CONSTRAINT_HEADER, Spec
from posttrain.models.chat.base import Conversation
from posttrain.models.chat.scripted import ScriptedChat, last_user_message, register_script

SOLVER = "sustain-solver"
SOLVER_LABEL = (
    "scripted:sustain-solver (deterministic rule-based solver, not an LLM; oracle code answers "
    "from HumanEval canonical solutions; simulated effort budget per recognised constraint)"
)
ORACLE_MARK = "# oracle code answer: HumanEval canonical solution"
BUDGET = 6
COST = {
    "length_constraints:number_words": 2,
    "length_constraints:number_sentences": 2,
    "length_constraints:number_blank_line_paragraphs": 2,
    "length_constraints:number_lines": 2,
}
MARGIN_WORDS, MARGIN_LINES = 3, 2

# The constraint descriptions it recognises (the wording of `constraints.describe`).
_RECOGNISE: list[tuple[str, Callable[[re.Match[str]], Spec]]] = [
    (
        r"^Answer with at most (\d+) words\.$",
        lambda m: {"id": "length_constraints:number_words", "num_words": int(m[1])},
    ),
    (
        r"^Answer with at most (\d+) sentences\.$",
        lambda m: {"id": "length_constraints:number_sentences", "num_sentences": int(m[1])},
    ),
    (
        r"^Write exactly (\d+) paragraphs",
        lambda m: {
            "id": "length_constraints:number_blank_line_paragraphs",
            "num_paragraphs": int(m[1]),
        },
    ),
    (
        r"^Write at most (\d+) non-empty lines\.$",
        lambda m: {"id": "length_constraints:number_lines", "num_lines": int(m[1])},
    ),
    (
        r"^Include the keywords '(.+)' in your answer\.$",
        lambda m: {"id": "keywords:existence", "keywords": [m[1]]},
    ),
    (
        r"^Do not use the words '(.+)'\.$",
        lambda m: {"id": "keywords:forbidden_words", "forbidden_words": [m[1]]},
    ),
    (r"^Do not use any commas", lambda m: {"id": "punctuation:no_comma"}),
    (
        r"^Do not use the character '(.)'",
        lambda m: {"id": "punctuation:forbidden_character", "character": m[1]},
    ),
    (
        r"^End your answer with the exact phrase '(.+)'\.$",
        lambda m: {"id": "startend:end_checker", "end_phrase": m[1]},
    ),
    (
        r"^Start your answer with the exact phrase '(.+)'\.$",
        lambda m: {"id": "startend:start_checker", "start_phrase": m[1]},
    ),
    (r"^Write your entire answer in lowercase", lambda m: {"id": "change_case:english_lowercase"}),
    (
        r"^Put your final answer in \\boxed\{\}",
        lambda m: {"id": "detectable_format:answer_format", "format": "boxed"},
    ),
    (
        r"^Give the final answer on a line starting with 'Answer: '",
        lambda m: {"id": "detectable_format:answer_format", "format": "answer_line"},
    ),
    (r"^Name the function `(\w+)`", lambda m: {"id": "code:function_name", "name": m[1]}),
    (r"^Do not import any modules", lambda m: {"id": "code:no_imports"}),
]


def split_prompt(text: str) -> tuple[str, list[Spec]]:
    """The task text and the constraints recognised in the inserted block."""
    task, _, block = text.partition("\n\n" + CONSTRAINT_HEADER + "\n")
    found = []
    for line in block.splitlines():
        line = line.removeprefix("- ").strip()
        for pattern, build in _RECOGNISE:
            if match := re.search(pattern, line):
                found.append(build(match))
                break
    return task, found


def effort(specs: list[Spec]) -> int:
    return max(1, BUDGET - sum(COST.get(s["id"], 1) for s in specs))


# --- drafting: solving with a given effort -------------------------------------------------


def solve_math(task: str, steps: int) -> str:
    problem = task.split("\n\n", 1)[-1]
    sentences = re.split(r"(?<=[.?])\s+", problem)
    head = re.match(r"(\w+) has (\d+) (\w+)\.", sentences[0])
    if head is None:
        return "I cannot read this problem."
    name, value, things = head[1], int(head[2]), head[3]
    lines = [f"{name} starts with {value} {things}."]
    done = 0
    for sentence in sentences[1:]:
        for kind, (_, pattern) in math_task.OPERATIONS.items():
            if (match := re.search(pattern, sentence)) is None:
                continue
            if done == steps:
                break
            args = [int(g) for g in match.groups()]
            new = math_task.apply(kind, value, args)
            lines.append(f"After step {done + 1} the count is {new}.")
            value, done = new, done + 1
            break
    return "\n".join(lines) + f"\n\nThe answer is \\boxed{{{value}}}."


_PHRASES = sorted(RELATION_TEXT.values(), key=len, reverse=True)


def solve_qa(task: str, hops: int) -> str:
    facts: dict[tuple[str, str], str] = {}
    for line in re.findall(r"(?m)^- (.+)\.$", task):
        for phrase in _PHRASES:
            head, sep, tail = line.partition(f" {phrase} ")
            if sep:
                facts[(head, phrase)] = tail
                break
    start = re.search(r"Starting from (.+?), which entity", task)
    chain = re.findall(r"'([^']+)'", task.rsplit("in order:", 1)[-1])
    if start is None:
        return "Answer: unknown"
    current, used = start[1], []
    for phrase in chain[:hops]:
        tail = facts.get((current, phrase))
        if tail is None:
            break
        used.append(f"{current} {phrase} {tail}.")
        current = tail
    return f"Answer: {current}\n" + " ".join(used)


@functools.cache
def _oracle_by_prompt() -> dict[str, str]:
    return {p["prompt"]: p["canonical_solution"] for p in code_task.problems().values()}


def solve_code(task: str, units: int) -> str:
    match = re.search(r"```python\n(.*)```", task, re.DOTALL)
    solution = _oracle_by_prompt().get(match[1]) if match else None
    if solution is None:
        return "I can only answer HumanEval problems (oracle)."
    lines = solution.splitlines(keepends=True)
    needed = max(1, -(-code_task.body_lines(solution) // 4))
    if units < needed:  # out of effort: only the first part of the body gets written
        lines = lines[: len(lines) * units // needed]
    return f"```python\n{ORACLE_MARK}\n{match[1]}{''.join(lines)}```"


# --- complying: literal edits --------------------------------------------------------------


def _cut_words(text: str, limit: int) -> str:
    """The text up to its `limit`-th word (words as IFEval counts them: runs of `\\w`)."""
    ends = [m.end() for m in re.finditer(r"\w+", text)]
    return text if len(ends) <= limit else text[: ends[limit - 1]] if limit > 0 else ""


def comply(text: str, specs: list[Spec]) -> str:
    """Edit a draft towards the constraints: content edits, additions, then length limits."""
    by_id = {s["id"]: s for s in specs}
    for spec in specs:
        if spec["id"] == "keywords:forbidden_words":
            for word in spec["forbidden_words"]:
                text = re.sub(rf"(?i)(?<!\w){re.escape(word)}(?!\w)", "", text)
        elif spec["id"] == "punctuation:forbidden_character":
            text = text.replace(spec["character"], "")
    if "punctuation:no_comma" in by_id:
        text = text.replace(",", "")
    if "change_case:english_lowercase" in by_id:
        text = text.lower()
    if spec := by_id.get("keywords:existence"):
        text += "\n\nKeywords: " + " ".join(spec["keywords"])
    if (
        (spec := by_id.get("detectable_format:answer_format"))
        and spec["format"] == "boxed"
        and "\\boxed{" not in text
    ):
        numbers = re.findall(r"-?\d+", text)
        text += f"\n\n\\boxed{{{numbers[-1] if numbers else ''}}}"
    if (spec := by_id.get("startend:start_checker")) and not text.startswith(spec["start_phrase"]):
        text = f"{spec['start_phrase']} {text}"
    if (spec := by_id.get("startend:end_checker")) and not text.rstrip().endswith(
        spec["end_phrase"]
    ):
        text = f"{text.rstrip()} {spec['end_phrase']}"
    if spec := by_id.get("length_constraints:number_blank_line_paragraphs"):
        parts = re.split(r"\n\s*\n", text.strip())
        keep = max(1, int(spec["num_paragraphs"]))
        text = "\n\n".join(parts[: keep - 1] + [" ".join(parts[keep - 1 :])])
    if spec := by_id.get("length_constraints:number_sentences"):
        sentences = re.split(r"(?<=[.!?])\s+", text.strip())
        text = " ".join(sentences[: int(spec["num_sentences"])])
    if spec := by_id.get("length_constraints:number_words"):
        text = _cut_words(text, int(spec["num_words"]) - MARGIN_WORDS)
    if spec := by_id.get("length_constraints:number_lines"):
        kept, lines = 0, []
        for line in text.splitlines():
            kept += bool(line.strip())
            if kept > int(spec["num_lines"]) - MARGIN_LINES:
                break
            lines.append(line)
        text = "\n".join(lines)
    return text


def respond(conversation: Conversation) -> str:
    task, specs = split_prompt(last_user_message(conversation))
    units = effort(specs)
    if task.startswith(math_task.MATH_INSTRUCTION):
        draft = solve_math(task, units)
    elif task.startswith(qa_task.QA_INSTRUCTION):
        draft = solve_qa(task, units)
    elif task.startswith(code_task.CODE_INSTRUCTION):
        draft = solve_code(task, units)
    else:
        draft = "I only answer SustainScore tasks."
    return comply(draft, specs)


def sustain_solver() -> ScriptedChat:
    return ScriptedChat(SOLVER, default=respond)


register_script(SOLVER, sustain_solver, replace=True)
