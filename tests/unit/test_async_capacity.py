"""AReaL's capacity rule, checked by an observer that shares no lock with the gate.

The observer counts groups from the producer's and the trainer's own events: a group counts
as admitted from the moment its rollout starts until its rollout comes back invalid (the
producer then gives its slot back), and the trainer's version is raised before the gate
hears of it. Both choices can only make the observer count fewer groups, or allow more, than
the gate does, so a correct gate never fails the check; the broken gates below show that the
check fails when the rule is not kept.
"""

from __future__ import annotations

import queue
import random
import threading
import time

import pytest

from posttrain.rl.asynchronous.producer import RolloutProducer
from posttrain.rl.asynchronous.staleness import StalenessGate
from posttrain.rl.sample import Sample

GROUP_SIZE = 2


class Observer:
    """Admitted groups and the trainer's version, from events, under its own lock."""

    def __init__(self, eta: int, batch: int) -> None:
        self.eta, self.batch = eta, batch
        self.version = 0
        self.admitted = 0
        self.excess = 0
        """Largest admitted - (eta + version + 1) * batch seen at any rollout start."""
        self._lock = threading.Lock()

    def rollout_started(self) -> None:
        with self._lock:
            self.admitted += 1
            bound = (self.eta + self.version + 1) * self.batch
            self.excess = max(self.excess, self.admitted - bound)

    def rollout_invalid(self) -> None:
        with self._lock:
            self.admitted -= 1

    def trainer_at(self, version: int) -> None:
        with self._lock:
            self.version = version


class OffByOneGate(StalenessGate):
    """Lets generation run one batch further ahead than eta allows."""

    @property
    def capacity(self) -> int:
        return (self.eta + self.version + 2) * self.batch_groups


class LeakyGate(StalenessGate):
    """Gives back two slots for every group released."""

    def release(self, groups: int = 1) -> None:
        super().release(2 * groups)


def _run(gate_class: type[StalenessGate], eta: int, seed: int) -> Observer:
    """A producer of random, heavy-tailed speed against a trainer of random speed; every
    seventh group fails (its slot is released)."""
    batch, steps = 3, 10
    gate = gate_class(eta, batch)
    observer = Observer(eta, batch)

    def rollout_group(row, engine, group_id):
        observer.rollout_started()
        speed = random.Random(seed * 10_000 + group_id)
        time.sleep(speed.uniform(0, 0.003) * speed.choice([1, 1, 1, 10]))
        status = "failed" if group_id % 7 == 3 else "completed"
        if status == "failed":
            observer.rollout_invalid()  # before the producer releases the slot
        return [
            Sample([1], [2], [1], [0.0], group_id=group_id, status=status)
            for _ in range(GROUP_SIZE)
        ]

    producer = RolloutProducer(
        engines=[object()],
        rollout_group=rollout_group,
        next_row=dict,
        gate=gate,
        group_size=GROUP_SIZE,
        threads=(eta + 3) * batch,
    )
    rng = random.Random(seed)
    producer.start()
    try:
        for step in range(steps):
            if rng.random() < 0.5:  # a slow trainer: let rollout fill every free slot first
                deadline = time.monotonic() + 5
                while producer.buffer.qsize() < (eta + 1) * batch:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.001)
            for _ in range(batch):
                producer.buffer.get(timeout=30)
            time.sleep(rng.uniform(0, 0.01))  # the update
            observer.trainer_at(step + 1)  # before the gate: the observer is never stricter
            gate.advance(step + 1)
    except queue.Empty:
        pytest.fail("rollout stopped producing groups")
    finally:
        producer.stop()
    assert producer.fatal is None
    return observer


@pytest.mark.parametrize("eta", [0, 1, 3])
def test_capacity_rule_holds_as_seen_from_outside_the_gate(eta):
    for seed in range(3):
        assert _run(StalenessGate, eta, seed).excess == 0


@pytest.mark.parametrize("broken", [OffByOneGate, LeakyGate])
def test_the_observer_catches_a_broken_gate(broken):
    assert _run(broken, 1, 0).excess > 0
