"""Approach repositories in real git: versions, numbering, dirty flag, story, hardening."""

from __future__ import annotations

import subprocess

import pytest

from posttrain.errors import InputError
from posttrain.eureka.history import (
    approach_name,
    commit_version,
    head,
    init_approach,
    is_dirty,
    story,
    versions,
)


@pytest.fixture(autouse=True)
def no_global_git_config(tmp_path, monkeypatch):
    """No user-level git config at all: commits must work from the repository's own."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    ):
        monkeypatch.delenv(name, raising=False)


def git(directory, *args) -> str:
    """An independent reading of the repository, through plain git."""
    return subprocess.run(
        ["git", "-C", str(directory), *args], capture_output=True, text=True, check=True
    ).stdout


def test_versions_round_trip_through_git(tmp_path):
    repo = init_approach(tmp_path / "a1", "basin hopping")
    assert approach_name(repo) == "basin hopping" and versions(repo) == []
    assert not is_dirty(repo)
    (repo / "solve.py").write_text("print(1)\n")
    first = commit_version(repo, "multistart SLSQP", "first\nimplementation")
    (repo / "solve.py").write_text("print(2)\n")
    (repo / "notes.md").write_text("tuned\n")
    second = commit_version(repo, "multistart SLSQP + refine", "added a refinement step")
    subjects = git(repo, "log", "--reverse", "--format=%s").splitlines()
    assert subjects == [
        "approach: basin hopping",
        "[v1] multistart SLSQP | Changed: first implementation",
        "[v2] multistart SLSQP + refine | Changed: added a refinement step",
    ]
    assert (
        git(repo, "log", "-1", "--format=%an <%ae>").strip() == "EurekAgent <eurekagent@localhost>"
    )
    got = versions(repo)
    assert [(v.number, v.hash) for v in got] == [(1, first), (2, second)]
    assert got[1].solution == "multistart SLSQP + refine"
    assert got[1].changed == "added a refinement step"
    assert got[0].files == ("solve.py",) and got[1].files == ("notes.md", "solve.py")
    assert head(repo) == second == git(repo, "rev-parse", "HEAD").strip()
    text = story(repo, scores={first: 2.5, second: None})
    assert text.splitlines()[0].startswith("Approach 'basin hopping': 2 version(s)")
    assert f"v1 ({first[:8]}" in text and "Score: 2.5." in text
    assert (
        "v2" in text and "Changed: added a refinement step." in text and "Score: invalid." in text
    )


def test_numbering_counts_from_the_repositorys_own_history(tmp_path):
    repo = init_approach(tmp_path / "a", "x")
    commit_version(repo, "one", "start")
    # A commit outside the convention (an agent's own) is skipped; numbering goes on.
    (repo / "f").write_text("1")
    git(repo, "add", "f")
    git(repo, "commit", "-q", "-m", "wip by hand")
    assert init_approach(repo, "x") == repo  # again: no second root commit
    assert commit_version(repo, "two", "more") == head(repo)
    assert [v.number for v in versions(repo)] == [1, 2]
    assert len(git(repo, "log", "--format=%H").split()) == 4
    with pytest.raises(ValueError, match="Changed"):
        commit_version(repo, "a | Changed: b", "c")
    with pytest.raises(ValueError, match="empty"):
        commit_version(repo, "  ", "c")


def test_dirty_flag_follows_the_work_tree(tmp_path):
    repo = init_approach(tmp_path / "a", "x")
    (repo / "new.py").write_text("x = 1\n")
    assert is_dirty(repo)  # untracked counts
    commit_version(repo, "s", "c")
    assert not is_dirty(repo)
    (repo / "new.py").write_text("x = 2\n")
    assert is_dirty(repo)
    commit_version(repo, "s", "c")
    assert not is_dirty(repo)
    commit_version(repo, "s", "resubmitted unchanged")  # still a version
    assert [v.number for v in versions(repo)] == [1, 2, 3]


def test_planted_hooks_and_config_never_run(tmp_path):
    repo = init_approach(tmp_path / "a", "x")
    marker = tmp_path / "pwned"
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    with (repo / ".git" / "config").open("a") as config:
        config.write(f'[filter "x"]\n\tclean = touch {marker}; cat\n')
    (repo / ".gitattributes").write_text("* filter=x\n")
    (repo / "f.py").write_text("1\n")
    commit_version(repo, "s", "c")
    assert not marker.exists()
    assert "filter" not in (repo / ".git" / "config").read_text()


def test_a_folder_without_its_git_directory_is_refused(tmp_path):
    outer = init_approach(tmp_path / "outer", "outer")
    inner = outer / "inner"
    inner.mkdir()
    with pytest.raises(InputError, match="inner: not an approach repository"):
        commit_version(inner, "s", "c")  # never commits into the repository above
    assert versions(outer) == []
