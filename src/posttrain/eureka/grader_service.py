"""The grader as a service: a FastAPI app behind a bearer token, served by its own process.

Routes: `GET /healthz` (open: a liveness probe carries no credentials), `POST /grade`
{approach, round, path} and `POST /is_better` {new, old}; everything but /healthz needs
`Authorization: Bearer <token>` (401 otherwise; the Host header must be a loopback name, as
for `posttrain serve`: `posttrain.models.server.security.AccessGuard`). A `/grade` path is
taken relative to the approach's workspace (`<workspaces_root>/<approach>`) and must resolve,
symlinks included, to a regular file inside it (403 otherwise), so an approach can submit
only its own files.

`start_grader` runs `python -m posttrain.eureka.grader_service` on a free loopback port with
a fresh random token, handed over in the environment (not the command line, which other users
can read), and waits for /healthz.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import BaseModel, Field

from posttrain.eureka import grader
from posttrain.models.server.security import AccessGuard, allowed_hosts
from posttrain.models.server_process import free_port

TOKEN_ENV = "POSTTRAIN_GRADER_TOKEN"
_APPROACH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class GradeRequest(BaseModel):
    """A grading request: the approach's name, the round, the submission path (relative to
    the approach's workspace)."""

    approach: str
    round: int = Field(ge=0)
    path: str


class CompareRequest(BaseModel):
    new: dict
    old: dict


class _Guard:
    """AccessGuard for every path but /healthz (AccessGuard leaves only /health open)."""

    def __init__(self, app, token: str) -> None:
        self.app = app
        self.guarded = AccessGuard(app, token, allowed_hosts("127.0.0.1"))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("path") == "/healthz":
            await self.app(scope, receive, send)
        else:
            await self.guarded(scope, receive, send)


def create_app(
    problem_dir: str | Path, workspaces_root: str | Path, results_dir: str | Path, token: str
):
    """The ASGI app (FastAPI behind the token guard)."""
    from fastapi import FastAPI, HTTPException

    if not token:
        raise ValueError("the grader needs a non-empty token")
    problem = grader.read_problem(problem_dir)  # a malformed problem fails at start
    workspaces = Path(workspaces_root).resolve()

    app = FastAPI(title="posttrain eureka grader", docs_url=None, redoc_url=None)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/grade")
    def grade(request: GradeRequest) -> dict:
        if not _APPROACH_NAME.match(request.approach):
            raise HTTPException(403, f"approach {request.approach!r} is not a workspace name")
        workspace = (workspaces / request.approach).resolve()
        if workspace.parent != workspaces or not workspace.is_dir():
            raise HTTPException(403, f"approach {request.approach!r} has no workspace")
        path = workspace / request.path  # an absolute path replaces the workspace
        resolved = Path(os.path.realpath(path))
        if os.path.commonpath([resolved, workspace]) != str(workspace) or not resolved.is_file():
            raise HTTPException(403, f"{request.path!r} is not a file inside the workspace")
        try:
            return grader.grade(
                problem["dir"],
                resolved,
                approach=request.approach,
                round=request.round,
                repo_dir=workspace,
                results_dir=results_dir,
                allowed_root=workspace,
            )
        except PermissionError as err:
            raise HTTPException(403, str(err)) from err
        except ValueError as err:
            raise HTTPException(413, str(err)) from err

    @app.post("/is_better")
    def is_better(request: CompareRequest) -> dict:
        try:
            return {"better": grader.is_better(problem["dir"], request.new, request.old)}
        except grader.GraderError as err:
            raise HTTPException(422, str(err)) from err

    return _Guard(app, token)


@dataclass
class GraderHandle:
    """A running grader process: its URL, the token clients send, and `stop()`."""

    url: str
    token: str
    process: subprocess.Popen

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> GraderHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_grader(
    problem_dir: str | Path,
    workspaces_root: str | Path,
    results_dir: str | Path,
    port: int = 0,
    log_path: str | Path | None = None,
    startup_timeout: float = 60.0,
) -> GraderHandle:
    """Start the grader service on 127.0.0.1 (`port` 0: a free one) with a random token and
    wait until /healthz answers."""
    grader.read_problem(problem_dir)  # fail here, not in the child, on a malformed problem
    port = port or free_port()
    token = secrets.token_urlsafe(32)
    argv = [sys.executable, "-m", "posttrain.eureka.grader_service"]
    argv += ["--problem", str(problem_dir), "--workspaces", str(workspaces_root)]
    argv += ["--results", str(results_dir), "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    process = spawn_service(argv, {TOKEN_ENV: token}, url, log_path, startup_timeout, "grader")
    return GraderHandle(url, token, process)


def spawn_service(
    argv: list[str],
    secret_env: dict[str, str],
    url: str,
    log_path: str | Path | None = None,
    startup_timeout: float = 60.0,
    name: str = "service",
) -> subprocess.Popen:
    """Start a service process with its secrets in its environment (not its command line,
    which other users can read) and wait until `url`/healthz answers (the grader's and the
    monitor's process start)."""
    env = {**os.environ, **secret_env}
    if log_path:
        # The child keeps its own copy of the descriptor; ours can close at once.
        with open(log_path, "ab") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    else:
        process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env
        )
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {name} exited with {process.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    GraderHandle(url, "", process).stop()
    raise TimeoutError(f"the {name} did not answer /healthz within {startup_timeout} s")


def main(argv: list[str] | None = None) -> None:
    """The service process: `python -m posttrain.eureka.grader_service --problem DIR ...`;
    the token comes from $POSTTRAIN_GRADER_TOKEN."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", required=True)
    parser.add_argument("--workspaces", required=True)
    parser.add_argument("--results", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    token = os.environ.pop(TOKEN_ENV, "")
    if not token:
        raise SystemExit(f"{TOKEN_ENV} is not set: the grader never runs without a token")
    app = create_app(args.problem, args.workspaces, args.results, token)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
