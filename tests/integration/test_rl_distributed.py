"""Data-parallel RL on two CPU processes (gloo), as `accelerate launch` runs it.

- One update over two processes equals one process's update over the same samples: the
  loss and every parameter's gradient, for GRPO (with a reference model and IcePop) and for
  online DPO, with uneven micro-batch counts between the processes.
- `posttrain rl` under `accelerate launch --multi_gpu --num_processes 2` (accelerate's
  multi-process launcher; on a CPU-only machine the engine runs it on gloo) trains, writes
  the run once, and resumes from its checkpoint exactly as an uninterrupted run (these two
  launch processes for half a minute or more, so they run in `make test-all`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from posttrain.models.server_process import free_port
from posttrain.rl.losses import token_logprobs
from posttrain.rl.rollout import encode_prompt
from posttrain.rl.sample import Sample
from posttrain.runs import read_metrics

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
TIMING = ("time/", "samples_per_s")


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    return env


def fixed_samples(model_dir: Path, groups: int = 5, size: int = 4) -> list[Sample]:
    """Groups of responses of different lengths with rewards that differ within each group,
    and rollout log-probs near the model's own (noise puts some tokens outside IcePop's band)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    generator = torch.Generator().manual_seed(0)
    samples = []
    for group in range(groups):
        prompt = encode_prompt(tokenizer, f"{group + 3}+{group + 5}=")
        rewards = torch.rand(size, generator=generator)
        advantages = (rewards - rewards.mean()) / (rewards.std() + 1e-4)
        for i in range(size):
            length = 2 + (group + i) % 4
            response = torch.randint(5, tokenizer.vocab_size, (length,), generator=generator)
            ids = torch.tensor([prompt + response.tolist()])
            with torch.no_grad():
                logits = model(input_ids=ids).logits[:, :-1]
            logp = token_logprobs(logits, ids[:, 1:])[0, len(prompt) - 1 :]
            noise = 0.5 * torch.randn(length, generator=generator)
            samples.append(
                Sample(
                    prompt_ids=prompt,
                    response_ids=response.tolist(),
                    loss_mask=[1] * length,
                    rollout_logprobs=(logp + noise).tolist(),
                    group_id=group,
                    reward=float(rewards[i]),
                    advantage=float(advantages[i]),
                )
            )
    return samples


def updates_on_one_and_two_processes(
    model_dir: Path, samples: list[Sample], tmp_path: Path, kinds: tuple[str, ...]
) -> dict[str, tuple[dict, dict]]:
    """`distributed_update.py` under torchrun with two processes and in this process: for
    each kind, (one process's result, two processes' result), checked to agree."""
    sys.path.insert(0, str(HERE))
    from distributed_update import update_once  # beside this file

    samples_path = tmp_path / "samples.pt"
    torch.save(samples, samples_path)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(free_port()), str(HERE / "distributed_update.py"),
        str(model_dir), str(samples_path), str(two), ",".join(kinds),
    ]  # fmt: skip
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    update_once(str(model_dir), str(samples_path), str(one), ",".join(kinds))
    results = {}
    for kind in kinds:
        single = torch.load(one / f"{kind}.pt", weights_only=False)
        double = torch.load(two / f"{kind}.pt", weights_only=False)
        assert (single["world"], double["world"]) == (1, 2)
        assert double["metrics"]["loss"] == pytest.approx(single["metrics"]["loss"], rel=1e-5)
        assert single["grads"].keys() == double["grads"].keys() and single["grads"]
        for name, grad in single["grads"].items():
            torch.testing.assert_close(double["grads"][name], grad, rtol=1e-4, atol=1e-7)
        results[kind] = single, double
    return results


def test_an_update_over_two_processes_equals_one_over_the_same_samples(tiny_model_dir, tmp_path):
    results = updates_on_one_and_two_processes(
        tiny_model_dir, fixed_samples(tiny_model_dir), tmp_path, ("ppo", "online_dpo")
    )
    # The GRPO batch had tokens outside IcePop's band and a reference to pull towards.
    ppo = results["ppo"][0]["metrics"]
    assert ppo["kl"] == pytest.approx(0.0, abs=1e-9) and ppo["logp_abs_diff"] > 0.1


def _launch(tmp_path: Path, model: Path, steps: int, name: str) -> list[dict]:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", str(free_port()),
        "-m", "posttrain", "rl", "--config", str(ROOT / "configs/rl/tiny.yaml"),
        "--set", f"model={model}", "--set", f"steps={steps}", "--set", "prompts_per_step=4",
        "--set", "rollout.n=4", "--set", "rollout.max_tokens=4", "--set", "eval_every=2",
        "--set", "eval_size=8", "--set", "save_every=2", "--set", f"run_name={name}",
        "--set", f"runs_root={tmp_path}", "--set", "log_rollouts=true",
    ]  # fmt: skip
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return read_metrics(tmp_path / name)


def _deterministic(records: list[dict]) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k != "time" and not k.startswith(TIMING)} for r in records
    ]


@pytest.mark.slow  # two launches of two processes: about half a minute (make test-all)
def test_posttrain_rl_on_two_processes_trains_and_resumes(tiny_model_dir, tmp_path):
    first = _launch(tmp_path, tiny_model_dir, 2, "run")
    assert [r["step"] for r in first] == [0, 1, 2]  # written once, not once per process
    state = torch.load(
        tmp_path / "run/checkpoints/step-000002/trainer_state.pt", weights_only=False
    )
    assert len(state["rng_per_process"]) == 2
    resumed = _launch(tmp_path, tiny_model_dir, 3, "run")
    assert [r["step"] for r in resumed] == [0, 1, 2, 3]
    assert _deterministic(resumed[:3]) == _deterministic(first)  # the first steps are kept
    lines = (tmp_path / "run/rollouts.jsonl").read_text().splitlines()
    per_step = [sum(f'"step": {step},' in line for line in lines) for step in (1, 2, 3)]
    assert per_step == [16, 16, 16]  # 4 prompts x 4 samples, from both processes, once
    assert (tmp_path / "run/checkpoints/final/model.safetensors").is_file()


@pytest.mark.slow
def test_a_resumed_two_process_run_equals_an_uninterrupted_one(tiny_model_dir, tmp_path):
    _launch(tmp_path, tiny_model_dir, 2, "resumed")
    resumed = _launch(tmp_path, tiny_model_dir, 4, "resumed")
    whole = _launch(tmp_path, tiny_model_dir, 4, "whole")
    assert [r["step"] for r in resumed] == [0, 1, 2, 3, 4]
    assert _deterministic(resumed) == _deterministic(whole)
