"""An engine in its own process: a policy copy generating beside the trainer, not in it.

The child is started with `spawn` (safe with torch and threads) and answers one call at a
time over a pipe; the trainer-side `BatchedEngine` is its only caller, so no request ids
are needed. Weights travel as a pickled state dict (torch moves the tensors through shared
memory).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import traceback
from collections.abc import Sequence
from typing import Any

from posttrain.models.chat.base import Choice
from posttrain.rl.asynchronous.engines import EngineCore, Request, WeightUpdate


def _serve(conn: Any, model_dir: str, torch_threads: int | None) -> None:
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
            value = getattr(core, op)(*args)
        except Exception:  # noqa: BLE001
            conn.send(("error", traceback.format_exc()))
        else:
            conn.send(("ok", value))


class ProcessBackend:
    """`EngineCore` in a child process, driven through a pipe."""

    def __init__(self, model_dir: str, torch_threads: int | None = 1, start_timeout: float = 300):
        import torch.multiprocessing  # noqa: F401  (registers tensor pickling via shared memory)

        context = mp.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, model_dir, torch_threads), daemon=True
        )
        self._process.start()
        child.close()
        if not self._conn.poll(start_timeout):
            self._process.kill()
            raise RuntimeError(f"engine process did not start within {start_timeout}s")
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"engine process failed to start:\n{value}")
        self.version = int(value)

    def _call(self, op: str, *args: Any) -> Any:
        if not self._process.is_alive():
            raise RuntimeError(f"engine process {self._process.pid} has exited")
        self._conn.send((op, args))
        try:
            status, value = self._conn.recv()
        except EOFError:
            raise RuntimeError(f"engine process {self._process.pid} died") from None
        if status != "ok":
            raise RuntimeError(f"engine process {self._process.pid}:\n{value}")
        return value

    def generate_many(self, requests: Sequence[Request]) -> list[list[list[Choice]]]:
        return self._call("generate_many", list(requests))

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
