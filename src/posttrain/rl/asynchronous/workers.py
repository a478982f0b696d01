"""Build the engines a config's `async.workers` section asks for."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from posttrain.rl.asynchronous.engines import BatchedEngine, EngineCore
from posttrain.rl.config import WorkerSettings


def build_engines(
    settings: WorkerSettings,
    model_dir: str,
    log_dir: Path | None = None,
    weights_root: Path | None = None,
) -> list[BatchedEngine]:
    """`settings.count` engines over `model_dir` (a servers' list: one engine per URL);
    servers started here take weight pushes from under `weights_root`."""
    if settings.count < 1 and not settings.urls:
        raise ValueError(f"async.workers.count must be >= 1, got {settings.count}")
    engines: list[BatchedEngine] = []
    try:
        if settings.kind == "thread":
            for i in range(settings.count):
                engines.append(BatchedEngine(EngineCore(model_dir), f"thread-{i}"))
        elif settings.kind == "process":
            from posttrain.rl.asynchronous.process_engine import ProcessBackend

            for i in range(settings.count):
                backend = ProcessBackend(model_dir, settings.torch_threads)
                engines.append(BatchedEngine(backend, f"process-{i}"))
        elif settings.kind == "ray":
            from posttrain.ray_runtime import ensure_ray
            from posttrain.rl.asynchronous.ray_engine import RayBackend

            ensure_ray(settings.ray_address, settings.ray_cpus)
            for i in range(settings.count):
                backend = RayBackend(model_dir, settings.torch_threads)
                engines.append(BatchedEngine(backend, f"ray-{i}"))
        else:
            engines += _server_engines(settings, model_dir, log_dir, weights_root)
    except BaseException:
        for engine in engines:
            engine.close()
        raise
    return engines


def _server_engines(
    settings: WorkerSettings, model_dir: str, log_dir: Path | None, weights_root: Path | None
) -> list[BatchedEngine]:
    """One engine per server in `urls`, sent the key in the `api_key_env` variable; without
    urls, `count` `posttrain serve` processes started here, each with a fresh random key
    and `--weights-root weights_root` (they take posttrain's and SGLang's weight pushes,
    not vLLM's)."""
    from posttrain.models.server_process import serve_model
    from posttrain.rl.asynchronous.server_engine import ServerBackend
    from posttrain.rl.asynchronous.weight_sync import SERVER_KINDS

    if settings.server_kind not in SERVER_KINDS:
        raise ValueError(
            f"async.workers.server_kind must be one of {', '.join(SERVER_KINDS)}, "
            f"got {settings.server_kind!r}"
        )
    engines = []
    if settings.urls:
        for i, url in enumerate(settings.urls):
            backend = ServerBackend(
                url,
                settings.served_model,
                weight_sync=settings.weight_sync,
                server_kind=settings.server_kind,
                weights_endpoint=settings.weights_endpoint,
                api_key=os.environ.get(settings.api_key_env) or None,
            )
            engines.append(BatchedEngine(backend, f"server-{i}", gather_s=0.0))
        return engines
    if settings.server_kind == "vllm":
        raise ValueError(
            "async.workers.server_kind=vllm needs async.workers.urls (running vLLM servers); "
            "without urls, posttrain serve is started here"
        )
    for i in range(settings.count):
        log_path = log_dir / f"server-{i}.log" if log_dir else None
        extra = []
        if weights_root is not None:
            weights_root.mkdir(parents=True, exist_ok=True)
            extra = ["--weights-root", str(weights_root)]
        key = secrets.token_urlsafe(24)  # only this trainer talks to its own servers
        process = serve_model(model_dir, *extra, log_path=log_path, api_key=key).start()
        try:
            backend = ServerBackend(
                process.base_url,
                settings.served_model,
                weight_sync="push",
                server_kind=settings.server_kind,
                process=process,
                api_key=key,
            )
        except BaseException:
            process.stop()
            raise
        engines.append(BatchedEngine(backend, f"server-{i}", gather_s=0.0))
    return engines
