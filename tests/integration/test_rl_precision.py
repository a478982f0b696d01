"""The engine's precision and memory settings at tiny size on the CPU: bf16 autocast with
gradient checkpointing, bf16 weights, and fp16 refused without CUDA (it needs a GPU's
gradient scaler). `benchmarks/gpu_check.py` checks the same settings on a GPU."""

from __future__ import annotations

import math

import pytest
import torch

from posttrain.rl.config import RLConfig
from posttrain.rl.trainer import RLTrainer


def _config(model_dir, root, **settings) -> RLConfig:
    config = RLConfig(
        model=str(model_dir),
        runs_root=str(root),
        steps=1,
        prompts_per_step=2,
        eval_every=0,
        save_every=0,
        **settings,
    )
    config.rollout.n, config.rollout.max_tokens = 2, 4
    return config


def test_bf16_autocast_with_gradient_checkpointing_trains(tiny_model_dir, tmp_path):
    config = _config(tiny_model_dir, tmp_path, mixed_precision="bf16", gradient_checkpointing=True)
    trainer = RLTrainer(config)
    assert trainer.accelerator.mixed_precision == "bf16"
    assert getattr(trainer.model, "is_activation_checkpointing", None) or (
        trainer.model.is_gradient_checkpointing
    )
    assert next(trainer.model.parameters()).dtype == torch.float32  # autocast, fp32 weights
    metrics = trainer.train()
    assert math.isfinite(metrics["loss"]) and math.isfinite(metrics["grad_norm"])
    assert (tmp_path / "rl/checkpoints/final/model.safetensors").is_file()


def test_bf16_weights_load_and_train(tiny_model_dir, tmp_path):
    trainer = RLTrainer(_config(tiny_model_dir, tmp_path, torch_dtype="bfloat16"))
    assert next(trainer.model.parameters()).dtype == torch.bfloat16
    assert math.isfinite(trainer.train()["loss"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is allowed where CUDA is")
def test_fp16_without_cuda_is_refused_by_name(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="mixed_precision: fp16 needs a CUDA device"):
        RLTrainer(_config(tiny_model_dir, tmp_path, mixed_precision="fp16"))
