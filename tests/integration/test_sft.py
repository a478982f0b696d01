"""The SFT stage: `posttrain sft --config` trains a tiny model with TRL's SFTTrainer, writes a
run directory, and hands `report_to` to TRL."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from posttrain.cli import app
from posttrain.config import ConfigError, load_config
from posttrain.data.arithmetic import ArithmeticTask, make_splits
from posttrain.data.io import write_jsonl
from posttrain.runs import read_metrics
from posttrain.sft.trainer import SFTStageConfig, sft_rows, trl_arguments

TINY = Path(__file__).parents[2] / "configs" / "sft" / "tiny.yaml"


def _conversations(n: int) -> list[dict]:
    """Arithmetic rows in TRL's `messages` layout (the warm start covers prompt+completion)."""
    train, _ = make_splits(ArithmeticTask(n_train=n, n_test=1))
    return [{"messages": [*r["prompt"], *r["completion"]]} for r in train]


def test_sft_command_trains_writes_a_run_and_reports_to_tensorboard(tiny_model_dir, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from transformers import AutoModelForCausalLM

    data = write_jsonl(tmp_path / "train.jsonl", _conversations(32))
    out = tmp_path / "sft-run"
    result = CliRunner().invoke(
        app,
        [
            "sft",
            "--config",
            str(TINY),
            "--set",
            f"model={tiny_model_dir}",
            "--set",
            f"train_file={data}",
            "--set",
            f"output_dir={out}",
            "--set",
            "steps=3",
            "--set",
            "batch_size=4",
            "--set",
            "logging_steps=1",
            "--set",
            "report_to=[tensorboard]",
        ],
    )
    assert result.exit_code == 0, result.output
    losses = [r["sft_loss"] for r in read_metrics(out) if "sft_loss" in r]
    assert len(losses) == 3 and all(loss > 0 for loss in losses)
    assert (out / "config.yaml").is_file() and (out / "report.html").is_file()
    model = AutoModelForCausalLM.from_pretrained(out / "checkpoints" / "final")
    assert model.config.model_type == "qwen2"
    # TRL's own TensorBoard integration logged the same run under output_dir/runs/.
    (events_dir,) = (out / "runs").iterdir()
    events = EventAccumulator(str(events_dir))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]


def test_report_to_reaches_the_trl_configs(tmp_path):
    from posttrain.rewards.reward_model import RewardModelConfig, _reward_config

    settings = SFTStageConfig(model="m", report_to=["tensorboard", "wandb"])
    assert trl_arguments(settings, tmp_path, n_rows=10).report_to == ["tensorboard", "wandb"]
    assert trl_arguments(SFTStageConfig(model="m"), tmp_path, n_rows=10).report_to == []
    rm = _reward_config(RewardModelConfig(report_to=["trackio"]), 10, False, tmp_path)
    assert rm.report_to == ["trackio"]
    assert _reward_config(RewardModelConfig(), 10, False, tmp_path).report_to == []


def test_settings_map_onto_the_trl_arguments(tmp_path):
    settings = SFTStageConfig(
        model="m",
        epochs=2,
        batch_size=4,
        gradient_accumulation_steps=2,
        learning_rate=1e-4,
        lr_scheduler="cosine",
        warmup_steps=0.1,
        max_length=128,
        mixed_precision="no",
        gradient_checkpointing=False,
        seed=7,
    )
    args = trl_arguments(settings, tmp_path, n_rows=80)
    assert (args.max_steps, args.num_train_epochs, args.per_device_train_batch_size) == (-1, 2, 4)
    assert (args.gradient_accumulation_steps, args.learning_rate) == (2, 1e-4)
    assert (args.lr_scheduler_type, args.warmup_steps, args.max_length) == ("cosine", 0.1, 128)
    assert not args.bf16 and not args.fp16 and not args.gradient_checkpointing
    assert args.seed == 7 and args.logging_steps == 1  # 80 rows / 8 per step * 2 epochs / 20


def test_bad_settings_and_rows_are_named(tmp_path):
    # YAML reads a bare `no` as false: it still means no mixed precision.
    config = tmp_path / "sft.yaml"
    config.write_text("model: m\nmixed_precision: no\n")
    assert load_config(SFTStageConfig, config).mixed_precision == "no"
    with pytest.raises(ConfigError, match="mixed_precision must be one of auto, no, fp16, bf16"):
        load_config(SFTStageConfig, None, ["mixed_precision=fp8"])
    with pytest.raises(ConfigError, match="torch_dtype"):
        load_config(SFTStageConfig, None, ["torch_dtype=float64"])
    with pytest.raises(ValueError, match="lr_scheduler must be one of .*got 'cosin'"):
        trl_arguments(SFTStageConfig(model="m", lr_scheduler="cosin"), tmp_path, n_rows=1)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="mixed_precision: fp16 needs a CUDA GPU"):
            trl_arguments(SFTStageConfig(model="m", mixed_precision="fp16"), tmp_path, n_rows=1)
    with pytest.raises(ValueError, match=r"data.jsonl: row 2 has neither 'messages' nor"):
        sft_rows([{"messages": []}, {"text": "x"}], "data.jsonl")
    with pytest.raises(ValueError, match="row 2 has prompt\\+completion but row 1 has messages"):
        sft_rows([{"messages": []}, {"prompt": "1+1", "completion": "2"}], "data.jsonl")


def test_sft_command_names_a_missing_model_or_file(tiny_model_dir, tmp_path):
    runner = CliRunner()
    missing_model = runner.invoke(
        app, ["sft", "--set", f"model={tmp_path / 'nope'}", "--set", "train_file=x.jsonl"]
    )
    assert missing_model.exit_code == 2 and "model: no such directory" in missing_model.output
    missing_file = runner.invoke(
        app, ["sft", "--set", f"model={tiny_model_dir}", "--set", f"train_file={tmp_path}/t.jsonl"]
    )
    assert missing_file.exit_code == 2 and "file not found" in missing_file.output


def test_checkpointing_activations_changes_no_weight(tiny_model_dir, tmp_path):
    """Why the warm start turns it off and leaves it out of its cache key: recomputing the
    activations in the backward pass gives bitwise the same training."""
    from transformers import AutoModelForCausalLM

    from posttrain.sft.trainer import fine_tune

    train, _ = make_splits(ArithmeticTask(n_train=32, n_test=1))
    rows = sft_rows(train, "arithmetic")
    weights = {}
    for checkpointing in (True, False):
        settings = SFTStageConfig(
            model=str(tiny_model_dir),
            steps=3,
            batch_size=8,
            learning_rate=2e-3,
            max_length=64,
            gradient_checkpointing=checkpointing,
        )
        out = tmp_path / str(checkpointing)
        fine_tune(settings, rows, out, out / "trainer")
        weights[checkpointing] = AutoModelForCausalLM.from_pretrained(out).state_dict()
    start = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    assert any(not torch.equal(weights[True][k], start[k]) for k in start)  # it trained
    assert all(torch.equal(weights[True][k], weights[False][k]) for k in start)
