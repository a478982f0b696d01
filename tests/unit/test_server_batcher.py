"""The server's batcher: concurrent jobs with one key share a batch, tasks run only
between batches, failures reach every job of their batch, a job that yields goes behind
the others and is never split by a push, a caller that gives up stops its work; and how
batches are seeded."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest

from posttrain.models.server.batcher import Again, Batcher
from posttrain.models.server.engine import batch_seed


class Recorder:
    """A `run_batch` that logs each batch and can hold the batching thread on demand."""

    def __init__(self) -> None:
        self.log: list[object] = []
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()

    def __call__(self, jobs):
        self.log.append(list(jobs))
        self.started.set()
        self.release.wait(10)
        if "boom" in jobs:
            raise ValueError("boom")
        return [f"done:{job}" for job in jobs]


def _hold(batcher: Batcher) -> threading.Event:
    """Occupy the batching thread with a task until the returned event is set."""
    gate, busy = threading.Event(), threading.Event()

    def block() -> None:
        busy.set()
        gate.wait(10)

    batcher.between(block)
    assert busy.wait(10)
    return gate


def test_waiting_jobs_with_one_key_share_a_batch_and_get_their_own_results():
    run = Recorder()
    batcher = Batcher(run, max_batch=3, max_rows=100)
    try:
        gate = _hold(batcher)
        futures = {
            job: batcher.submit(key, 1, job)
            for key, job in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("a", "a3"), ("a", "a4")]
        }
        gate.set()
        assert {job: f.result(10) for job, f in futures.items()} == {
            job: f"done:{job}" for job in futures
        }
        # Head a1 takes the next two a's (max_batch 3); b1 and a4 wait, in arrival order.
        assert run.log == [["a1", "a2", "a3"], ["b1"], ["a4"]]
        assert (batcher.batches, batcher.requests) == (3, 5)
    finally:
        batcher.close()


def test_rows_cap_a_batch_but_a_large_job_still_runs_alone():
    run = Recorder()
    batcher = Batcher(run, max_batch=10, max_rows=4)
    try:
        gate = _hold(batcher)
        futures = [
            batcher.submit("k", rows, name)
            for rows, name in [(3, "x"), (1, "y"), (2, "z"), (9, "big")]
        ]
        gate.set()
        for future in futures:
            future.result(10)
        assert run.log == [["x", "y"], ["z"], ["big"]]
    finally:
        batcher.close()


def test_tasks_run_between_batches_never_during_one():
    run = Recorder()
    batcher = Batcher(run)
    try:
        run.release.clear()
        first = batcher.submit("k", 1, "first")
        assert run.started.wait(10)
        # A push arrives while "first" is generating, then another request.
        pushed: Future = batcher.between(lambda: run.log.append("push") or 7)
        second = batcher.submit("k", 1, "second")
        assert not pushed.done()
        run.release.set()
        assert (first.result(10), pushed.result(10), second.result(10)) == (
            "done:first",
            7,
            "done:second",
        )
        assert run.log == [["first"], "push", ["second"]]
    finally:
        batcher.close()


def test_a_failing_batch_fails_its_jobs_and_the_batcher_goes_on():
    run = Recorder()
    batcher = Batcher(run)
    try:
        gate = _hold(batcher)
        bad, also_bad = batcher.submit("k", 1, "boom"), batcher.submit("k", 1, "x")
        gate.set()
        for future in (bad, also_bad):
            with pytest.raises(ValueError, match="boom"):
                future.result(10)
        failing_task = batcher.between(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failing_task.result(10)
        assert batcher.run("k", 1, "fine") == "done:fine"
    finally:
        batcher.close()


def test_closing_fails_what_waits_and_refuses_new_work():
    run = Recorder()
    batcher = Batcher(run)
    gate = _hold(batcher)
    waiting = batcher.submit("k", 1, "late")
    closer = threading.Thread(target=batcher.close)
    closer.start()
    gate.set()
    closer.join(10)
    with pytest.raises(RuntimeError, match="closed"):
        waiting.result(10)
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit("k", 1, "after")
    with pytest.raises(RuntimeError, match="closed"):
        batcher.between(lambda: None)


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"max_rows": 0}])
def test_bad_limits_are_refused(kwargs):
    with pytest.raises(ValueError, match="must be >= 1"):
        Batcher(Recorder(), **kwargs)


def test_batch_seeds():
    assert batch_seed([11]) == 11 and batch_seed([None]) is None
    assert batch_seed([None, None]) is None
    mixed = batch_seed([1, 2])
    assert mixed == batch_seed([1, 2]) and 0 <= mixed < 2**63
    assert mixed != batch_seed([2, 1]) and mixed != batch_seed([1, None])


class Slicer:
    """A `run_batch` whose jobs are (name, pieces left): each batch runs one piece of each
    job and answers `Again` while pieces are left, as the engine does when it yields."""

    def __init__(self) -> None:
        self.log: list[object] = []

    def __call__(self, jobs):
        self.log.append([name for name, _ in jobs])
        return [
            Again(name, 1, (name, left - 1)) if left > 1 else f"done:{name}" for name, left in jobs
        ]


def test_a_job_that_yields_goes_behind_those_that_waited():
    run = Slicer()
    batcher = Batcher(run, max_batch=1)
    try:
        gate = _hold(batcher)
        long = batcher.submit("long", 1, ("long", 3))
        short = batcher.submit("short", 1, ("short", 1))
        gate.set()
        assert (long.result(10), short.result(10)) == ("done:long", "done:short")
        assert run.log == [["long"], ["short"], ["long"], ["long"]]
        assert (batcher.batches, batcher.requests) == (4, 2)  # pieces are not new requests
    finally:
        batcher.close()


def test_a_push_waits_for_the_jobs_already_in_pieces():
    run = Slicer()
    batcher = Batcher(run, max_batch=1)
    try:
        gate = _hold(batcher)
        long = batcher.submit("long", 1, ("long", 2))
        gate.set()
        # Once "long" is in pieces, a push and a new request arrive together.
        while not run.log:
            time.sleep(0.001)
        pushed = batcher.between(lambda: run.log.append("push"))
        other = batcher.submit("other", 1, ("other", 1))
        assert long.result(10) == "done:long" and other.result(10) == "done:other"
        pushed.result(10)
        assert run.log == [["long"], ["long"], "push", ["other"]]
    finally:
        batcher.close()


def test_should_yield_after_the_slice_only_while_others_wait():
    seen: list[bool] = []
    started, release = threading.Event(), threading.Event()
    holder: list[Batcher] = []

    def run_batch(jobs):
        started.set()
        release.wait(10)
        seen.append(holder[0].should_yield())
        return [f"done:{job}" for job in jobs]

    batcher = Batcher(run_batch, max_batch=1, time_slice_s=0.01)
    holder.append(batcher)
    try:
        first = batcher.submit("a", 1, "first")
        assert started.wait(10)
        time.sleep(0.05)  # past the slice, but nobody waits
        release.set()
        first.result(10)
        started.clear()
        release.clear()
        second = batcher.submit("a", 1, "second")
        assert started.wait(10)
        waiting = batcher.submit("b", 1, "waiting")
        time.sleep(0.05)
        release.set()
        second.result(10), waiting.result(10)
        assert seen[:2] == [False, True]
    finally:
        release.set()
        batcher.close()


def test_a_caller_that_gives_up_leaves_the_queue_and_stops_its_batch():
    ran: list[str] = []
    holder: list[Batcher] = []
    stopped = threading.Event()

    def run_batch(jobs):
        ran.extend(jobs)
        deadline = time.monotonic() + 10
        while "long" in jobs and time.monotonic() < deadline:  # polled at each "step"
            if holder[0].should_yield():
                stopped.set()
                break
            time.sleep(0.005)
        return [f"done:{job}" for job in jobs]

    batcher = Batcher(run_batch, max_batch=1)
    holder.append(batcher)
    try:
        gate = _hold(batcher)
        with pytest.raises(TimeoutError):
            batcher.run("k", 1, "late", timeout=0.05)  # gave up while queued
        gate.set()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            batcher.run("k", 1, "long", timeout=0.2)  # gave up while generating
        assert batcher.run("k", 1, "after") == "done:after"
        assert stopped.is_set() and time.monotonic() - started < 5
        assert ran == ["long", "after"]  # "late" never ran
    finally:
        batcher.close()
