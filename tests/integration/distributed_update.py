"""One policy update over fixed samples, for test_rl_distributed and test_aux_distributed.

Run under `torchrun --nproc_per_node 2` (each process takes its share of the groups) and
called in the test's own process (one process, every group); the main process writes the
parameters' gradients and the update's metrics for each kind, which must agree between the
two.

    python distributed_update.py MODEL_DIR SAMPLES.pt OUT_DIR [KIND,KIND...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from posttrain.rl.config import RLConfig
from posttrain.rl.trainer import RLTrainer

GROUP = {"ppo": 4, "online_dpo": 4, "aux": 3}
"""Samples per group, for each kind's fixed samples."""
KINDS = ("ppo", "online_dpo")


def settings(model_dir: str, root: str, kind: str) -> RLConfig:
    """Several micro-batches per process (uneven between processes), a reference model and
    an importance correction for PPO; pairs for online DPO. lr 0 keeps the gradients."""
    config = RLConfig(
        model=model_dir,
        runs_root=root,
        run_name=f"update-{kind}",
        micro_batch_size=3,
        save_every=0,
        eval_size=0,
    )
    config.rollout.n = GROUP[kind]
    config.optim.lr = 0.0
    if kind == "ppo":
        config.loss.kl_coef, config.loss.icepop_beta = 0.05, 2.0
    elif kind == "online_dpo":
        config.loss.kind, config.loss.kl_coef = "online_dpo", 0.1
    else:  # EnvRL's auxiliary losses beside GRPO; they learn from a multi-turn env's turns
        config.micro_batch_size, config.env, config.rewards = 4, "arithmetic_retry", []
        config.aux.sp.lambda0, config.aux.id.lambda0 = 0.3, 0.2
        config.aux.max_state_tokens = 16
    return config


def update_once(
    model_dir: str, samples_path: str, out_dir: str, kinds: str = ",".join(KINDS)
) -> None:
    samples = torch.load(samples_path, weights_only=False)
    for kind in kinds.split(","):
        size = GROUP[kind]
        groups = [samples[i : i + size] for i in range(0, len(samples), size)]
        trainer = RLTrainer(settings(model_dir, out_dir, kind))
        mine, _ = trainer.processes.shard(groups)
        metrics = trainer.update([s for group in mine for s in group])
        if trainer.is_main:
            grads = {
                name: p.grad.detach().clone()
                for name, p in trainer.model.named_parameters()
                if p.grad is not None
            }
            result = {"grads": grads, "metrics": metrics, "world": trainer.processes.world}
            torch.save(result, Path(out_dir) / f"{kind}.pt")
        trainer.processes.barrier()


if __name__ == "__main__":
    update_once(*sys.argv[1:5])
