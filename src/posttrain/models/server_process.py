"""Start `posttrain serve` as a subprocess on a free loopback port and wait until it answers.

Used by the demo, by recipes that need a served policy, and by the tests. The server gets
exactly the API key given here (through its environment, which other users cannot read,
unlike its command line), or none.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

API_KEY_ENV = "POSTTRAIN_API_KEY"  # read by both servers (posttrain.models.server.security)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A server subprocess; use as a context manager so it is always stopped."""

    def __init__(
        self,
        args: list[str],
        host: str = "127.0.0.1",
        port: int | None = None,
        ready_path: str = "/health",
        log_path: str | Path | None = None,
        startup_timeout: float = 120.0,
        api_key: str | None = None,
    ) -> None:
        self.api_key = api_key
        """The key clients must send (None: the server takes none)."""
        self.host = host
        self.port = port or free_port(host)
        self.args = [*args, "--host", host, "--port", str(self.port)]
        self.ready_path = ready_path
        self.log_path = Path(log_path) if log_path else None
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (ends in /v1)."""
        return f"{self.url}/v1"

    @property
    def headers(self) -> dict[str, str]:
        """What an HTTP client sends to be let in."""
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def start(self) -> ServerProcess:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
        env.pop(API_KEY_ENV, None)
        if self.api_key:
            env[API_KEY_ENV] = self.api_key
        if self.log_path:
            # The child keeps its own copy of the descriptor; ours can close at once.
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    self.args, stdout=log, stderr=subprocess.STDOUT, env=env
                )
        else:
            self.process = subprocess.Popen(
                self.args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with code {self.process.returncode} before it was ready: "
                    f"{' '.join(self.args)}" + (f" (log: {self.log_path})" if self.log_path else "")
                )
            try:
                if httpx.get(self.url + self.ready_path, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"server not ready after {self.startup_timeout}s: {' '.join(self.args)}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_model(model_dir: str | Path, *extra: str, **kwargs: object) -> ServerProcess:
    """A `posttrain serve MODEL_DIR` subprocess (not yet started)."""
    args = [sys.executable, "-m", "posttrain", "serve", str(model_dir), *extra]
    return ServerProcess(args, **kwargs)  # type: ignore[arg-type]
