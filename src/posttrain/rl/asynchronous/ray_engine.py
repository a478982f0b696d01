"""An engine as a Ray actor, so rollout can scale across the machines of a Ray cluster.

The actor holds an `EngineCore`. It runs two calls at once (`max_concurrency=2`) only so
that an interrupting push (partial rollouts) can reach a generation in progress; its one
caller, the trainer-side `BatchedEngine`, never overlaps a weight load with a generation.
Needs the `ray` extra (`pip install posttrain[ray]`).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence

from posttrain.models.chat.base import Choice
from posttrain.rl.asynchronous.engines import EngineCore, Request, WeightUpdate


class _EngineActor:
    def __init__(self, model_dir: str, torch_threads: int | None) -> None:
        self.core = EngineCore(model_dir, torch_threads)
        self._interrupts: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def _event(self, batch: int) -> threading.Event:
        with self._lock:  # an interrupt may arrive before its batch starts
            return self._interrupts.setdefault(batch, threading.Event())

    def generate_many(self, requests: Sequence[Request], batch: int) -> list[list[list[Choice]]]:
        try:
            return self.core.generate_many(requests, self._event(batch))
        finally:
            with self._lock:
                self._interrupts.pop(batch, None)

    def interrupt(self, batch: int) -> None:
        self._event(batch).set()

    def decode(self, ids: list[int]) -> str:
        return self.core.decode(ids)

    def load(self, update: WeightUpdate) -> int:
        self.core.load(update)
        return self.core.version


class RayBackend:
    """`EngineCore` in a Ray actor with `num_cpus` CPUs."""

    interruptible = True

    def __init__(self, model_dir: str, torch_threads: int | None = 1, num_cpus: float = 1) -> None:
        import ray

        actor = ray.remote(num_cpus=num_cpus, max_concurrency=2)(_EngineActor)
        self._actor = actor.remote(model_dir, torch_threads)
        self._batches = itertools.count()
        self.version = 0

    def generate_many(
        self, requests: Sequence[Request], interrupt: threading.Event | None = None
    ) -> list[list[list[Choice]]]:
        import ray

        batch = next(self._batches)
        ref = self._actor.generate_many.remote(list(requests), batch)
        while interrupt is not None and not ray.wait([ref], timeout=0.005)[0]:
            if interrupt.is_set():  # pass the trainer's interrupt on to the actor
                self._actor.interrupt.remote(batch)
                interrupt = None
        return ray.get(ref)

    def decode(self, ids: list[int]) -> str:
        import ray

        return ray.get(self._actor.decode.remote(ids))

    def load(self, update: WeightUpdate) -> None:
        import ray

        self.version = ray.get(self._actor.load.remote(update))

    def close(self) -> None:
        import ray

        ray.kill(self._actor)
