"""RolloutLog: a resumed run keeps the lines of the steps it keeps, whatever a kill left."""

import json

import pytest

from posttrain.data.io import DataError
from posttrain.rl.rollout_log import RolloutLog
from posttrain.rl.sample import Sample


def _sample(group: int, reward: float) -> Sample:
    return Sample(
        prompt_ids=[1],
        response_ids=[2],
        loss_mask=[1],
        rollout_logprobs=[0.0],
        group_id=group,
        prompt=[{"role": "user", "content": f"q{group}"}],
        completion=f"answer {group}",
        reward=reward,
        reward_breakdown={"main": reward},
    )


def test_truncate_after_keeps_earlier_steps_and_drops_a_torn_tail(tmp_path):
    log = RolloutLog(tmp_path / "rollouts.jsonl")
    for step in (1, 2, 3):
        log(step, [_sample(0, step / 10), _sample(1, step / 5)])
    whole = log.path.read_text().splitlines(keepends=True)
    log.path.write_text("".join(whole[:5]) + whole[5][:30])  # killed while writing step 3
    log.truncate_after(2)
    assert log.path.read_text() == "".join(whole[:4])  # kept lines are byte-identical
    assert [json.loads(line)["step"] for line in whole[:4]] == [1, 1, 2, 2]
    log(3, [_sample(0, 0.3)])
    assert json.loads(log.path.read_text().splitlines()[-1])["prompt"] == "q0"


def test_truncate_after_refuses_a_corrupt_line_before_the_last(tmp_path):
    log = RolloutLog(tmp_path / "rollouts.jsonl")
    log(1, [_sample(0, 0.1)])
    log.path.write_text(log.path.read_text() + "{oops\n" + log.path.read_text())
    with pytest.raises(DataError, match=r"rollouts.jsonl:2: not valid JSON"):
        log.truncate_after(1)
