"""The house's import rules, read from the source with `ast` (nothing is imported or run).

Every `posttrain` import counts: module level, inside functions (lazy imports) and under
`TYPE_CHECKING`, since each is a dependency a reader has to follow. The rules:

1. Each part of the package sits on a tier of `TIERS`; it may import only parts on lower
   tiers. So stages never import recipes or the CLI, `models` and `data` import no `eval`,
   `rewards`, `rl` or `monitor`, and no two parts import each other.
2. No circle between modules anywhere, inside a part too.

docs/architecture.md shows the same tiers; a new top-level module or package must be given
a tier here (the test says so).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

TIERS: list[set[str]] = [
    {"errors", "atomic", "tracking", "sandbox", "specs", "ray_runtime", "__init__"},
    {"config", "envs"},
    {"models"},
    {"data"},
    {"features"},
    {"runs"},
    {"report"},
    {"monitor", "rewards", "attention"},
    {"eval"},
    {"sft"},
    {"rl"},
    {"eureka", "maic"},
    {"recipes"},
    {"cli"},
    {"__main__"},
]
"""Lowest first. Parts on one tier may not import each other."""


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in (SRC / "posttrain").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _owner(name: str) -> str:
    """The module that `name` (a module or a name inside one) resolves to."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imported(module: str, path: Path) -> Iterator[str]:
    """Every posttrain module that `module` imports, wherever the import statement is."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] == "posttrain":
                yield _owner(target)


GRAPH = {
    module: {t for t in _imported(module, path) if t not in (module, "posttrain")}
    for module, path in MODULES.items()
}


def _part(module: str) -> str:
    """`posttrain.rl.trainer` -> `rl`; `posttrain.cli` -> `cli`; `posttrain` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _tier(part: str) -> int:
    for number, tier in enumerate(TIERS):
        if part in tier:
            return number
    raise AssertionError(f"posttrain.{part} has no tier: add it to TIERS in {__file__}")


def test_every_part_has_a_tier():
    for module in MODULES:
        _tier(_part(module))


def test_parts_import_only_lower_tiers():
    back = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _part(target) != _part(module) and _tier(_part(target)) >= _tier(_part(module))
    )
    assert not back, "imports that run sideways or back up:\n" + "\n".join(back)


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_circles_between_modules():
    circles = _circles(GRAPH)
    assert not circles, "modules that import each other:\n" + "\n".join(map(str, circles))


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_circle_finder_finds_circles(graph, expected):
    assert _circles(graph) == expected


def test_the_reader_sees_lazy_relative_and_type_checking_imports(tmp_path):
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from posttrain.rl.config import RLConfig\n"
        "def f():\n    from ..eval import core\n    import posttrain.models.tiny\n"
    )
    path = tmp_path / "x.py"
    path.write_text(source)
    assert set(_imported("posttrain.data.x", path)) == {
        "posttrain.rl.config",
        "posttrain.eval.core",
        "posttrain.models.tiny",
    }
