"""The tools an approach's agent works with, over its own workspace (§5 of issue 26).

`list_files`, `read_file`, `write_file`: paths confined to the workspace (symlinks resolved,
`.git` out of reach); `run_command`: the command jailed by `run_in_workspace` with limits;
`submit`: commit the workspace as the next version (`history.commit_version`), then ask the
grader service over HTTP to grade the submission file, with the bearer token the loop holds
(it never enters the jail); `feedback`: the grader's records of this approach, read from the
results files the grader alone writes. Every tool answers text an LLM can read; a refused
call raises ToolError, which the agent loop hands back to the model as the observation.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from posttrain.eureka import grader, history
from posttrain.eureka.approach_sandbox import run_in_workspace
from posttrain.sandbox.mounts import Limits

MAX_READ_CHARS = 20_000
MAX_WRITE_BYTES = 2_000_000
OUTPUT_TAIL = 4_000
TOOL_NAMES = ("list_files", "read_file", "write_file", "run_command", "submit", "feedback")


class ToolError(RuntimeError):
    """A refused or failed tool call; its message is shown to the agent."""


class WorkspaceTools:
    """The tools of one approach in one round. `events(type, message, score)` is told about
    commands, submissions and their gradings as they happen (the run's event log)."""

    def __init__(
        self,
        workspace: str | Path,
        approach: str,
        round: int,
        *,
        grader_url: str,
        grader_token: str,
        submission_file: str,
        results_dir: str | Path,
        command_limits: Limits | Mapping | None = None,
        events: Callable[..., None] | None = None,
    ) -> None:
        self.workspace = Path(workspace).resolve()
        self.approach = approach
        self.round = round
        self.grader_url = grader_url
        self._token = grader_token
        self.submission_file = submission_file
        self.results_dir = Path(results_dir)
        self.command_limits = command_limits
        self.events = events or (lambda *_: None)
        self.submissions: list[dict] = []

    # --- paths ----------------------------------------------------------------------------

    def _path(self, relative: str) -> Path:
        """`relative` resolved inside the workspace, symlinks followed; else ToolError."""
        if not isinstance(relative, str) or not relative or "\x00" in relative:
            raise ToolError(f"expected a relative path, got {relative!r}")
        resolved = Path(os.path.realpath(self.workspace / relative))
        if os.path.commonpath([resolved, self.workspace]) != str(self.workspace):
            raise ToolError(f"{relative!r} is outside the workspace")
        inside = resolved.relative_to(self.workspace)
        if inside.parts and inside.parts[0] == ".git":
            raise ToolError("the .git folder is the loop's, not the agent's")
        return resolved

    # --- tools ----------------------------------------------------------------------------

    def list_files(self, path: str = ".") -> str:
        """Files under `path`, one relative path a line, with sizes."""
        root = self._path(path) if path not in ("", ".") else self.workspace
        if not root.is_dir():
            raise ToolError(f"{path!r} is not a folder")
        lines = []
        for item in sorted(root.rglob("*")):
            relative = item.relative_to(self.workspace)
            if relative.parts[0] == ".git" or not item.is_file():
                continue
            lines.append(f"{relative} ({item.stat().st_size} bytes)")
        return "\n".join(lines) or "(no files)"

    def read_file(self, path: str, max_chars: int = MAX_READ_CHARS) -> str:
        target = self._path(path)
        if not target.is_file():
            raise ToolError(f"{path!r} is not a file")
        text = target.read_bytes()[: max(1, int(max_chars)) * 4].decode("utf-8", "replace")
        if len(text) > max_chars:
            return text[:max_chars] + f"\n[... cut at {max_chars} characters]"
        return text

    def write_file(self, path: str, content: str) -> str:
        if not isinstance(content, str):
            raise ToolError("content: expected a string")
        data = content.encode("utf-8")
        if len(data) > MAX_WRITE_BYTES:
            raise ToolError(f"content is {len(data)} bytes; the limit is {MAX_WRITE_BYTES}")
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            raise ToolError(f"{path!r} is a symlink")
        target.write_bytes(data)
        return f"wrote {len(data)} bytes to {path}"

    def run_command(self, command: str | list[str], timeout: float | None = None) -> str:
        """Run `command` (argv list or a shell-like string) in the jail; exit status and the
        tails of its output."""
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        if not argv:
            raise ToolError("command: expected a non-empty command")
        limits = self.command_limits
        if timeout is not None:
            base = limits if isinstance(limits, Limits) else Limits.from_dict(limits or {})
            wall = min(float(timeout), base.wall_seconds)
            limits = Limits(**{**base.__dict__, "wall_seconds": wall, "cpu_seconds": None})
        result = run_in_workspace(self.workspace, argv, limits)
        message = (
            f"exit {result.returncode} ({result.status}"
            + (f", stopped by the {result.limit} limit" if result.limit else "")
            + f") in {result.seconds:.1f} s\n--- stdout ---\n{result.stdout[-OUTPUT_TAIL:]}"
            f"\n--- stderr ---\n{result.stderr[-OUTPUT_TAIL:]}"
        )
        self.events("command", f"{shlex.join(argv)} -> exit {result.returncode}", None)
        return message

    def submit(self, solution: str, changed: str, path: str | None = None) -> dict:
        """Commit the workspace as the next version, then have the grader grade `path` (the
        problem's submission file by default). Returns the grader's record."""
        path = path or self.submission_file
        target = self._path(path)
        if not target.is_file():
            raise ToolError(f"nothing to submit: {path!r} is not a file in the workspace")
        commit = history.commit_version(self.workspace, solution, changed)
        self.events("submission", f"{solution} ({commit[:8]})", None)
        response = httpx.post(
            f"{self.grader_url}/grade",
            json={"approach": self.approach, "round": self.round, "path": path},
            headers={"authorization": f"Bearer {self._token}"},
            timeout=None,
        )
        if response.status_code != 200:
            raise ToolError(f"the grader refused: {response.status_code} {response.text[:300]}")
        record = response.json()
        record["commit"] = commit
        self.submissions.append(record)
        self.events(
            "graded", str(record.get("message", "")), record.get("score"), record.get("valid")
        )
        return record

    def feedback(self) -> str:
        """The grader's records of this approach (newest last), as JSON lines."""
        path = self.results_dir / grader.INTERMEDIATE
        if not path.exists():
            return "(no gradings yet)"
        mine = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                if record.get("approach") == self.approach:
                    keep = ("round", "score", "valid", "message", "git_hash", "better")
                    mine.append(json.dumps({k: record.get(k) for k in keep}))
        return "\n".join(mine[-10:]) or "(no gradings of this approach yet)"

    # --- dispatch -------------------------------------------------------------------------

    def call(self, tool: str, args: Mapping[str, Any] | None) -> str:
        """Run tool `tool` with keyword `args`; the answer as text (ToolError on refusal)."""
        if tool not in TOOL_NAMES:
            raise ToolError(f"unknown tool {tool!r}; tools: {', '.join(TOOL_NAMES)}")
        if args is not None and not isinstance(args, Mapping):
            raise ToolError("args: expected an object")
        try:
            answer = getattr(self, tool)(**dict(args or {}))
        except TypeError as err:
            raise ToolError(f"bad arguments for {tool}: {err}") from None
        except (OSError, ValueError, history.GitError, httpx.HTTPError) as err:
            raise ToolError(f"{tool} failed: {err}") from None
        return answer if isinstance(answer, str) else json.dumps(answer, sort_keys=True)
