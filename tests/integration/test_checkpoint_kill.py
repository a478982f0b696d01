"""A kill at any moment costs at most the save it interrupts.

A real RL process is SIGKILLed inside a checkpoint save (checkpoint_kill.py forks it and it
kills itself just before a chosen file-system call of the save), resumed in a new process,
and must end bit-identical to an uninterrupted run. A damaged newest checkpoint is skipped
with a warning, and a killed warm start's scratch is cleaned and never taken for a result.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from posttrain import atomic
from posttrain.rl.checkpoint import MANIFEST, STATE_FILE
from posttrain.rl.config import RLConfig
from posttrain.rl.trainer import RLTrainer
from posttrain.runs import Run, read_metrics

DRIVER = Path(__file__).with_name("checkpoint_kill.py")


def kill_and_resume(model_dir: Path, work: Path, points: str, timeout: int) -> dict:
    out = work / "summary.json"
    command = [sys.executable, str(DRIVER), str(model_dir), str(work / "runs"), points, str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(out.read_text())
    assert summary["every_step_trained"]  # a no-op step would make "identical" trivial
    for result in summary["results"]:
        call = summary["calls"][str(result["save"])][result["kill_at"] - 1]
        assert result["killed"] and result["killed_at"] == call, result
        assert result["resumed"] and result["identical"], result
        assert result["scratch_left"] == [], result
    return summary


def test_kills_inside_a_save_resume_bit_identical(warm_started, tmp_path):
    summary = kill_and_resume(warm_started[0].model_dir, tmp_path, "state,prune", timeout=300)
    state, prune = summary["results"]
    # Halfway into trainer_state.pt: the scratch is ignored, step 2 is redone from step 1.
    assert state["left_after_kill"][0].startswith(".step-000002.partial-")
    assert state["left_after_kill"][1:] == ["step-000001"] and state["resumed_from_step"] == 1
    # Published but not yet pruned: resume trusts step 2, and prunes step 1 itself.
    assert prune["left_after_kill"] == ["step-000001", "step-000002"]
    assert prune["resumed_from_step"] == 2


@pytest.mark.slow
@pytest.mark.timeout(7200)
def test_every_kill_point_of_every_save_resumes_bit_identical(warm_started, tmp_path):
    summary = kill_and_resume(warm_started[0].model_dir, tmp_path, "all", timeout=7000)
    assert summary["kill_points"] == sum(summary["calls_per_save"].values())
    figures = {k: summary[k] for k in ("calls_per_save", "kill_points", "killed", "resumed")}
    print(json.dumps({**figures, "identical": summary["identical"], "s": summary["seconds"]}))


def rl_config(model_dir, root, steps: int) -> RLConfig:
    config = RLConfig(
        model=str(model_dir),
        runs_root=str(root),
        steps=steps,
        save_every=1,
        keep_checkpoints=0,
        prompts_per_step=4,
        eval_every=0,
        eval_size=0,
        seed=1,
    )
    config.rollout.n = 4
    config.rollout.max_tokens = 6
    return config


def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning(
    warm_started, tmp_path, caplog, monkeypatch
):
    from posttrain.rl import trainer as module

    monkeypatch.setattr(module, "write_report", lambda *args, **kwargs: None)  # seconds each
    config = rl_config(warm_started[0].model_dir, tmp_path, steps=2)
    RLTrainer(config, Run.create(config.run_name, config, root=tmp_path)).train()
    checkpoints = tmp_path / config.run_name / "checkpoints"
    weights = (checkpoints / "step-000002" / "model.safetensors").read_bytes()
    (checkpoints / "step-000002" / STATE_FILE).write_bytes(b"")  # the 0-byte file
    (checkpoints / "step-000003.tmp").mkdir()  # and the old scratch name, which sorted last
    (checkpoints / "step-000003.tmp" / STATE_FILE).write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="posttrain.rl.checkpoint"):
        trainer = RLTrainer(config, Run.create(config.run_name, config, root=tmp_path))
    assert trainer.step == 1  # from step-000001, not an EOFError ("Aborted.")
    assert "step-000002: not a complete checkpoint (trainer_state.pt has 0 bytes" in caplog.text
    assert not (checkpoints / "step-000003.tmp").exists()
    trainer.train()
    # Step 2 redone from step 1: the same weights, published over the damaged directory.
    assert (checkpoints / "step-000002" / "model.safetensors").read_bytes() == weights
    assert (checkpoints / "step-000002" / MANIFEST).is_file()
    assert [r["step"] for r in read_metrics(tmp_path / config.run_name)] == [1, 2]


# ---------------------------------------------------------------------------- warm start

TASK = {"n_train": 64, "n_test": 8}
WARM = """
import sys
from posttrain.data.arithmetic import ArithmeticTask
from posttrain.sft.warm_start import WarmStartConfig, warm_start
warm_start(WarmStartConfig(base_model=sys.argv[1], cache_dir=sys.argv[2], steps=int(sys.argv[3]),
           batch_size=4, task=ArithmeticTask(n_train=64, n_test=8)))
"""


def warm_config(model_dir, cache, steps):
    from posttrain.data.arithmetic import ArithmeticTask
    from posttrain.sft.warm_start import WarmStartConfig

    task = ArithmeticTask(**TASK)
    return WarmStartConfig(
        base_model=str(model_dir), cache_dir=str(cache), steps=steps, batch_size=4, task=task
    )


def test_what_a_dead_warm_start_left_is_removed_and_never_a_cache_hit(
    tiny_model_dir, tmp_path, monkeypatch
):
    """Leftovers of warm starts whose process is gone, under the key the next one needs:
    its scratch (holding a warm_start.json), the `<key>.tmp-<pid>` of older posttrain, and a
    key directory without warm_start.json. The next warm start trains and replaces them."""
    from posttrain.data.arithmetic import make_splits
    from posttrain.sft import warm_start as module
    from posttrain.sft.trainer import sft_rows

    config = warm_config(tiny_model_dir, tmp_path / "cache", steps=3)
    train, _ = make_splits(config.task)
    key = module.content_key(config, sft_rows(train, "arithmetic task"))
    root = module.cache_root(config)
    leave = f"""
import os, pathlib, signal, sys
from posttrain import atomic
root = pathlib.Path(sys.argv[1])
for path in (atomic.scratch_path(root / "{key}"), root / "{key}.tmp-{{}}".format(os.getpid())):
    path.mkdir(parents=True)
    (path / "warm_start.json").write_text('{{"accuracy": 1.0}}')
(root / "{key}").mkdir()
os.kill(os.getpid(), signal.SIGKILL)
"""
    dead = subprocess.run([sys.executable, "-c", leave, str(root)], capture_output=True)
    assert dead.returncode == -signal.SIGKILL, dead.stderr
    assert len(list(root.iterdir())) == 3

    def fake_fine_tune(settings, rows, out, trainer_dir, run=None, name="sft"):
        (out / "model.safetensors").write_bytes(b"trained")
        return [{"step": 3, "loss": 1.0}]

    monkeypatch.setattr(module, "fine_tune", fake_fine_tune)
    monkeypatch.setattr(module, "_evaluate", lambda *args: 0.25)
    result = module.warm_start(config)
    assert not result.cached and result.accuracy == 0.25
    assert [p.name for p in root.iterdir()] == [key]
    assert (result.model_dir / "model.safetensors").read_bytes() == b"trained"
    assert module.warm_start(config).cached


@pytest.mark.slow
def test_a_warm_start_killed_while_training_is_redone(tiny_model_dir, tmp_path):
    """A real warm start is SIGKILLed once its scratch exists; the next one with the same
    settings trains (no cache hit), removes that scratch and publishes a complete entry."""
    from posttrain.sft.warm_start import cache_root, warm_start

    config = warm_config(tiny_model_dir, tmp_path / "cache", steps=40)
    args = [sys.executable, "-c", WARM, str(tiny_model_dir), config.cache_dir, "40"]
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = cache_root(config)
    deadline = time.monotonic() + 300
    while not (root.is_dir() and any(atomic.is_staged(p.name) for p in root.iterdir())):
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline, "the warm start never staged its output"
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    left = [p.name for p in root.iterdir()]
    assert len(left) == 1 and atomic.is_staged(left[0]), left  # nothing under the key

    result = warm_start(config)
    assert not result.cached
    assert [p.name for p in root.iterdir()] == [result.model_dir.name]
    assert (result.model_dir / "warm_start.json").is_file()
    assert warm_start(config).cached
