"""An OpenAI-compatible server as an engine: `posttrain serve`, vLLM or SGLang.

Generation goes through `RemoteGenerator` (token ids in, token ids and log-probs out).
Weights are synchronised through the checkpoint-directory path: the trainer saves the
policy with `save_pretrained` and POSTs `{"path": dir, "version": v}` to `<url>/weights`,
which `posttrain serve` implements; `weight_sync: none` leaves the server's weights alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from posttrain.models.chat.base import Choice
from posttrain.models.remote_generator import RemoteGenerator
from posttrain.models.server_process import ServerProcess
from posttrain.rl.asynchronous.engines import Request, WeightUpdate


class ServerBackend:
    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        weight_sync: str = "push",
        weights_endpoint: str = "/weights",
        process: ServerProcess | None = None,
        concurrency: int = 16,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.process = process
        self.weight_sync = weight_sync
        self.weights_url = f"{self.base_url}/{weights_endpoint.lstrip('/')}"
        self._http = httpx.Client(timeout=300)
        self.model = model or self._first_model()
        self.generator = RemoteGenerator(self.base_url, self.model)
        self._pool = ThreadPoolExecutor(concurrency)
        self.version = self._server_version()

    def _first_model(self) -> str:
        response = self._http.get(f"{self.base_url}/models")
        response.raise_for_status()
        return response.json()["data"][0]["id"]

    def _server_version(self) -> int:
        response = self._http.get(self.weights_url)
        return int(response.json().get("weight_version", 0)) if response.is_success else 0

    def generate_many(self, requests: Sequence[Request]) -> list[list[list[Choice]]]:
        # The server batches concurrent requests itself; send them all at once.
        return list(self._pool.map(lambda r: self.generator.generate(*r), requests))

    def load(self, update: WeightUpdate) -> None:
        if self.weight_sync == "none":
            return
        if update.path is None:
            raise ValueError("a server engine needs weights as a checkpoint directory (path)")
        response = self._http.post(
            self.weights_url, json={"path": update.path, "version": update.version}
        )
        if not response.is_success:
            raise RuntimeError(
                f"{self.weights_url} refused the push ({response.status_code}): "
                f"{response.text[:300]}"
            )
        self.version = int(response.json().get("weight_version", update.version))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()
        if self.process is not None:
            self.process.stop()
