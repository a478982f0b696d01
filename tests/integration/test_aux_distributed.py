"""EnvRL's auxiliary losses on two CPU processes (gloo): one update over two processes equals
one process's over the same samples, gradients and metrics, when one process's share has no
transitions at all (it joins every all-reduce with zero-weight passes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from posttrain.rl.sample import Sample, Turn
from posttrain.rl.transitions import transitions

HERE = Path(__file__).parent


def aux_samples(tokenizer) -> list[Sample]:
    """Two groups of multi-turn trajectories with transitions, then one single-turn group."""
    samples = []
    for group in range(3):
        for i in range(3):
            prompt = tokenizer.encode(f"{group} + {i} =", add_special_tokens=False)
            turns, ids, mask = [], [], []
            for t in range(0 if group == 2 else 1 + (i + group) % 3):
                action = tokenizer.encode(f"{t + i}", add_special_tokens=False)
                start = len(ids)
                ids, mask = ids + action, mask + [1] * len(action)
                state, after = f"try {t} of {group}", f"wrong {t + i}" * (1 + t)
                turns.append(Turn(state, f"{t + i}", after, 0.0, start, len(ids)))
                ids, mask = ids + [5, 6], mask + [0, 0]
            if not ids:
                ids, mask = [7, 8], [1, 1]
            samples.append(
                Sample(prompt, ids, mask, [-1.0] * len(ids), group_id=group,
                       reward=float(i), advantage=float(i) - 1.0, turn_records=turns)
            )  # fmt: skip
    return samples


@pytest.mark.slow  # a torchrun of two processes: about 20 s (make test-all)
def test_aux_update_over_two_processes_equals_one(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    sys.path.insert(0, str(HERE))
    from test_rl_distributed import updates_on_one_and_two_processes

    samples = aux_samples(AutoTokenizer.from_pretrained(tiny_model_dir))
    assert all(not transitions(s) for s in samples[6:]) and transitions(samples[0])
    results = updates_on_one_and_two_processes(tiny_model_dir, samples, tmp_path, ("aux",))
    single, double = results["aux"]
    for key in ("aux/sp_loss", "aux/id_loss", "aux/transitions"):
        assert double["metrics"][key] == pytest.approx(single["metrics"][key], rel=1e-5), key
