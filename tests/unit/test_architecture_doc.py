"""docs/architecture.md's layout matches the tree: nothing it names is missing, nothing is left out.

In the layout block an entry is a line indented by 2 per level whose first word is a
module (`name.py`) or a package (`name/`); the lines after it, until the next entry, are its
description. Every module and package of `src/posttrain` down to two levels must be an
entry; the modules of deeper packages (`models/server/app.py`) must be named in their
package's description.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "posttrain"
DOC = ROOT / "docs" / "architecture.md"
ENTRY = re.compile(r"^( {2}| {4}| {6}| {8})(\S+(?:\.py|/))(?:\s|$)")


def layout_entries(text: str) -> dict[Path, str]:
    """Entry path (relative to src/posttrain) -> its description."""
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    entries: dict[Path, str] = {}
    parents: list[str] = []
    current = None
    for line in block.splitlines():
        found = ENTRY.match(line)
        if found:
            depth = len(found.group(1)) // 2 - 1
            parents = parents[:depth]
            name = found.group(2)
            current = Path(*parents, name.rstrip("/"))
            if name.endswith("/"):
                parents.append(name.rstrip("/"))
            entries[current] = line[found.end() :]
        elif current is not None:
            entries[current] += " " + line.strip()
    return entries


ENTRIES = layout_entries(DOC.read_text(encoding="utf-8"))


def test_every_entry_exists():
    missing = [str(path) for path in ENTRIES if not (PACKAGE / path).exists()]
    assert not missing, f"docs/architecture.md names what src/posttrain lacks: {missing}"


def _tree(depth: int) -> set[Path]:
    found = set()
    for path in PACKAGE.rglob("*"):
        relative = path.relative_to(PACKAGE)
        if "__pycache__" in relative.parts or len(relative.parts) > depth:
            continue
        if path.is_dir() or (path.suffix == ".py" and (path.name != "__init__.py" or depth == 0)):
            found.add(relative)
    return found


def test_every_module_and_package_down_to_two_levels_is_an_entry():
    expected = _tree(2) | {Path("__init__.py")}
    left_out = sorted(str(p) for p in expected - set(ENTRIES))
    assert not left_out, f"docs/architecture.md leaves out: {left_out}"


def test_modules_of_deeper_packages_are_named_in_their_package_entry():
    unnamed = []
    for module in PACKAGE.glob("*/*/*.py"):
        package = module.parent.relative_to(PACKAGE)
        if module.name == "__init__.py":
            continue
        if not re.search(rf"\b{re.escape(module.stem)}\b", ENTRIES.get(package, "")):
            unnamed.append(f"{package}/{module.name}")
    assert not unnamed, f"package entries in docs/architecture.md do not name: {sorted(unnamed)}"


@pytest.mark.parametrize(
    "block, expected",
    [
        ("  a.py      x\n  b/\n    c.py  y\n          more\n", {"a.py", "b", "b/c.py"}),
        ("  b/        z\n    d/\n      e.py\n  f.py\n", {"b", "b/d", "b/d/e.py", "f.py"}),
    ],
)
def test_the_reader_follows_the_indentation(block, expected):
    entries = layout_entries(f"## Layout\n\n```\nsrc/posttrain/\n{block}```\n")
    assert {str(p) for p in entries} == expected
