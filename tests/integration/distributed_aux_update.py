"""One policy update with EnvRL's auxiliary losses over fixed samples, for
test_aux_distributed.

Run under `torchrun --nproc_per_node 2` (the second process's share has no transitions, so
it runs only zero-weight auxiliary passes) and in the test's own process; the main process
writes the gradients and metrics, which must agree between the two.

    python distributed_aux_update.py MODEL_DIR SAMPLES.pt OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from posttrain.rl.config import RLConfig
from posttrain.rl.trainer import RLTrainer

GROUP = 3


def settings(model_dir: str, root: str) -> RLConfig:
    config = RLConfig(
        model=model_dir, runs_root=root, run_name="aux-update", micro_batch_size=4,
        save_every=0, eval_size=0, env="arithmetic_retry", rewards=[],
    )  # fmt: skip
    config.rollout.n = GROUP
    config.optim.lr = 0.0
    config.aux.sp.lambda0, config.aux.id.lambda0 = 0.3, 0.2
    config.aux.max_state_tokens = 16
    return config


def update_once(model_dir: str, samples_path: str, out_dir: str) -> None:
    samples = torch.load(samples_path, weights_only=False)
    groups = [samples[i : i + GROUP] for i in range(0, len(samples), GROUP)]
    trainer = RLTrainer(settings(model_dir, out_dir))
    mine, _ = trainer.processes.shard(groups)
    metrics = trainer.update([s for group in mine for s in group])
    if trainer.is_main:
        grads = {
            name: p.grad.detach().clone()
            for name, p in trainer.model.named_parameters()
            if p.grad is not None
        }
        result = {"grads": grads, "metrics": metrics, "world": trainer.processes.world}
        torch.save(result, Path(out_dir) / "aux.pt")
    trainer.processes.barrier()


if __name__ == "__main__":
    update_once(*sys.argv[1:4])
