"""One policy update over fixed samples, for test_rl_distributed.

Run under `torchrun --nproc_per_node 2` (each process takes its share of the groups) and
called in the test's own process (one process, every group); the main process writes the
parameters' gradients and the update's metrics, which must agree between the two.

    python distributed_update.py MODEL_DIR SAMPLES.pt OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from posttrain.rl.config import RLConfig
from posttrain.rl.trainer import RLTrainer

GROUP = 4
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
    config.rollout.n = GROUP
    config.optim.lr = 0.0
    if kind == "ppo":
        config.loss.kl_coef, config.loss.icepop_beta = 0.05, 2.0
    else:
        config.loss.kind, config.loss.kl_coef = "online_dpo", 0.1
    return config


def update_once(model_dir: str, samples_path: str, out_dir: str) -> None:
    samples = torch.load(samples_path, weights_only=False)
    groups = [samples[i : i + GROUP] for i in range(0, len(samples), GROUP)]
    for kind in KINDS:
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
    update_once(*sys.argv[1:4])
