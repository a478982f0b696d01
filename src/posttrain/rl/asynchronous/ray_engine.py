"""An engine as a Ray actor, so rollout can scale across the machines of a Ray cluster.

The actor holds an `EngineCore`; Ray runs one call at a time on it, in order, so a weight
load never overlaps a generation. Needs the `ray` extra (`pip install posttrain[ray]`).
"""

from __future__ import annotations

from collections.abc import Sequence

from posttrain.models.chat.base import Choice
from posttrain.rl.asynchronous.engines import EngineCore, Request, WeightUpdate


class _EngineActor:
    def __init__(self, model_dir: str, torch_threads: int | None) -> None:
        self.core = EngineCore(model_dir, torch_threads)

    def generate_many(self, requests: Sequence[Request]) -> list[list[list[Choice]]]:
        return self.core.generate_many(requests)

    def load(self, update: WeightUpdate) -> int:
        self.core.load(update)
        return self.core.version


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to `address` or start a local runtime, once per process."""
    try:
        import ray
    except ImportError as error:
        raise ImportError("workers.kind=ray needs Ray: pip install 'posttrain[ray]'") from error
    if not ray.is_initialized():
        ray.init(
            address=address,
            num_cpus=None if address else num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )


class RayBackend:
    """`EngineCore` in a Ray actor with `num_cpus` CPUs."""

    def __init__(self, model_dir: str, torch_threads: int | None = 1, num_cpus: float = 1) -> None:
        import ray

        actor = ray.remote(num_cpus=num_cpus)(_EngineActor)
        self._actor = actor.remote(model_dir, torch_threads)
        self.version = 0

    def generate_many(self, requests: Sequence[Request]) -> list[list[list[Choice]]]:
        import ray

        return ray.get(self._actor.generate_many.remote(list(requests)))

    def load(self, update: WeightUpdate) -> None:
        import ray

        self.version = ray.get(self._actor.load.remote(update))

    def close(self) -> None:
        import ray

        ray.kill(self._actor)
