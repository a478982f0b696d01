"""PromptStream's order: `shuffle` (today's seeded epoch shuffle, the default) and
`as_written` (the file's order every epoch, for a selection stage's batches); both resume
from `consumed` alone."""

from __future__ import annotations

import random

import pytest

from posttrain.config import ConfigError, load_config
from posttrain.data.prompts import PromptStream
from posttrain.rl.config import RLConfig

ROWS = [{"prompt": f"p{i}"} for i in range(7)]


def _reference_shuffle(seed: int, epochs: int) -> list[str]:
    """The order `shuffle` has always had: each epoch's permutation drawn by
    random.Random(seed * 100003 + epoch).shuffle over the row positions."""
    names = []
    for epoch in range(epochs):
        order = list(range(len(ROWS)))
        random.Random(seed * 100_003 + epoch).shuffle(order)
        names += [ROWS[i]["prompt"] for i in order]
    return names


def _names(rows: list[dict]) -> list[str]:
    return [row["prompt"] for row in rows]


def test_the_default_order_is_the_seeded_epoch_shuffle():
    stream = PromptStream(ROWS, seed=3)
    assert stream.order == "shuffle"
    taken = _names(stream.take(5) + stream.take(9) + stream.take(7))  # 3 epochs, odd cuts
    assert taken == _reference_shuffle(3, 3)
    resumed = PromptStream(ROWS, seed=3, consumed=11)
    assert _names(resumed.take(10)) == _reference_shuffle(3, 3)[11:21]


def test_as_written_repeats_the_file_order_every_epoch_and_resumes():
    stream = PromptStream(ROWS, seed=3, order="as_written")
    file_order = _names(ROWS)
    assert _names(stream.take(4) + stream.take(4) + stream.take(13)) == file_order * 3
    resumed = PromptStream(ROWS, seed=99, consumed=9, order="as_written")  # seed is unused
    assert _names(resumed.take(6)) == (file_order * 3)[9:15]


def test_as_written_hands_out_the_files_batches():
    rows = [{"prompt": f"p{i}"} for i in range(12)]
    stream = PromptStream(rows, seed=0, order="as_written")
    steps = [_names(stream.take(4)) for _ in range(6)]
    batches = [[f"p{i}" for i in range(start, start + 4)] for start in (0, 4, 8)]
    assert steps == batches * 2


def test_a_bad_order_is_refused():
    with pytest.raises(ValueError, match="data.order: 'sorted'"):
        PromptStream(ROWS, seed=0, order="sorted")


def test_the_config_option(tmp_path):
    assert RLConfig().data.order == "shuffle"
    assert load_config(RLConfig, None, ["data.order=as_written"]).data.order == "as_written"
    with pytest.raises(ConfigError, match="data.order"):
        load_config(RLConfig, None, ["data.order=sorted"])


def test_the_trainer_takes_the_order_from_the_config(tiny_model_dir, tmp_path):
    from posttrain.data.io import write_jsonl
    from posttrain.rl.trainer import RLTrainer

    rows = [{"prompt": f"{i}+1=", "answer": str(i + 1)} for i in range(6)]
    write_jsonl(tmp_path / "ordered.jsonl", rows)
    config = RLConfig(model=str(tiny_model_dir), runs_root=str(tmp_path / "runs"), eval_size=0,
                      save_every=0, prompts_per_step=3)  # fmt: skip
    config.data.train, config.data.order = str(tmp_path / "ordered.jsonl"), "as_written"
    trainer = RLTrainer(config)
    assert trainer.stream.order == "as_written"
    assert _names(trainer.stream.take(9)) == _names(rows + rows[:3])
