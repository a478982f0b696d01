"""RPC-Bench's official protocol, read from a checkout of the RPC-Bench repository.

``--protocol official --rpc-bench DIR`` makes a run comparable with published numbers: the
answer prompts come from ``DIR/llm.py`` and the three judge prompts from ``DIR/prompt.py``,
read by parsing their Python literals with `ast` (the files are never imported or run), and
the rules follow ``DIR/eval.py``:

- full papers live at ``<papers>/<id>/<id>.md`` (default ``DIR/benchmark/md/test``);
- a claim answer is a verdict only when it is exactly ``True`` or ``False`` (no trimming, no
  case folding); anything else is left out of the accuracy;
- a judge reply is read as eval.py reads it: the text between the first `````json`` and the
  last ````` `` when it has such a fence (stray LaTeX backslashes doubled), else the whole
  reply, parsed as JSON; an item's three replies are merged in eval.py's call order (a later
  key wins) and ``{"<Dimension>": {"rating": x}}`` gives ``float(x)``, with no range check.
  Empty answers are judged too.

Where eval.py would stop with an exception (a reply that is not JSON), the judge re-asks
(``--max-retries``) and a rating still unreadable counts 0.00, as eval.py counts a missing
one; the record lists it in ``failed``. Averaging (per judge, then across judges, from the
means) is `scores.score_run`, which already computes it as eval.py does.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posttrain.data.io import DataError, read_text
from posttrain.eval.rpc.data import CLAIM
from posttrain.models.chat.base import Conversation

PROMPTS_FILE = "prompt.py"
ANSWERS_FILE = "llm.py"
PAPERS_DIR = Path("benchmark") / "md" / "test"
JUDGE_USER = "user_prompt_augment"
JUDGE_SYSTEM = {
    "Conciseness": "system_prompt_conciseness_augment",
    "Completeness": "system_prompt_completeness_augment",
    "Correctness": "system_prompt_correctness_augment",
}
JUDGE_ORDER = ("Conciseness", "Completeness", "Correctness")  # the order eval.py asks in
TEMPLATE_NAME = "prompt_template"  # the variable llm.py assigns both answer prompts to


def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(read_text(path), filename=str(path))
    except SyntaxError as err:
        raise DataError(f"{path}:{err.lineno}: not valid Python: {err.msg}") from None


def _string(node: ast.AST, path: Path, name: str) -> str:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        value = None
    if not isinstance(value, str):
        raise DataError(f"{path}:{node.lineno}: {name} is not a string literal")
    return value


def module_strings(path: Path, names: list[str]) -> dict[str, str]:
    """The string literals assigned at module level to each of ``names`` in ``path``."""
    found: dict[str, str] = {}
    for node in _parse(path).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in names:
                found[target.id] = _string(node.value, path, target.id)
    missing = [n for n in names if n not in found]
    if missing:
        raise DataError(f"{path}: no module-level string assignment to {missing[0]!r}")
    return found


def _is_claim_test(test: ast.AST) -> ast.cmpop | None:
    """The operator of a test ``<x> == / != "Claim_Verification"``, else None."""
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        sides = [test.left, *test.comparators]
        if any(isinstance(s, ast.Constant) and s.value == CLAIM for s in sides):
            return test.ops[0]
    return None


def _template_in(body: list[ast.stmt], path: Path) -> str | None:
    for node in body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == TEMPLATE_NAME for t in node.targets
        ):
            return _string(node.value, path, TEMPLATE_NAME)
    return None


def answer_templates(path: Path) -> tuple[str, str]:
    """``(open question template, claim template)`` from llm.py's branch on the category."""
    for node in ast.walk(_parse(path)):
        if not isinstance(node, ast.If):
            continue
        op = _is_claim_test(node.test)
        if not isinstance(op, ast.Eq | ast.NotEq):
            continue
        first, second = _template_in(node.body, path), _template_in(node.orelse, path)
        if first is None or second is None:
            raise DataError(
                f"{path}:{node.lineno}: both branches of the {CLAIM!r} test must assign "
                f"{TEMPLATE_NAME}"
            )
        return (first, second) if isinstance(op, ast.NotEq) else (second, first)
    raise DataError(f"{path}: no `if ... category ... {CLAIM!r}` choosing {TEMPLATE_NAME}")


def _check_fields(template: str, fields: set[str], where: str) -> None:
    try:
        template.format(**dict.fromkeys(fields, ""))
    except (KeyError, IndexError, ValueError) as err:
        raise DataError(f"{where}: template needs fields {sorted(fields)}: {err!r}") from None


# --- eval.py's rules -----------------------------------------------------------------------

_FENCE = re.compile(r"```json(.*)```", re.DOTALL)
# A backslash that is not already escaped and does not start \b \f \n \r \t \u \\ \" \'
_LATEX = re.compile(r"(?<!\\)\\(?![bfnrtu\\\"'])")


def reply_content(reply: str) -> dict[str, Any] | None:
    """A judge reply parsed as eval.py parses it, or None where eval.py would raise."""
    if reply == "":
        return {}
    body = reply
    if "```json" in body:
        match = _FENCE.search(body)
        if match is None:
            return None
        body = _LATEX.sub(r"\\\\", match.group(1))
    try:
        content = json.loads(body, strict=False)
    except json.JSONDecodeError:
        return None
    return content if isinstance(content, dict) else None


def read_rating(reply: Any, dimension: str) -> float | None:
    """``float(content[dimension]["rating"])`` of one reply, or None when unreadable."""
    content = reply_content(reply) if isinstance(reply, str) else None
    return _rating(content or {}, dimension)


def _rating(content: dict[str, Any], dimension: str) -> float | None:
    block = content.get(dimension)
    if not isinstance(block, dict) or "rating" not in block:
        return None
    try:
        return float(block["rating"])
    except (TypeError, ValueError):
        return None


def merged_ratings(replies: list[str]) -> dict[str, float | None]:
    """eval.py's ratings of one item: its replies' JSON merged in call order (a later key
    wins), then ``float(content[dim]["rating"])`` per dimension (None: unreadable, counts 0).
    A reply that is not JSON adds nothing (eval.py would stop there)."""
    content: dict[str, Any] = {}
    for reply in replies:
        parsed = reply_content(reply) if isinstance(reply, str) else None
        content.update(parsed or {})
    return {dim: _rating(content, dim) for dim in JUDGE_ORDER}


def claim_verdict(text: str) -> str | None:
    """eval.py's claim rule: the reply itself when it is exactly True or False."""
    return text if text in ("True", "False") else None


def paper_text(papers_dir: str | Path, paper_id: str) -> str:
    """The full paper at ``<papers_dir>/<id>/<id>.md``, the only layout llm.py reads."""
    path = Path(papers_dir) / paper_id / f"{paper_id}.md"
    if not path.is_file():
        raise DataError(f"no full text for paper {paper_id!r}: expected {path}")
    return path.read_text(encoding="utf-8")


@dataclass(frozen=True)
class OfficialPrompts:
    """The templates of one RPC-Bench checkout."""

    checkout: Path
    open_answer: str
    claim_answer: str
    judge_user: str
    judge_system: dict[str, str]

    @property
    def papers_dir(self) -> Path:
        return self.checkout / PAPERS_DIR

    def conversation(self, item: dict[str, Any]) -> Conversation:
        """llm.py's single user turn: the category's template over the full paper."""
        template = self.claim_answer if item["category"] == CLAIM else self.open_answer
        text = template.format(question=item["question"], content=item["context"])
        return [{"role": "user", "content": text}]

    def judge_conversation(
        self, item: dict[str, Any], predicted: str, dimension: str
    ) -> Conversation:
        """eval.py's messages: the dimension's system prompt as is, the formatted user turn."""
        user = self.judge_user.format(
            title=item["title"],
            abstract=item["abstract"],
            question=item["question"],
            reference_answer=item["reference_answer"],
            predicted_answer=predicted,
        )
        return [
            {"role": "system", "content": self.judge_system[dimension]},
            {"role": "user", "content": user},
        ]


def load_official(checkout: str | Path) -> OfficialPrompts:
    """Read the templates of the RPC-Bench checkout ``checkout``; errors name file and line."""
    checkout = Path(checkout)
    if not checkout.is_dir():
        raise DataError(f"--rpc-bench: not a folder: {checkout}")
    prompts_path, answers_path = checkout / PROMPTS_FILE, checkout / ANSWERS_FILE
    for path in (prompts_path, answers_path):
        if not path.is_file():
            raise DataError(f"--rpc-bench {checkout}: missing {path.name} (an RPC-Bench checkout?)")
    strings = module_strings(prompts_path, [JUDGE_USER, *JUDGE_SYSTEM.values()])
    open_answer, claim_answer = answer_templates(answers_path)
    judge_fields = {"title", "abstract", "question", "reference_answer", "predicted_answer"}
    _check_fields(strings[JUDGE_USER], judge_fields, f"{prompts_path}: {JUDGE_USER}")
    for template in (open_answer, claim_answer):
        _check_fields(template, {"question", "content"}, f"{answers_path}: {TEMPLATE_NAME}")
    return OfficialPrompts(
        checkout=checkout.resolve(),
        open_answer=open_answer,
        claim_answer=claim_answer,
        judge_user=strings[JUDGE_USER],
        judge_system={dim: strings[name] for dim, name in JUDGE_SYSTEM.items()},
    )
