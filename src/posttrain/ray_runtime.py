"""Connecting to Ray, shared by the parts that scale out on it (rollout engines in
`posttrain.rl.asynchronous`, EurekAgent's implementers). Needs the `ray` extra."""

from __future__ import annotations


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to `address` or start a local runtime with `num_cpus` CPUs (None: all), once
    per process."""
    try:
        import ray
    except ImportError as error:
        raise ImportError("Ray is not installed: pip install 'posttrain[ray]'") from error
    if not ray.is_initialized():
        ray.init(
            address=address,
            num_cpus=None if address else num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
