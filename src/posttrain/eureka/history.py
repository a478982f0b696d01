"""Approach repositories: each approach is a real git repository whose commits are its versions.

A version's commit message is `[vN] <solution> | Changed: <delta>`, N counted from the
repository's own history (one more than the highest version in it). `init_approach` makes
the repository with an empty root commit naming the approach, so HEAD always exists and a
grading can record its hash and dirty flag.

We call the `git` command (GitPython is not a dependency) and treat the repository as
untrusted: an approach's agent can write its workspace, `.git` included. So every command
names the git directory and work tree explicitly (a deleted `.git` can never send `git add`
to a repository further up), reads no system or global config, runs no hooks and no
fsmonitor, and the repository's own config file is rewritten to our fixed content before
each command (a planted filter, alias or include never runs). Commits use a local author,
so no global git config is needed.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from posttrain.errors import InputError

AUTHOR_NAME = "EurekAgent"
AUTHOR_EMAIL = "eurekagent@localhost"
ROOT_PREFIX = "approach: "
CONFIG = f"""[core]
\trepositoryformatversion = 0
\tfilemode = true
\tbare = false
\tlogallrefupdates = true
[user]
\tname = {AUTHOR_NAME}
\temail = {AUTHOR_EMAIL}
[commit]
\tgpgsign = false
"""
_MESSAGE = re.compile(r"^\[v(\d+)\] (.*?) \| Changed: (.*)$")
_SEP_RECORD, _SEP_FIELD = "\x1e", "\x1f"


class GitError(RuntimeError):
    """A git command that failed; the message carries git's own."""


@dataclass(frozen=True)
class Version:
    """One version of an approach, parsed back from its commit."""

    number: int
    solution: str
    changed: str
    hash: str
    time: str
    """Commit time, ISO 8601."""
    files: tuple[str, ...]
    """Files the commit touched."""


def _git(directory: Path, *args: str, check: bool = True) -> str:
    git_dir = directory / ".git"
    if git_dir.is_symlink() or not git_dir.is_dir():
        raise InputError("not an approach repository (no .git directory)", directory)
    (git_dir / "config").write_text(CONFIG, encoding="utf-8")
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    }
    for name in (
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_CONFIG",
        "GIT_CEILING_DIRECTORIES",
    ):
        env.pop(name, None)
    command = [
        "git",
        f"--git-dir={git_dir}",
        f"--work-tree={directory}",
        "-c",
        "core.hooksPath=" + os.devnull,
        "-c",
        "core.fsmonitor=false",
        *args,
    ]
    done = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise GitError(f"{' '.join(['git', *args])} in {directory}: {done.stderr.strip()}")
    return done.stdout


def _one_line(text: str, what: str) -> str:
    line = " ".join(str(text).split())
    if not line:
        raise ValueError(f"a version's {what} must not be empty")
    return line


def init_approach(directory: str | Path, name: str) -> Path:
    """Make `directory` (created if needed) an approach repository named `name`, with an
    empty root commit `approach: <name>`. An existing approach repository is left as it is."""
    directory = Path(directory).resolve()
    name = _one_line(name, "approach name")
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / ".git").exists():
        done = subprocess.run(
            ["git", "init", "--quiet", str(directory)],
            capture_output=True,
            text=True,
            env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull},
        )
        if done.returncode != 0:
            raise GitError(f"git init {directory}: {done.stderr.strip()}")
    if not _git(directory, "rev-parse", "--verify", "--quiet", "HEAD", check=False).strip():
        _git(directory, "commit", "--quiet", "--allow-empty", "-m", ROOT_PREFIX + name)
    return directory


def commit_version(directory: str | Path, solution: str, changed: str) -> str:
    """Commit everything in the work tree as the next version; returns its commit hash.
    A version with no file changes is still committed (it records a submission)."""
    directory = Path(directory).resolve()
    solution, changed = _one_line(solution, "solution"), _one_line(changed, "change")
    if " | Changed: " in solution:
        raise ValueError("a version's solution must not contain ' | Changed: '")
    number = max((v.number for v in versions(directory)), default=0) + 1
    _git(directory, "add", "--all")
    message = f"[v{number}] {solution} | Changed: {changed}"
    _git(directory, "commit", "--quiet", "--allow-empty", "--no-verify", "-m", message)
    return head(directory)


def head(directory: str | Path) -> str:
    """The hash of the approach's current commit."""
    return _git(Path(directory).resolve(), "rev-parse", "HEAD").strip()


def is_dirty(directory: str | Path) -> bool:
    """Whether the work tree differs from the last commit (untracked files included)."""
    status = _git(Path(directory).resolve(), "status", "--porcelain", "--untracked-files=all")
    return bool(status.strip())


def approach_name(directory: str | Path) -> str:
    """The name given at `init_approach` (from the root commit)."""
    roots = _git(Path(directory).resolve(), "log", "--max-parents=0", "--format=%s").splitlines()
    for subject in roots:
        if subject.startswith(ROOT_PREFIX):
            return subject[len(ROOT_PREFIX) :]
    return Path(directory).name


def versions(directory: str | Path) -> list[Version]:
    """The approach's versions, oldest first (commits not in the version format skipped)."""
    log = _git(
        Path(directory).resolve(),
        "log",
        "--reverse",
        "--name-only",
        f"--format={_SEP_RECORD}%H{_SEP_FIELD}%cI{_SEP_FIELD}%s",
    )
    found = []
    for record in log.split(_SEP_RECORD)[1:]:
        header, _, names = record.partition("\n")
        commit, when, subject = header.split(_SEP_FIELD, 2)
        match = _MESSAGE.match(subject)
        if match is None:
            continue
        files = tuple(line for line in names.splitlines() if line.strip())
        found.append(
            Version(int(match[1]), match[2], match[3], commit, when, files)  # type: ignore[arg-type]
        )
    return found


def story(directory: str | Path, scores: dict[str, float | None] | None = None) -> str:
    """The approach's history as a short story, one paragraph per version; `scores` (commit
    hash -> score, from the grader's records) adds each version's grade where known."""
    name = approach_name(directory)
    history = versions(directory)
    if not history:
        return f"Approach {name!r} has no versions yet."
    lines = [
        f"Approach {name!r}: {len(history)} version(s), "
        f"from {history[0].time} to {history[-1].time}."
    ]
    for version in history:
        line = (
            f"v{version.number} ({version.hash[:8]}, {version.time}): {version.solution}."
            f" Changed: {version.changed}."
        )
        if version.files:
            line += " Files: " + ", ".join(version.files) + "."
        if scores is not None and version.hash in scores:
            score = scores[version.hash]
            line += " Score: " + ("invalid" if score is None else f"{score:g}") + "."
        lines.append(line)
    return "\n".join(lines)
