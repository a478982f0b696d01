"""The EurekAgent loop: prepare -> propose K -> implement K in parallel -> grade -> rank -> next
round, until the rounds are done, the cost limit is reached (checked at round boundaries, so
work in flight is kept), or a person asks it to stop.

`run_eureka(config, run_dir)` starts the sealed grader service for the run, makes one git
repository per approach (`approaches/<name>`; a refinement starts from a copy of its parent's
files), runs the implementers (`implementer.run_job`, each with its own `WorkspaceTools`) in
threads, or as Ray tasks with `workers="ray"` (`ray_implementers`), and keeps the run
directory's state files (`run_state`). The same call on the same folder resumes: done rounds
are kept, proposals already made are not asked again, and a round cut short is redone with
fresh approach names (`-t2`), so every grader record still names a commit of its approach.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import InputError
from posttrain.eureka import agents, grader, history
from posttrain.eureka.budget import Budget, TrackedChat
from posttrain.eureka.grader_service import start_grader
from posttrain.eureka.implementer import ImplementJob, run_job
from posttrain.eureka.prices import load_prices
from posttrain.eureka.problem import Problem, load_problem, shipped_problems
from posttrain.eureka.run_state import RunState
from posttrain.models.chat.base import ChatModel

PAUSE_POLL_SECONDS = 0.5


@dataclass
class EurekaConfig:
    """A run's settings. `problem`: a folder or a shipped problem's name; `agent`: a chat
    model spec (`scripted:eureka-agent` offline); `cost_limit`: USD (None: none);
    `stage_seconds`: wall-clock limits of the "propose" / "implement" stages;
    `agent_options`: keyword arguments of the agent's backend (the scripted agent's
    `effort`); `prices`: a price table file (None: the shipped one)."""

    problem: str
    agent: str = "scripted:eureka-agent"
    k: int = 3
    rounds: int = 4
    cost_limit: float | None = 5.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    max_turns: int = 12
    command_seconds: float = 300.0
    agent_options: dict[str, Any] = field(default_factory=dict)
    prices: str | None = None
    workers: str = "threads"
    """Where implementers run: "threads" of this process, or "ray" tasks (`ray_implementers`;
    the workers must see the run directory)."""
    ray_address: str | None = None
    """workers "ray": a cluster's address; None starts a local runtime."""
    ray_cpus_per_task: float = 1.0

    def __post_init__(self) -> None:
        if self.workers not in ("threads", "ray"):
            raise ValueError(f'workers must be "threads" or "ray", got {self.workers!r}')
        for key in ("k", "rounds", "max_turns"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if not self.command_seconds > 0:
            raise ValueError(f"command_seconds must be > 0, got {self.command_seconds}")


def resolve_problem(name_or_dir: str | Path) -> Problem:
    """A problem folder, or the shipped problem of that name."""
    shipped = shipped_problems()
    return load_problem(shipped.get(str(name_or_dir), name_or_dir))


def _is_scripted(spec: str) -> bool:
    return spec.startswith("scripted:")


def _load_agent(config: EurekaConfig) -> ChatModel:
    import posttrain.eureka.scripted  # noqa: F401  (registers scripted:eureka-agent)
    from posttrain.models.chat.spec import load_chat

    return load_chat(config.agent, **config.agent_options)


def _copy_files(source: Path, target: Path) -> None:
    """Every file of `source` but its .git (and caches) into `target`."""
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if relative.parts[0] == ".git" or "__pycache__" in relative.parts:
            continue
        if path.is_symlink():  # an approach's symlink is never followed into another
            continue
        if path.is_dir():
            (target / relative).mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / relative)


class _Loop:
    def __init__(self, config: EurekaConfig, run_dir: Path, chat: ChatModel | None) -> None:
        self.config = config
        self.problem = resolve_problem(config.problem)
        self.state = RunState(run_dir)
        saved = {**asdict(config), "problem_dir": str(self.problem.dir)}
        self.state.check_config(saved, same=("problem_dir", "agent", "k", "seed"))
        self.budget = Budget(
            config.cost_limit, config.stage_seconds, path=self.state.root / "budget.json"
        )
        model = chat if chat is not None else _load_agent(config)
        self._injected = chat is not None
        self.scripted = _is_scripted(model.name)
        prices = load_prices(config.prices) if config.prices else None
        self.proposer = TrackedChat(model, self.budget, "propose", prices)
        self.implementer = TrackedChat(model, self.budget, "implement", prices)
        self._pause_lock = threading.Lock()

    # --- state helpers --------------------------------------------------------------------

    def _sync(self, **changes: Any) -> None:
        summary = self.budget.summary()
        best = grader.current_best(self.state.results_dir)
        self.state.update(
            rounds=self.config.rounds,
            k=self.config.k,
            agent=self.config.agent,
            scripted=self.scripted,
            problem=self.problem.name,
            direction=self.problem.direction,  # the monitor's best-so-far curve
            best=None
            if best is None
            else {"approach": best["approach"], "score": best["score"], "round": best["round"]},
            budget={
                "spent": summary["spent_usd"],
                "limit": summary["cost_limit_usd"],
                "remaining": summary["remaining_usd"],
            },
            **changes,
        )

    def _wait_while_paused(self) -> bool:
        """Block while control/pause exists; False when a stop is asked for. One thread
        reports the pause; the other implementers wait on the lock."""
        if self.state.stop_requested():
            return False
        if not self.state.pause_requested():
            return True
        with self._pause_lock:
            return self._pause()

    def _pause(self) -> bool:
        if not self.state.pause_requested():
            return not self.state.stop_requested()
        previous = self.state.state.get("status", "running")
        self._sync(status="paused")
        self.state.event("paused", "paused by control/pause")
        while self.state.pause_requested() and not self.state.stop_requested():
            time.sleep(PAUSE_POLL_SECONDS)
        self._sync(status=previous if previous != "paused" else "running")
        self.state.event("resumed", "control/pause removed")
        return not self.state.stop_requested()

    # --- one round ------------------------------------------------------------------------

    def _context(self, number: int) -> dict:
        entries = [
            {k: a.get(k) for k in ("name", "round", "title", "score", "valid")}
            for a in self.state.state["approaches"]
            if a.get("status") == "graded"
        ]
        return {
            "round": number,
            "seed": self.config.seed,
            "direction": self.problem.direction,
            "approaches": entries,
        }

    def _propose(self, number: int, record: dict) -> list[agents.Proposal]:
        if record.get("proposals"):  # a resumed round: never pay for its proposals twice
            return [agents.Proposal(**p) for p in record["proposals"]]
        notes = self.state.take_notes()
        with self.budget.stage("propose"):
            proposals = agents.propose(
                self.proposer,
                self.problem,
                self._context(number),
                notes,
                self.budget,
                self.config.k,
            )
        record["proposals"] = [p.to_dict() for p in proposals]
        record["notes"] = notes
        self.state.write_round(number, record)
        for proposal in proposals:
            self.state.event("proposal", proposal.title, round=number)
        return proposals

    def _workspace(self, name: str, proposal: agents.Proposal) -> Path:
        workspace = self.state.approaches_dir / name
        workspace.mkdir(parents=True, exist_ok=True)
        parent = self.state.approaches_dir / proposal.parent if proposal.parent else None
        if parent is not None and (parent / ".git").is_dir():
            _copy_files(parent, workspace)
        else:
            proposal.parent = None
            for relative in self.problem.public_files():
                (workspace / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.problem.dir / relative, workspace / relative)
        history.init_approach(workspace, name)
        return workspace

    def _report(self, number: int, name: str):
        """The events callback of one approach: the event log, and its live score."""

        def report(kind: str, message: str, score: float | None, valid: bool | None = None) -> None:
            self.state.event(kind, message, round=number, approach=name, score=score, valid=valid)
            if kind == "graded":
                self.state.set_approach(name, score=score)  # live, before the session ends
                self._sync()

        return report

    def _start(self, number: int, name: str, proposal: agents.Proposal, url: str, token: str):
        self.state.set_approach(
            name,
            round=number,
            status="implementing",
            score=None,
            valid=None,
            title=proposal.title,
            parent=proposal.parent,
        )
        self.state.event("implement_start", proposal.title, round=number, approach=name)
        workspace = self._workspace(name, proposal)
        return ImplementJob(
            round=number,
            approach=name,
            proposal=proposal.to_dict(),
            workspace=str(workspace),
            grader_url=url,
            grader_token=token,
            results_dir=str(self.state.results_dir),
            max_turns=self.config.max_turns,
            command_seconds=self.config.command_seconds,
        )

    def _finish(self, result: dict) -> dict:
        self.state.set_approach(
            result["approach"],
            status="graded" if result["submissions"] else "no_submission",
            score=result["score"],
            valid=result["valid"],
        )
        self._sync()
        return result

    def _implement_here(self, job: ImplementJob) -> dict:
        """One session in a thread of this process."""
        clock = self.budget.active_stage("implement")

        def between_steps() -> bool:
            if clock is not None and clock.over:
                return False
            return self._wait_while_paused()

        result = run_job(
            job,
            self.problem,
            self.implementer,
            self.budget,
            events=self._report(job.round, job.approach),
            between_steps=between_steps,
        )
        return self._finish(result)

    def _implement_on_ray(self, number: int, jobs: list[ImplementJob]) -> list[dict]:
        from posttrain.eureka.ray_implementers import RaySettings, run_jobs_on_ray

        reporters = {job.approach: self._report(number, job.approach) for job in jobs}
        results = run_jobs_on_ray(
            jobs,
            settings=RaySettings(self.config.ray_address, self.config.ray_cpus_per_task),
            problem_dir=self.problem.dir,
            # an injected model (tests) travels to the workers as an object, else its spec
            agent=self.implementer.inner if self._injected else self.config.agent,
            agent_options=self.config.agent_options,
            prices=self.config.prices,
            budget=self.budget,
            control_dir=self.state.control,
            on_event=lambda approach, *event: reporters[approach](*event),
            while_waiting=self._wait_while_paused,
        )
        return [self._finish(result) for result in results]

    def _round(self, number: int, url: str, token: str) -> None:
        record = self.state.read_round(number) or {"round": number, "attempt": 0}
        record["attempt"] = int(record.get("attempt", 0)) + 1
        self.state.write_round(number, record)
        self._sync(round=number, status="running")
        self.state.event("round_start", f"round {number} of {self.config.rounds}", round=number)
        proposals = self._propose(number, record)
        suffix = "" if record["attempt"] == 1 else f"-t{record['attempt']}"
        names = [f"r{number}-a{i}{suffix}" for i in range(len(proposals))]
        record["assignments"] = dict(zip(names, [p.title for p in proposals], strict=True))
        self.state.write_round(number, record)
        jobs = [
            self._start(number, name, proposal, url, token)
            for name, proposal in zip(names, proposals, strict=True)
        ]
        with self.budget.stage("implement"):
            if self.config.workers == "ray":
                results = self._implement_on_ray(number, jobs)
            else:
                with ThreadPoolExecutor(len(jobs)) as pool:
                    results = list(pool.map(self._implement_here, jobs))
        sign = -1.0 if self.problem.direction == "min" else 1.0
        ranked = sorted(
            (r for r in results if r["valid"] and r["score"] is not None),
            key=lambda r: -sign * r["score"],
        )
        record.update(results=results, ranking=[r["approach"] for r in ranked], done=True)
        self.state.write_round(number, record)
        best = ranked[0] if ranked else None
        self.state.event(
            "round_end",
            f"round {number}: best {best['approach']} {best['score']}"
            if best
            else f"round {number}: no valid submission",
            round=number,
            approach=best["approach"] if best else None,
            score=best["score"] if best else None,
        )
        self._sync()

    # --- the run --------------------------------------------------------------------------

    def run(self) -> dict:
        started = time.monotonic()
        done = self.state.done_rounds()
        self._sync(status="running", round=max(done, default=0))
        handle = None  # started for the first round to run: a stopped run needs none
        status = "finished"
        try:
            number = max(done, default=0) + 1
            while number <= self.config.rounds:
                if not self._wait_while_paused():
                    status = "stopped"
                    self.state.event("stopped", "control/stop")
                    break
                if self.budget.exhausted():
                    status = "budget_exhausted"
                    self.state.event("budget", f"cost limit reached: {self.budget.prompt_note()}")
                    break
                if handle is None:
                    handle = start_grader(
                        self.problem.dir,
                        self.state.approaches_dir,
                        self.state.results_dir,
                        log_path=self.state.root / "grader.log",
                    )
                self._round(number, handle.url, handle.token)
                number += 1
            else:
                self.state.event("finished", f"{self.config.rounds} round(s) done")
        finally:
            if handle is not None:
                handle.stop()
        self._sync(status=status)
        best = self.state.state["best"]
        return {
            "status": status,
            "run_dir": str(self.state.root),
            "problem": self.problem.name,
            "agent": self.config.agent,
            "scripted": self.scripted,
            "rounds_done": len(self.state.done_rounds()),
            "best": best,
            "budget": self.state.state["budget"],
            "seconds": round(time.monotonic() - started, 2),
        }


def run_eureka(config: EurekaConfig, run_dir: str | Path, *, chat: ChatModel | None = None) -> dict:
    """Run (or resume) the loop in `run_dir`; returns a summary: status, rounds_done, best
    {approach, score, round}, budget, seconds, and whether the agent was scripted. `chat`
    replaces the model `config.agent` names (tests)."""
    return _Loop(config, Path(run_dir), chat).run()


def best_story(run_dir: str | Path) -> str:
    """The best approach's history as a story (`posttrain eureka log RUN`), each version with
    the grader's score of its commit."""
    state = RunState(run_dir)
    best = grader.current_best(state.results_dir)
    if best is None:
        raise InputError("no valid submission in this run yet", state.results_dir)
    scores: dict[str, float | None] = {}
    path = state.results_dir / grader.INTERMEDIATE
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for record in (json.loads(line) for line in lines if line.strip()):
        if record.get("approach") == best["approach"] and record.get("git_hash"):
            scores[record["git_hash"]] = record.get("score")
    workspace = state.approaches_dir / best["approach"]
    story = history.story(workspace, scores)
    parents = []
    name = best["approach"]
    by_name = {a["name"]: a for a in state.state.get("approaches", [])}
    while by_name.get(name, {}).get("parent"):
        name = by_name[name]["parent"]
        parents.append(name)
    header = (
        f"Best: {best['approach']} (round {best['round']}), score {best['score']}"
        + (f"; built on {' <- '.join(parents)}" if parents else "")
        + (" [scripted agent]" if state.state.get("scripted") else "")
    )
    return header + "\n" + story
