"""An OpenAI-compatible server as an engine: `posttrain serve`, vLLM or SGLang.

Generation goes through `RemoteGenerator` (token ids in, token ids and log-probs out).
Weights are synchronised through checkpoint directories: the trainer saves the policy with
`save_pretrained` and a `weight_sync` client asks the server to load it, in the server's
own protocol (`server_kind`: posttrain, sglang or vllm); `weight_sync: none` leaves the
server's weights alone. Every request carries the server's API key, when it has one.

`posttrain serve` takes only weight versions that move forward. A server that already
serves version V when this trainer first pushes (it served an earlier run) is sent the
trainer's versions shifted past V, and the versions it reports are shifted back, so the
trainer always sees its own numbering.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from posttrain.models.chat.base import Choice
from posttrain.models.remote_generator import RemoteGenerator
from posttrain.models.server_process import ServerProcess
from posttrain.rl.asynchronous.engines import Request, WeightUpdate
from posttrain.rl.asynchronous.weight_sync import make_weight_sync


class ServerBackend:
    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        weight_sync: str = "push",
        server_kind: str = "posttrain",
        weights_endpoint: str = "/weights",
        process: ServerProcess | None = None,
        concurrency: int = 16,
        api_key: str | None = None,
    ) -> None:
        if weight_sync not in ("push", "none"):
            raise ValueError(f"weight_sync must be 'push' or 'none', got {weight_sync!r}")
        self.base_url = base_url.rstrip("/")
        self.process = process
        self.weight_sync = weight_sync
        headers = {"authorization": f"Bearer {api_key}"} if api_key else None
        self._http = httpx.Client(timeout=300, headers=headers)
        self.sync = make_weight_sync(
            server_kind, self.base_url, self._http, weights_endpoint=weights_endpoint
        )
        self.model = model or self._first_model()
        self.generator = RemoteGenerator(self.base_url, self.model, api_key=api_key)
        self._pool = ThreadPoolExecutor(concurrency)
        self._served_at_start = self.sync.current_version()
        self.version = self._served_at_start or 0
        self._offset: int | None = None
        """Server version minus trainer version, fixed at the first push."""

    def _first_model(self) -> str:
        response = self._http.get(f"{self.base_url}/models")
        response.raise_for_status()
        return response.json()["data"][0]["id"]

    def generate_many(self, requests: Sequence[Request]) -> list[list[list[Choice]]]:
        # The server batches concurrent requests itself; send them all at once.
        results = list(self._pool.map(lambda r: self.generator.generate(*r), requests))
        # Servers that report no version (vLLM, SGLang) generated with the last push: the
        # engine loads pushes only between its batches, so none was in flight meanwhile.
        for choice in (
            c for per_request in results for per_prompt in per_request for c in per_prompt
        ):
            if choice.weight_version is None:
                choice.weight_version = self.version
            elif self._offset:
                choice.weight_version -= self._offset
        return results

    def load(self, update: WeightUpdate) -> None:
        if self.weight_sync == "none":
            return
        if update.path is None:
            raise ValueError("a server engine needs weights as a checkpoint directory (path)")
        if self._offset is None:
            served = self._served_at_start or 0  # 0: fresh, takes any version as its first
            self._offset = served + 1 - update.version if 0 < served >= update.version else 0
        self.version = self.sync.push(update.path, update.version + self._offset) - self._offset

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()
        if self.process is not None:
            self.process.stop()
