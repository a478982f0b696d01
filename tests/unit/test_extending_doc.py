"""docs/extending.md runs: every worked example in it is executed here, so it cannot rot.

Each `## ` section is one example, run in document order in one scratch directory, so a
section may use the files of earlier ones (as a reader following the guide would). A code
block whose first line is `# file: NAME` is written to NAME without that line (a user's
module, data or config); every other `python` block runs, in order, in one namespace per
section, with the scratch directory as the working directory and on `sys.path`. `bash`
blocks are shown to readers and not run here.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
FILE_LINE = re.compile(r"#\s*file:\s*(\S+)")


def _sections() -> dict[str, str]:
    parts = re.split(r"^## (.+)$", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


SECTIONS = _sections()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """One scratch directory for the whole guide; the user's modules are forgotten after."""
    path = tmp_path_factory.mktemp("extending")
    # Another test may have imported a module of the same name (`my_rewards` is a natural
    # one): the guide's own files must be the ones imported.
    for name in re.findall(r"#\s*file:\s*(\w+)\.py", DOC.read_text(encoding="utf-8")):
        sys.modules.pop(name, None)
    importlib.invalidate_caches()
    before = set(sys.modules)
    yield path
    for name in set(sys.modules) - before:
        if Path(getattr(sys.modules[name], "__file__", "") or "").is_relative_to(path):
            del sys.modules[name]


def test_the_guide_covers_each_extension_point():
    expected = ("reward", "environment", "policy loss", "dataset", "scorer", "recipe")
    titles = " | ".join(SECTIONS).lower()
    assert all(word in titles for word in expected), titles


@pytest.mark.parametrize("title", list(SECTIONS))  # document order: later ones build on earlier
def test_example_runs(title, workspace, monkeypatch):
    runs = []
    for language, code in BLOCK.findall(SECTIONS[title]):
        first, _, rest = code.partition("\n")
        named = FILE_LINE.fullmatch(first.strip())
        if named:
            target = workspace / named.group(1)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rest, encoding="utf-8")
        elif language == "python":
            runs.append(code)
    assert runs, f"section {title!r} has no example to run"
    monkeypatch.chdir(workspace)
    monkeypatch.syspath_prepend(str(workspace))
    namespace: dict = {"__name__": "extending_example"}
    for code in runs:
        exec(compile(code, f"{DOC.name}: {title}", "exec"), namespace)  # noqa: S102
