"""Telling a running inference server to load a checkpoint directory, in its own dialect.

The trainer saves the policy with `save_pretrained` into a directory the server can read,
then one of these clients asks the server to load it:

- `posttrain` (`posttrain serve`): `POST <base_url>/weights {"path": dir, "version": v}`,
  answered with `{"weight_version": v}`. The server loads only from under its
  `--weights-root` and only versions that move forward (`ServerBackend` shifts them).
- `sglang`: `POST <root>/update_weights_from_disk {"model_path": dir, "weight_version":
  "v"}` (plus `load_format` when set), answered with `{"success": ..., "message": ...}`;
  SGLang serves it at the root, not under /v1. `posttrain serve` accepts it too.
- `vllm`: `POST <root>/collective_rpc {"method": "reload_weights", "kwargs":
  {"weights_path": dir}}`, then `POST <root>/reset_prefix_cache` so no prompt reuses KV
  computed by the old weights. Both endpoints exist only when the server runs with
  `VLLM_SERVER_DEV_MODE=1`, and `reload_weights` takes `weights_path` only after vLLM 0.12.

`<root>` is the base URL without its trailing `/v1`. SGLang and vLLM do not stamp responses
with a weight version, so the engine records the version it last pushed.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

SERVER_KINDS = ("posttrain", "sglang", "vllm")


class WeightSync(Protocol):
    """One server's way of loading new weights."""

    def current_version(self) -> int | None:
        """The version the server reports now, or None if it keeps none."""
        ...

    def push(self, path: str, version: int) -> int:
        """Have the server load the checkpoint at `path`; returns the version it now serves."""
        ...


def server_root(base_url: str) -> str:
    """`http://host:port/v1` -> `http://host:port` (where SGLang's and vLLM's admin API is)."""
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def make_weight_sync(
    kind: str,
    base_url: str,
    http: httpx.Client,
    *,
    weights_endpoint: str = "/weights",
    load_format: str | None = None,
) -> WeightSync:
    """The client for a server of `kind` ("posttrain", "sglang" or "vllm")."""
    if kind == "posttrain":
        return PosttrainWeightSync(base_url, http, weights_endpoint)
    if kind == "sglang":
        return SGLangWeightSync(base_url, http, load_format)
    if kind == "vllm":
        return VLLMWeightSync(base_url, http)
    raise ValueError(f"unknown server kind {kind!r}; expected one of {', '.join(SERVER_KINDS)}")


class PosttrainWeightSync:
    """`posttrain serve`'s `/v1/weights` (or any server behind an adapter that speaks it)."""

    def __init__(self, base_url: str, http: httpx.Client, endpoint: str = "/weights") -> None:
        self.url = f"{base_url.rstrip('/')}/{endpoint.lstrip('/')}"
        self.http = http

    def current_version(self) -> int | None:
        response = self.http.get(self.url)
        if not response.is_success:
            return None
        return int(response.json().get("weight_version", 0))

    def push(self, path: str, version: int) -> int:
        response = self.http.post(self.url, json={"path": path, "version": version})
        _raise_for(response, self.url)
        return int(_json(response, self.url).get("weight_version", version))


class SGLangWeightSync:
    """SGLang's documented `/update_weights_from_disk`."""

    def __init__(self, base_url: str, http: httpx.Client, load_format: str | None = None) -> None:
        self.root = server_root(base_url)
        self.url = f"{self.root}/update_weights_from_disk"
        self.http = http
        self.load_format = load_format

    def current_version(self) -> int | None:
        """SGLang reports its version as a string in `/model_info` ("default" until set)."""
        response = self.http.get(f"{self.root}/model_info")
        if not response.is_success:
            return None
        value = str(response.json().get("weight_version", ""))
        return int(value) if value.lstrip("-").isdigit() else None

    def push(self, path: str, version: int) -> int:
        body: dict[str, Any] = {"model_path": path, "weight_version": str(version)}
        if self.load_format is not None:
            body["load_format"] = self.load_format
        response = self.http.post(self.url, json=body)
        answer = _json(response, self.url) if response.status_code in (200, 400) else None
        if answer is None or not answer.get("success", False):
            message = answer.get("message") if answer else response.text[:300]
            raise RuntimeError(
                f"{self.url} refused the weights ({response.status_code}): {message}"
            )
        return version


class VLLMWeightSync:
    """vLLM's development-mode RPC: every worker reloads from the directory in place."""

    def __init__(self, base_url: str, http: httpx.Client) -> None:
        self.root = server_root(base_url)
        self.http = http

    def current_version(self) -> int | None:
        return None  # vLLM keeps no weight version

    def push(self, path: str, version: int) -> int:
        rpc = {"method": "reload_weights", "kwargs": {"weights_path": path}}
        self._post("/collective_rpc", rpc)
        self._post("/reset_prefix_cache", None)
        return version

    def _post(self, endpoint: str, body: dict[str, Any] | None) -> None:
        url = self.root + endpoint
        response = self.http.post(url, json=body) if body is not None else self.http.post(url)
        if response.status_code == 404:
            raise RuntimeError(
                f"{url} does not exist: start vLLM with VLLM_SERVER_DEV_MODE=1 (its "
                "/collective_rpc and /reset_prefix_cache are development-mode endpoints)"
            )
        _raise_for(response, url)


def _raise_for(response: httpx.Response, url: str) -> None:
    if not response.is_success:
        raise RuntimeError(
            f"{url} refused the weights ({response.status_code}): {response.text[:300]}"
        )


def _json(response: httpx.Response, url: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as error:
        raise RuntimeError(f"{url} answered with non-JSON: {response.text[:300]!r}") from error
    if not isinstance(body, dict):
        raise RuntimeError(f"{url} answered with {type(body).__name__}, not a JSON object")
    return body
