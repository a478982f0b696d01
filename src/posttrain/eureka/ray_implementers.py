"""Implementers as Ray tasks, so K coding-agent sessions can spread over a cluster's machines.

Each task builds its own chat model (from the agent spec, or the model object itself, shipped
by Ray's serialiser) and runs `implementer.run_job`. The run's state stays with the loop's
process: a task sends what it does through a Ray queue, `("event", ...)` for the event log
and `("usage", ...)` / `("error", ...)` for every model call, and the loop applies them to
its state files and its `Budget` while it waits, so the monitor is live and the accounting
is the same as with threads. What a task needs of the run's files it reads from disk: the
approach's workspace (written there by the task) and the control folder (pause, stop), so
the workers must see the run directory at the same path (one machine, or a shared file
system across a cluster, as with any Ray job that writes files).

Two things differ from threads, both on the cautious side: a task's prompts show the budget
as it stood when its round began plus its own spending, not its siblings' spending in flight
(the cost limit is enforced at round boundaries either way); and a worker that dies (killed,
out of memory) ends its approach with "failed: worker died", never the run. The grader's
token goes to the workers' processes, which are trusted; it never enters an approach's jail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posttrain.eureka.budget import Budget, TrackedChat
from posttrain.eureka.implementer import ImplementJob, run_job
from posttrain.eureka.prices import load_prices
from posttrain.eureka.problem import load_problem
from posttrain.ray_runtime import ensure_ray

POLL_SECONDS = 0.2
PAUSE_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None
    """A cluster's address; None starts a local runtime."""
    cpus_per_task: float = 1.0
    local_cpus: int | None = None
    """CPUs of a local runtime (None: all of this machine's)."""


@dataclass(frozen=True)
class _WorkerContext:
    problem_dir: str
    agent: Any
    """A chat spec (str) or a chat model object."""
    agent_options: dict
    prices: str | None
    cost_limit: float | None
    spent_before: float
    stage_seconds: float | None
    """What was left of the implement stage's time limit when the task was sent."""
    control_dir: str


class _ForwardingBudget(Budget):
    """A task's budget: counts its own calls (for its prompts and its stage clock) and sends
    each one to the loop, whose Budget is the run's."""

    def __init__(self, context: _WorkerContext, queue: Any) -> None:
        limits = {"implement": context.stage_seconds} if context.stage_seconds else {}
        super().__init__(context.cost_limit, limits)
        self._before = context.spent_before
        self._queue = queue

    def record(
        self,
        stage: str,
        model: str,
        tokens_in: int,
        tokens_out: int,
        cost_usd: float,
        *,
        cached: bool = False,
        estimated: bool = False,
    ) -> None:
        super().record(
            stage, model, tokens_in, tokens_out, cost_usd, cached=cached, estimated=estimated
        )
        self._queue.put(("usage", stage, model, tokens_in, tokens_out, cost_usd, cached, estimated))

    def record_error(self, stage: str, model: str) -> None:
        super().record_error(stage, model)
        self._queue.put(("error", stage, model))

    def spent(self) -> float:
        return self._before + super().spent()


def _run_task(job: ImplementJob, context: _WorkerContext, queue: Any) -> dict:
    """The body of one Ray task (runs in a worker process)."""
    problem = load_problem(context.problem_dir)
    if isinstance(context.agent, str):
        import posttrain.eureka.scripted  # noqa: F401  (registers scripted:eureka-agent)
        from posttrain.models.chat.spec import load_chat

        model = load_chat(context.agent, **context.agent_options)
    else:
        model = context.agent
    budget = _ForwardingBudget(context, queue)
    prices = load_prices(context.prices) if context.prices else None
    chat = TrackedChat(model, budget, "implement", prices)
    control = Path(context.control_dir)

    def events(kind: str, message: str, score: float | None, valid: bool | None = None) -> None:
        queue.put(("event", job.approach, kind, message, score, valid))

    with budget.stage("implement") as clock:

        def between_steps() -> bool:
            while (control / "pause").exists() and not (control / "stop").exists():
                time.sleep(PAUSE_POLL_SECONDS)  # the loop reports the pause
            return not clock.over and not (control / "stop").exists()

        return run_job(job, problem, chat, budget, events=events, between_steps=between_steps)


def run_jobs_on_ray(
    jobs: Sequence[ImplementJob],
    *,
    settings: RaySettings,
    problem_dir: str | Path,
    agent: Any,
    agent_options: dict,
    prices: str | None,
    budget: Budget,
    control_dir: str | Path,
    on_event: Callable[..., None],
    while_waiting: Callable[[], Any] = lambda: None,
) -> list[dict]:
    """Run `jobs` as Ray tasks; returns their results in order. `on_event(approach, kind,
    message, score, valid)` and `budget` see everything the tasks report, as it happens;
    `while_waiting()` is called between polls (the loop reports pauses there)."""
    ensure_ray(settings.address, settings.local_cpus)
    import ray
    from ray.util.queue import Queue

    clock = budget.active_stage("implement")
    context = _WorkerContext(
        problem_dir=str(problem_dir),
        agent=agent,
        agent_options=dict(agent_options),
        prices=prices,
        cost_limit=budget.cost_limit_usd,
        spent_before=budget.spent(),
        stage_seconds=None if clock is None else clock.remaining,
        control_dir=str(control_dir),
    )
    queue = Queue()
    task = ray.remote(num_cpus=settings.cpus_per_task, max_retries=0)(_run_task)
    refs = [task.remote(job, context, queue) for job in jobs]

    def drain() -> None:
        for item in queue.get_nowait_batch(queue.qsize()):
            if item[0] == "event":
                on_event(*item[1:])
            elif item[0] == "usage":
                stage, model, tokens_in, tokens_out, cost, cached, estimated = item[1:]
                budget.record(
                    stage, model, tokens_in, tokens_out, cost, cached=cached, estimated=estimated
                )
            else:
                budget.record_error(*item[1:])

    try:
        pending = list(refs)
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_SECONDS)
            drain()
            while_waiting()
        drain()  # a task's puts are done before it returns: nothing is left behind
        results = []
        for job, ref in zip(jobs, refs, strict=True):
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayError as err:  # its approach fails, not the run
                results.append(_failed(job, err))
        return results
    finally:
        ray.kill(queue.actor)


def _failed(job: ImplementJob, error: Exception) -> dict:
    """The result of a task that never returned one: its worker died, or the task could not
    start there (the agent's model could not be built or shipped)."""
    import ray

    if isinstance(error, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
        why = f"worker died ({type(error).__name__})"
    else:
        cause = getattr(error, "cause", None) or error
        lines = str(cause).strip().splitlines()
        why = f"{type(cause).__name__}: {lines[-1] if lines else ''}"
    return {
        "approach": job.approach,
        "submissions": 0,
        "score": None,
        "valid": False,
        "git_hash": None,
        "ended": f"failed: {why}",
    }
