"""One implementer session as a job that runs wherever the loop sends it: a thread of the
loop's process, or a Ray worker (`ray_implementers`).

`ImplementJob` is everything a session needs, in plain values, so that it pickles: the
approach's workspace (already a git repository), the grader's address and token, the turn
and command bounds. `run_job` runs the agent over the workspace's tools and returns the
approach's result; what happens meanwhile (commands, submissions, gradings) goes to
`events`, and the money to the `budget` the chat is tracked in. Nothing here writes the
run's state files: the loop, in its own process, does that from the events and the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from posttrain.eureka import agents
from posttrain.eureka.budget import Budget, StageTimeExceeded
from posttrain.eureka.problem import Problem
from posttrain.eureka.tools import WorkspaceTools
from posttrain.models.chat.base import ChatModel


@dataclass(frozen=True)
class ImplementJob:
    round: int
    approach: str
    proposal: dict
    """`agents.Proposal.to_dict()`."""
    workspace: str
    grader_url: str
    grader_token: str
    results_dir: str
    max_turns: int
    command_seconds: float


def _better(new: dict, old: dict, direction: str) -> bool:
    return new["score"] < old["score"] if direction == "min" else new["score"] > old["score"]


def run_job(
    job: ImplementJob,
    problem: Problem,
    chat: ChatModel,
    budget: Budget,
    *,
    events: Callable[..., None] | None = None,
    between_steps: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run the session; returns {approach, submissions, score, valid, git_hash, ended}: the
    best valid submission's score (else the last one's). An agent's failure ends its
    session, never the run."""
    tools = WorkspaceTools(
        job.workspace,
        job.approach,
        job.round,
        grader_url=job.grader_url,
        grader_token=job.grader_token,
        submission_file=problem.submission_file,
        results_dir=job.results_dir,
        command_limits={"wall_seconds": job.command_seconds},
        events=events,
    )
    try:
        outcome = agents.implement(
            chat,
            tools,
            problem,
            agents.Proposal(**job.proposal),
            budget,
            max_turns=job.max_turns,
            between_steps=between_steps,
        )
        ended = outcome.summary
    except StageTimeExceeded as err:
        ended = str(err)
    except Exception as err:  # one approach's failure never ends the run
        ended = f"failed: {type(err).__name__}: {err}"
    best = None
    for record in tools.submissions:
        if record.get("valid") and (best is None or _better(record, best, problem.direction)):
            best = record
    last = best or (tools.submissions[-1] if tools.submissions else None)
    return {
        "approach": job.approach,
        "submissions": len(tools.submissions),
        "score": None if last is None else last.get("score"),
        "valid": bool(last and last.get("valid")),
        "git_hash": None if last is None else last.get("git_hash"),
        "ended": ended,
    }
