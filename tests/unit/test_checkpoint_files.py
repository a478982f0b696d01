"""Which checkpoint a resume trusts: the newest whose manifest matches its files; scratch
of killed saves (the issue's `step-000016.tmp` with a 0-byte trainer_state.pt included) is
removed, and an unreadable trainer state is an error naming the file, not a bare EOFError
(which the CLI turned into `Aborted.`)."""

import logging
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from posttrain import atomic
from posttrain.rl.checkpoint import (
    MANIFEST,
    STATE_FILE,
    CheckpointError,
    incomplete,
    latest_checkpoint,
    load_trainer_state,
    prune_checkpoints,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]])).loss.backward()
    optimizer.step()  # optimiser state worth saving
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return model, AutoTokenizer.from_pretrained(tiny_model_dir), optimizer, scheduler


def save(checkpoints, step, policy):
    return save_checkpoint(checkpoints / f"step-{step:06d}", *policy, {"step": step})


def test_a_save_is_a_complete_model_directory_with_a_manifest(policy, tmp_path):
    directory = save(tmp_path, 3, policy)
    assert incomplete(directory) is None
    assert {MANIFEST, STATE_FILE, "model.safetensors", "config.json"} <= {
        p.name for p in directory.iterdir()
    }
    state = load_trainer_state(directory)
    assert state["step"] == 3
    assert state["optimizer"]["state"]  # AdamW moments, to continue exactly
    AutoModelForCausalLM.from_pretrained(directory)  # servable as it is
    assert [p.name for p in tmp_path.iterdir()] == ["step-000003"]  # no scratch left


def test_resume_skips_what_a_killed_save_left_and_removes_its_scratch(policy, tmp_path, caplog):
    save(tmp_path, 12, policy)
    # The issue: the old scratch name matched step-*, sorted last, had a 0-byte state file.
    (tmp_path / "step-000016.tmp").mkdir()
    (tmp_path / "step-000016.tmp" / STATE_FILE).write_bytes(b"")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = atomic.scratch_path(tmp_path / "step-000020").name.replace(
        f"-{os.getpid()}", f"-{int(dead.stdout)}"
    )
    (tmp_path / stale).mkdir()
    (tmp_path / stale / STATE_FILE).write_bytes(b"")
    # A step directory whose save never finished (no manifest), and one truncated later.
    unfinished = save(tmp_path, 14, policy)
    (unfinished / MANIFEST).unlink()
    truncated = save(tmp_path, 15, policy)
    (truncated / STATE_FILE).write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="posttrain.rl.checkpoint"):
        assert latest_checkpoint(tmp_path) == tmp_path / "step-000012"
    warned = caplog.text
    assert "step-000015: not a complete checkpoint (trainer_state.pt has 0 bytes" in warned
    assert f"step-000014: not a complete checkpoint (no {MANIFEST}" in warned
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["step-000012", "step-000014", "step-000015"]  # scratch gone, data kept


def test_steps_are_ordered_by_number_not_by_name(policy, tmp_path):
    save(tmp_path, 999_999, policy)
    newest = save_checkpoint(tmp_path / "step-1000000", *policy, {"step": 1_000_000})
    assert latest_checkpoint(tmp_path) == newest


def test_an_unreadable_trainer_state_is_an_error_naming_the_file(policy, tmp_path):
    directory = save(tmp_path, 2, policy)
    size = (directory / STATE_FILE).stat().st_size
    (directory / STATE_FILE).write_bytes(b"\0" * size)  # same size: the manifest cannot tell
    with pytest.raises(CheckpointError, match=f"{directory / STATE_FILE}: unreadable"):
        load_trainer_state(directory)


def test_prune_keeps_the_newest_complete_checkpoints(policy, tmp_path):
    for step in (1, 2, 3):
        save(tmp_path, step, policy)
    (save(tmp_path, 4, policy) / MANIFEST).unlink()  # incomplete: neither kept nor counted
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-000002",
        "step-000003",
        "step-000004",
    ]
    prune_checkpoints(tmp_path, keep=0)  # 0 keeps every checkpoint
    assert len(list(tmp_path.iterdir())) == 3
