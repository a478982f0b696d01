"""The server's batcher: concurrent jobs with one key share a batch, tasks run only
between batches, failures reach every job of their batch; and how batches are seeded."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from posttrain.models.server.batcher import Batcher
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
