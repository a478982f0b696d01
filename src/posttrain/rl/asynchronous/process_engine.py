"""An engine in its own process: a policy copy generating beside the trainer, not in it.

The child is started with `spawn` (safe with torch and threads) and answers one call at a
time over a pipe; the trainer-side `BatchedEngine` is its only caller, so no request ids
are needed. Weights travel as a pickled state dict (torch moves the tensors through shared
memory). An interrupting push (partial rollouts) reaches the child through a shared
`multiprocessing.Event`, which the child's `EngineCore` checks at every decode step.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import threading
import traceback
from collections.abc import Sequence
from typing import Any

from posttrain.models.chat.base import Choice
from posttrain.rl.asynchronous.engines import EngineCore, Request, WeightUpdate


def _serve(conn: Any, model_dir: str, torch_threads: int | None, interrupt: Any) -> None:
    try:
        core = EngineCore(model_dir, torch_threads)
    except Exception:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", core.version))
    while True:
        try:
            op, args = conn.recv()
        except EOFError:
            return
        if op == "close":
            conn.send(("ok", None))
            return
        try:
            if op == "generate_many":  # stops at the decode step where `interrupt` is set
                value = core.generate_many(*args, interrupt)
            else:
                value = getattr(core, op)(*args)
        except Exception:  # noqa: BLE001
            conn.send(("error", traceback.format_exc()))
        else:
            conn.send(("ok", value))


class ProcessBackend:
    """`EngineCore` in a child process, driven through a pipe."""

    interruptible = True

    def __init__(self, model_dir: str, torch_threads: int | None = 1, start_timeout: float = 300):
        import torch.multiprocessing  # noqa: F401  (registers tensor pickling via shared memory)
        from transformers import AutoTokenizer

        context = mp.get_context("spawn")
        self._conn, child = context.Pipe()
        self._interrupt = context.Event()
        self._process = context.Process(
            target=_serve, args=(child, model_dir, torch_threads, self._interrupt), daemon=True
        )
        self._process.start()
        child.close()
        if not self._conn.poll(start_timeout):
            self._process.kill()
            raise RuntimeError(f"engine process did not start within {start_timeout}s")
        try:
            status, value = self._conn.recv()
        except EOFError:
            status, value = "error", f"exit code {self._process.join(5) or self._process.exitcode}"
        if status != "ok":
            raise RuntimeError(f"engine process failed to start:\n{value}")
        self.version = int(value)
        self._tokenizer = AutoTokenizer.from_pretrained(model_dir)  # for `decode`, here

    def _call(self, op: str, *args: Any, interrupt: threading.Event | None = None) -> Any:
        if not self._process.is_alive():
            raise RuntimeError(f"engine process {self._process.pid} has exited")
        self._conn.send((op, args))
        while interrupt is not None and not self._conn.poll(0.005):
            if interrupt.is_set():  # pass the trainer's interrupt on to the child
                self._interrupt.set()
                interrupt = None
        try:
            status, value = self._conn.recv()
        except EOFError:
            raise RuntimeError(f"engine process {self._process.pid} died") from None
        if status != "ok":
            raise RuntimeError(f"engine process {self._process.pid}:\n{value}")
        return value

    def generate_many(
        self, requests: Sequence[Request], interrupt: threading.Event | None = None
    ) -> list[list[list[Choice]]]:
        self._interrupt.clear()
        if interrupt is not None and interrupt.is_set():
            self._interrupt.set()
        return self._call("generate_many", list(requests), interrupt=interrupt)

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def load(self, update: WeightUpdate) -> None:
        self._call("load", update)
        self.version = update.version

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(RuntimeError, OSError):
                self._call("close")
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
        self._conn.close()
