"""Kill a real RL process inside a checkpoint save, resume it, and compare the outcome with
an uninterrupted run; for test_checkpoint_kill.

    python checkpoint_kill.py MODEL_DIR WORK_DIR POINTS OUT.json

Every run is a forked child of this process (the imports are paid once; the parent never
runs torch, whose thread pools a forked child would inherit broken). The reference child
trains STEPS steps with a checkpoint after each (keeping one, so every save after the first
also prunes), copies its run directory after each save but the last (the starting point of
the scenarios that kill the next save), and lists the file-system calls of each save as a
profile hook sees them: mkdirs, opens, writes (one tensor record of trainer_state.pt is
one), the safetensors and tokenizer writers, fsyncs, renames, unlinks.

A scenario copies the starting point of save S; a child resumes it and SIGKILLs itself
just before call K of save S; another child resumes that run to the end. The outcome must
match the reference bit for bit: the final weights, the last checkpoint's weights and
trainer state (optimiser, scheduler, RNG states, data position), the metrics and the
rollout log, and no scratch may be left.

POINTS: `all` (every call of every save), or comma-separated labels: `first-save` (halfway
into trainer_state.pt of the first save, before any checkpoint exists), and of the last
save `state` (halfway into trainer_state.pt), `publish` (the rename that publishes the
checkpoint) and `prune` (the rename that retires the one before).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sys
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

from posttrain.atomic import is_staged
from posttrain.rl import trainer as trainer_module
from posttrain.rl.config import RLConfig
from posttrain.rl.trainer import RLTrainer
from posttrain.runs import Run, read_metrics

STEPS = 2
FS_FUNCTIONS = {"open", "mkdir", "rename", "replace", "unlink", "rmdir", "fsync", "ftruncate"}
"""Module-level calls (posix, io, builtins) that create, change or sync files."""
FILE_METHODS = {"write", "flush", "close", "truncate"}
"""Methods of an open file (not stdout or stderr)."""
WRITERS = {
    "write_record": "torch",  # one tensor (or the pickle) into trainer_state.pt's zip
    "write_end_of_file": "torch",
    "serialize_file": "safetensors",  # model.safetensors in one call
}
STREAMS = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)


def settings(root: Path, model_dir: str) -> RLConfig:
    config = RLConfig(
        model=model_dir,
        runs_root=str(root),
        run_name="run",
        steps=STEPS,
        save_every=1,
        keep_checkpoints=1,
        prompts_per_step=4,
        eval_every=0,
        eval_size=0,
        log_rollouts=True,
        seed=1,
    )
    config.rollout.n = 4
    config.rollout.max_tokens = 6
    return config


def fs_call(arg: Any) -> str | None:
    """`where:name` of a C call that touches the file system, or None."""
    name = getattr(arg, "__name__", "")
    owner = getattr(arg, "__self__", None)
    if name in WRITERS:
        return f"{WRITERS[name]}:{name}"
    if isinstance(owner, types.ModuleType) and name in FS_FUNCTIONS:
        return f"{owner.__name__}:{name}"
    if isinstance(owner, io.IOBase) and name in FILE_METHODS and owner not in STREAMS:
        return f"{type(owner).__name__}:{name}"
    if name == "save" and type(owner).__name__ == "Tokenizer":
        return "tokenizers:save"
    return None


def trace_saves(on_call: Callable[[int, str], None], after: Callable | None = None) -> None:
    """Report each file-system call of RLTrainer.save as `on_call(step, call)`; `after(self)`
    runs when a save returns."""
    original = RLTrainer.save

    def save(self: RLTrainer) -> None:
        step = self.step

        def hook(frame, event, arg) -> None:  # noqa: ANN001
            if event == "c_call" and (call := fs_call(arg)) is not None:
                on_call(step, call)

        sys.setprofile(hook)
        try:
            original(self)
        finally:
            sys.setprofile(None)
        if after is not None:
            after(self)

    RLTrainer.save = save  # type: ignore[method-assign]


def train(model_dir: str, root: Path) -> None:
    config = settings(root, model_dir)
    trainer = RLTrainer(config, Run.create(config.run_name, config, root=root))
    (root / "resumed_from.txt").write_text(str(trainer.step))
    trainer.train()
    trainer.run.close()


def reference(model_dir: str, work: Path) -> None:
    calls: dict[int, list[str]] = {step: [] for step in range(1, STEPS + 1)}

    def keep(self: RLTrainer) -> None:
        if self.step < STEPS:  # the starting point of the scenarios that kill the next save
            shutil.copytree(self.run.path, work / f"before-save-{self.step + 1}" / "run")
        # Kept to show that every step trained (pruning removes them from the run).
        saved = self.run.checkpoint_dir(self.step) / "model.safetensors"
        shutil.copy(saved, work / f"step-{self.step}.safetensors")

    trace_saves(lambda step, call: calls[step].append(call), keep)
    (work / "before-save-1").mkdir()
    train(model_dir, work / "reference")
    (work / "calls.json").write_text(json.dumps(calls))


def killed(model_dir: str, root: Path, save: int, kill_at: int) -> None:
    count = 0

    def on_call(step: int, call: str) -> None:
        nonlocal count
        if step != save:
            return
        count += 1
        if count == kill_at:
            (root / "killed_at.txt").write_text(call)
            os.kill(os.getpid(), signal.SIGKILL)

    trace_saves(on_call)
    train(model_dir, root)


def in_child(log: Path, work: Callable, *args: Any) -> int:
    """Run `work(*args)` in a forked child; its exit status (-9: SIGKILLed)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            torch.set_num_threads(1)  # the same in every child: 2 shared cores, no contention
            work(*args)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


# ------------------------------------------------------------------------ comparison


def same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return a == b


def differences(run: Path, ref: Path) -> list[str]:
    """What differs between a resumed run directory and the reference's."""
    found = []
    last = f"checkpoints/step-{STEPS:06d}"
    for name in ("checkpoints/final/model.safetensors", f"{last}/model.safetensors"):
        if not (run / name).is_file() or (run / name).read_bytes() != (ref / name).read_bytes():
            found.append(name)
    state = f"{last}/trainer_state.pt"
    if not (run / state).is_file() or not same(
        torch.load(run / state, weights_only=False), torch.load(ref / state, weights_only=False)
    ):
        found.append(state)
    if deterministic(read_metrics(run)) != deterministic(read_metrics(ref)):
        found.append("metrics.jsonl")
    if (run / "rollouts.jsonl").read_text() != (ref / "rollouts.jsonl").read_text():
        found.append("rollouts.jsonl")
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    if kept != sorted(p.name for p in (ref / "checkpoints").iterdir()):
        found.append(f"checkpoints/ holds {kept}")
    return found


def resume_and_compare(model_dir: str, root: Path, ref: Path) -> None:
    train(model_dir, root)
    (root / "differences.json").write_text(json.dumps(differences(root / "run", ref)))


def deterministic(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in r.items() if k != "time" and not k.startswith(("time/", "samples_"))}
        for r in records
    ]


# ------------------------------------------------------------------------ scenarios


def choose(calls: dict[int, list[str]], points: str) -> list[tuple[int, int]]:
    """(save, 1-based call) pairs to kill at."""
    if points == "all":
        return [(save, k) for save in calls for k in range(1, len(calls[save]) + 1)]

    def where(save: int, call: str) -> list[int]:
        return [i for i, c in enumerate(calls[save], 1) if c == call]

    records = where(1, "torch:write_record")
    labels = {"first-save": (1, records[len(records) // 2])}
    if STEPS > 1:
        records, renames = where(STEPS, "torch:write_record"), where(STEPS, "posix:rename")
        labels["state"] = (STEPS, records[len(records) // 2])
        labels["publish"] = (STEPS, renames[0])
        labels["prune"] = (STEPS, renames[-1])
    return [labels[p] for p in points.split(",")]


def scenario(model_dir: str, work: Path, ref: Path, save: int, kill_at: int) -> dict[str, Any]:
    started = time.perf_counter()
    root = work / f"kill-{save}-{kill_at:04d}"
    shutil.copytree(work / f"before-save-{save}", root)
    log = root / "child.log"
    first = in_child(log, killed, model_dir, root, save, kill_at)
    checkpoints = root / "run" / "checkpoints"
    left = sorted(p.name for p in checkpoints.iterdir()) if checkpoints.is_dir() else []
    resumed = in_child(log, resume_and_compare, model_dir, root, ref) == 0
    diff = json.loads((root / "differences.json").read_text()) if resumed else ["resume failed"]
    result = {
        "save": save,
        "kill_at": kill_at,
        "killed": first == -signal.SIGKILL,
        "killed_at": _text(root / "killed_at.txt"),
        "left_after_kill": left,
        "resumed": resumed,
        "resumed_from_step": int(_text(root / "resumed_from.txt") or -1),
        "identical": resumed and not diff,
        "differences": diff,
        "scratch_left": [p.name for p in checkpoints.iterdir() if is_staged(p.name)],
        "seconds": round(time.perf_counter() - started, 2),
    }
    if result["identical"] and result["killed"]:
        shutil.rmtree(root)  # failures stay for a look
    return result


def _text(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def main(model_dir: str, work: Path, points: str, out: Path) -> None:
    started = time.perf_counter()
    transformers.utils.logging.disable_progress_bar()
    # report.html takes seconds of plotting per run and is not what is compared here.
    trainer_module.write_report = lambda *args, **kwargs: None
    work.mkdir(parents=True, exist_ok=True)
    status = in_child(work / "reference.log", reference, model_dir, work)
    if status != 0:
        raise SystemExit(f"reference run failed ({status}): see {work / 'reference.log'}")
    calls = {int(k): v for k, v in json.loads((work / "calls.json").read_text()).items()}
    weights = [(work / f"step-{s}.safetensors").read_bytes() for s in range(1, STEPS + 1)]
    reference_seconds = time.perf_counter() - started
    ref = work / "reference" / "run"
    results = [scenario(model_dir, work, ref, s, k) for s, k in choose(calls, points)]
    summary = {
        "calls_per_save": {s: len(c) for s, c in calls.items()},
        "calls": calls,
        "every_step_trained": len(set(weights)) == len(weights),
        "kill_points": len(results),
        "killed": sum(r["killed"] for r in results),
        "resumed": sum(r["resumed"] for r in results),
        "identical": sum(r["identical"] for r in results),
        "reference_seconds": round(reference_seconds, 2),
        "seconds": round(time.perf_counter() - started, 2),
        "results": results,
    }
    out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
