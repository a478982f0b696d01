"""The asynchronous engine's rules: drop, group validity, stale-prefix masking (capacity:
test_async_capacity.py; partial rollouts: test_partial_rollout.py)."""

from __future__ import annotations

import random
import threading
import time

import pytest

from posttrain.rl.asynchronous.groups import validate_group
from posttrain.rl.asynchronous.producer import mask_stale_prefix
from posttrain.rl.asynchronous.staleness import StalenessGate, is_stale
from posttrain.rl.sample import Sample


def _sample(status: str = "completed", reward: float = 0.0, versions=None) -> Sample:
    tokens = [5, 6, 7]
    return Sample(
        prompt_ids=[1],
        response_ids=tokens,
        loss_mask=[1, 1, 1],
        rollout_logprobs=[-1.0] * 3,
        group_id=0,
        status=status,
        reward=reward,
        token_versions=versions,
    )


@pytest.mark.parametrize(("eta", "tau"), [(0, 0), (1, 1), (3, 2)])
def test_drop_rule_bounds_staleness_under_random_worker_speeds(eta, tau):
    """Eight workers of random, heavy-tailed speed against a trainer of random speed: no group
    is trained more than tau versions after the one it was generated at (GLM-5's drop rule).
    With eta = 0 every group is trained at the version it was generated at. (The capacity
    rule is checked from outside the gate in test_async_capacity.py.)"""
    batch, steps = 4, 12
    gate = StalenessGate(eta, batch)
    finished: list[int] = []  # the version each finished group was generated at
    cond = threading.Condition()
    rng = random.Random(eta)
    stop = threading.Event()

    def worker(seed: int) -> None:
        local = random.Random(seed)
        while not stop.is_set():
            if not gate.admit(timeout=0.05):
                continue
            version = gate.version
            time.sleep(local.uniform(0, 0.004) * local.choice([1, 1, 1, 20]))  # heavy tail
            with cond:
                finished.append(version)
                cond.notify_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    lags, dropped = [], 0
    for step in range(steps):
        taken: list[int] = []
        while len(taken) < batch:
            with cond:
                cond.wait_for(lambda: finished)
                version = finished.pop(0)
            if is_stale(step, version, tau):
                dropped += 1
                gate.release()
            else:
                taken.append(version)
        lags += [step - version for version in taken]
        time.sleep(rng.uniform(0, 0.01))  # the update
        gate.advance()
    stop.set()
    gate.close()
    for thread in threads:
        thread.join()
    assert max(lags) <= tau
    if eta == 0:
        assert set(lags) == {0} and dropped == 0


def test_gate_release_and_close():
    gate = StalenessGate(0, 2)
    assert gate.admit() and gate.admit()
    assert not gate.admit(timeout=0.01)  # full until the trainer advances
    gate.release()
    assert gate.admit(timeout=0.01)
    gate.close()
    assert not gate.admit()
    with pytest.raises(ValueError, match="eta"):
        StalenessGate(-1, 2)


def test_drop_rule():
    assert not is_stale(5, 4, tau=1)
    assert is_stale(5, 3, tau=1)
    assert not is_stale(9, 0, tau=None)


def test_group_validity_pads_majorities_and_drops_the_rest():
    good = [_sample(reward=r) for r in (1.0, 0.0, 1.0)]
    verdict = validate_group(good + [_sample("failed")], 4)
    assert verdict.failed == 1 and verdict.padded == 1
    assert [s.reward for s in verdict.samples] == [1.0, 0.0, 1.0, 1.0]
    assert verdict.samples[-1].metadata["padded"] is True
    assert "padded" not in verdict.samples[0].metadata

    half = validate_group(good[:2] + [_sample("failed")] * 2, 4)
    assert half.samples is None and half.failed == 2
    whole = validate_group(good + [_sample()], 4)
    assert whole.padded == 0 and len(whole.samples) == 4


def test_mask_stale_prefix_keeps_only_the_newest_weights_tokens():
    sample = _sample(versions=[3, 3, 4])
    mask_stale_prefix(sample)
    assert sample.loss_mask == [0, 0, 1]
    fresh = _sample(versions=[4, 4, 4])
    mask_stale_prefix(fresh)
    assert fresh.loss_mask == [1, 1, 1]
