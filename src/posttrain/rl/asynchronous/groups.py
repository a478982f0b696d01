"""Group validity: what to do with a GRPO group some of whose rollouts failed.

GLM-5's rule: failed samples (environment error, timeout) are dropped; a group keeping more
than half its samples is padded back to full size by repeating valid ones (so group-relative
advantages still see a full group), and a group keeping half or fewer is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import cycle, islice

from posttrain.rl.sample import Sample


@dataclass
class GroupVerdict:
    samples: list[Sample] | None
    """The group to train on (None: dropped)."""
    failed: int
    padded: int


def validate_group(samples: list[Sample], size: int) -> GroupVerdict:
    """Drop failed samples; pad the group to `size` if more than half remain, else drop it."""
    valid = [s for s in samples if s.status != "failed"]
    failed = len(samples) - len(valid)
    if 2 * len(valid) <= size:
        return GroupVerdict(None, failed, 0)
    missing = size - len(valid)
    repeats = [
        replace(s, metadata={**s.metadata, "padded": True}) for s in islice(cycle(valid), missing)
    ]
    return GroupVerdict(valid + repeats, failed, missing)
