"""ChatModel-driven proposer and implementer of EurekAgent, talking a text tool-call protocol.

Any chat model can drive them (an OpenAI-compatible endpoint, local weights, the offline
`scripted:eureka-agent`): the protocol is plain text. The proposer answers one JSON object
`{"proposals": [{"title", "plan", "parent", "params"}, ...]}`; the implementer answers one
JSON action per turn, `{"tool": NAME, "args": {...}}` (tools of `posttrain.eureka.tools`, or
`done`), and gets the tool's answer back as the next user message. Replies are read with
`json_candidates` (fenced blocks, bare objects, Python-ish literals); an unreadable reply is
re-asked, and turns are bounded. Every call goes through the `TrackedChat` it is given, so
the budget counts it, and every prompt carries the remaining budget (`Budget.prompt_note`).
Machine-readable blocks (`CONTEXT_JSON:` / `PROPOSAL_JSON:` lines) sit in the prompts next
to the prose, for models and scripts alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from posttrain.eureka.budget import Budget
from posttrain.eureka.problem import Problem
from posttrain.eureka.tools import TOOL_NAMES, ToolError, WorkspaceTools
from posttrain.models.chat.base import ChatModel, GenerationParams
from posttrain.models.chat.replies import ask_parsed, json_candidates

DEFAULT_PARAMS = GenerationParams(max_tokens=4096, temperature=0.7)
OBSERVATION_CHARS = 6_000
CONTEXT_TAG = "CONTEXT_JSON: "
PROPOSAL_TAG = "PROPOSAL_JSON: "


class AgentError(RuntimeError):
    """The model never gave a usable answer."""


@dataclass
class Proposal:
    """One approach to try: a title, a plan in prose, the approach it builds on (its files
    are copied into the new workspace), and optional parameters the implementer may use."""

    title: str
    plan: str
    parent: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ImplementOutcome:
    """How one implementer session ended."""

    turns: int
    finished: bool
    """The agent said `done` (else: turns, the stage clock or a stop ended it)."""
    summary: str
    transcript: list[dict]
    unreadable: int = 0


TOOLS_HELP = """Tools (answer with exactly ONE JSON object per turn, nothing else needed):
{"tool": "list_files", "args": {"path": "."}}
{"tool": "read_file", "args": {"path": "FILE"}}
{"tool": "write_file", "args": {"path": "FILE", "content": "TEXT"}}
{"tool": "run_command", "args": {"command": "python solve.py"}}   (jailed, no network)
{"tool": "submit", "args": {"solution": "ONE LINE", "changed": "ONE LINE"}}
    (commits your workspace as a new version and grades the submission file)
{"tool": "feedback", "args": {}}   (the grader's records of your submissions)
{"tool": "done", "args": {"summary": "ONE LINE"}}"""


def _problem_section(problem: Problem) -> list[str]:
    """The problem's instruction and submission format, as both agents' prompts show them."""
    return [
        "# Problem",
        problem.instruction.strip(),
        "",
        "# Submission format",
        problem.submission_format.strip(),
        "",
    ]


def _parse_proposals(k: int) -> Callable[[str], list[Proposal] | None]:
    def parse(text: str) -> list[Proposal] | None:
        for value in json_candidates(text):
            items = value.get("proposals") if isinstance(value, dict) else value
            if not isinstance(items, list):
                continue
            found = []
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("title"), str):
                    continue
                params = item.get("params") if isinstance(item.get("params"), dict) else {}
                parent = item.get("parent") if isinstance(item.get("parent"), str) else None
                plan = item.get("plan") if isinstance(item.get("plan"), str) else ""
                found.append(Proposal(" ".join(item["title"].split()), plan, parent, params))
            if len(found) >= k:
                return found[:k]
        return None

    return parse


def proposer_prompt(
    problem: Problem, context: dict, notes: Sequence[str], budget_note: str, k: int
) -> str:
    """The proposer's prompt: the problem, what earlier rounds found, the person's notes."""
    lines = [
        f"You propose {k} different approaches for round {context['round']} of an automated "
        f"research loop on the problem {problem.name!r} (score direction: {problem.direction}).",
        "",
        *_problem_section(problem),
        f"# Budget\n{budget_note}",
    ]
    if context.get("approaches"):
        lines += ["", "# Approaches so far (name, round, title, score)"]
        for item in context["approaches"]:
            lines.append(
                f"- {item['name']} (round {item['round']}): {item.get('title', '')}"
                f" -> {item.get('score')}"
            )
    if notes:
        lines += ["", "# Notes from the person supervising this run (follow them)"]
        lines += [f"- {note}" for note in notes]
    lines += [
        "",
        f'Answer with one JSON object: {{"proposals": [ {k} items of {{"title": "...", '
        '"plan": "...", "parent": null or the name of an approach to build on, '
        '"params": {}}]}',
        CONTEXT_TAG + json.dumps({**context, "problem": problem.name, "k": k}, sort_keys=True),
    ]
    return "\n".join(lines)


def propose(
    chat: ChatModel,
    problem: Problem,
    context: dict,
    notes: Sequence[str],
    budget: Budget,
    k: int,
    retries: int = 2,
    params: GenerationParams = DEFAULT_PARAMS,
) -> list[Proposal]:
    """K proposals from the model (re-asked up to `retries` times when unreadable)."""
    prompt = proposer_prompt(problem, context, notes, budget.prompt_note("propose"), k)
    answer = ask_parsed(chat, [prompt], params, retries, _parse_proposals(k))[0]
    if answer.value is None:
        raise AgentError(
            f"no {k} readable proposals after {answer.attempts} tries: {answer.text[:200]!r}"
        )
    return answer.value


def parse_action(text: str) -> tuple[str, dict] | None:
    """The first `{"tool": ..., "args": {...}}` in a reply, or None."""
    for value in json_candidates(text):
        if isinstance(value, dict) and isinstance(value.get("tool"), str):
            args = value.get("args", {})
            if args is None:
                args = {}
            if isinstance(args, dict):
                return value["tool"], args
    return None


def implementer_prompt(problem: Problem, proposal: Proposal, approach: str, max_turns: int) -> str:
    lines = [
        f"You implement approach {approach!r} for the problem {problem.name!r} in your own "
        "workspace (a folder only you can see; the problem's public files are in it"
        + (
            f", with the files of approach {proposal.parent!r} you build on"
            if proposal.parent
            else ""
        )
        + ").",
        "",
        *_problem_section(problem),
        f"# Your proposal\n{proposal.title}\n{proposal.plan}",
        "",
        TOOLS_HELP,
        "",
        f"You have at most {max_turns} turns. Submit before you finish.",
        PROPOSAL_TAG
        + json.dumps(
            {
                **proposal.to_dict(),
                "approach": approach,
                "problem": problem.name,
                "submission_file": problem.submission_file,
            },
            sort_keys=True,
        ),
    ]
    return "\n".join(lines)


def implement(
    chat: ChatModel,
    tools: WorkspaceTools,
    problem: Problem,
    proposal: Proposal,
    budget: Budget,
    *,
    max_turns: int = 12,
    between_steps: Callable[[], bool] | None = None,
    params: GenerationParams = DEFAULT_PARAMS,
) -> ImplementOutcome:
    """Run one implementer session: model turn -> tool -> observation, until `done`, the
    turn bound, or `between_steps()` answering False (a stop, or the stage out of time)."""
    conversation: list[dict] = [
        {
            "role": "user",
            "content": implementer_prompt(problem, proposal, tools.approach, max_turns),
        }
    ]
    unreadable = 0
    for turn in range(1, max_turns + 1):
        if between_steps is not None and not between_steps():
            return ImplementOutcome(
                turn - 1, False, "stopped between steps", conversation, unreadable
            )
        reply = chat.chat([conversation], params)[0]
        text = reply.text if reply.choices else ""
        conversation.append({"role": "assistant", "content": text})
        action = parse_action(text)
        note = f"\n[budget: {budget.prompt_note('implement')}; turns left: {max_turns - turn}]"
        if action is None:
            unreadable += 1
            conversation.append(
                {
                    "role": "user",
                    "content": "I could not read one JSON action in your reply. Answer with "
                    'exactly one object like {"tool": "list_files", "args": {}}.' + note,
                }
            )
            continue
        tool, args = action
        if tool == "done":
            return ImplementOutcome(
                turn, True, str(args.get("summary", "")), conversation, unreadable
            )
        try:
            observation = tools.call(tool, args)
        except ToolError as err:
            observation = f"ERROR: {err}"
        if len(observation) > OBSERVATION_CHARS:
            observation = observation[:OBSERVATION_CHARS] + "\n[... cut]"
        conversation.append(
            {
                "role": "user",
                "content": f"Result of {tool}:\n{observation}{note}",
            }
        )
    return ImplementOutcome(max_turns, False, "turn limit reached", conversation, unreadable)


__all__ = [
    "TOOL_NAMES",
    "AgentError",
    "ImplementOutcome",
    "Proposal",
    "implement",
    "parse_action",
    "propose",
]
