"""How far generation may run ahead of training.

Two rules, both from the asynchronous RL literature:

- AReaL's capacity rule (Fu et al. 2025): with B groups per training step, at most
  (eta + v + 1) * B groups may have been admitted (trained on, waiting in the buffer or
  still being generated) while the trainer is at version v. eta = 0 is synchronous RL:
  the next batch is generated only after the previous update.
- GLM-5's drop rule (zai-org 2026): a sample whose oldest generating weight version lags
  the trainer's current version by more than tau is dropped rather than trained on.
"""

from __future__ import annotations

import threading


class StalenessGate:
    """The capacity rule as a blocking admission counter shared by rollout threads.

    `admit` blocks until a group fits; `advance` is called by the trainer after each update
    (and after any weight push, so groups admitted next are generated with new weights);
    `release` gives back the slot of a group that will never be trained on (failed or stale).
    """

    def __init__(self, eta: int, batch_groups: int) -> None:
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        if batch_groups < 1:
            raise ValueError(f"batch_groups must be >= 1, got {batch_groups}")
        self.eta = eta
        self.batch_groups = batch_groups
        self.version = 0
        self.admitted = 0
        self.peak_excess = 0
        """Largest admitted - capacity ever seen (0 unless the rule was broken)."""
        self._closed = False
        self._cond = threading.Condition()

    @property
    def capacity(self) -> int:
        return (self.eta + self.version + 1) * self.batch_groups

    def admit(self, timeout: float | None = None) -> bool:
        """Wait for room for one group and take it; False if closed or timed out."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._closed or self.admitted < self.capacity, timeout=timeout
            )
            if self._closed or not ok:
                return False
            self.admitted += 1
            self.peak_excess = max(self.peak_excess, self.admitted - self.capacity)
            return True

    def release(self, groups: int = 1) -> None:
        with self._cond:
            self.admitted -= groups
            self._cond.notify_all()

    def advance(self, version: int | None = None) -> None:
        """The trainer finished an update: move to `version` (default: the next one)."""
        with self._cond:
            self.version = self.version + 1 if version is None else version
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def staleness(current_version: int, oldest_version: int) -> int:
    """Versions between the trainer's weights and the oldest weights behind a sample."""
    return current_version - oldest_version


def is_stale(current_version: int, oldest_version: int, tau: int | None) -> bool:
    """GLM-5's drop rule: True when the gap exceeds tau (None: never drop)."""
    return tau is not None and staleness(current_version, oldest_version) > tau
