"""The three SustainScore domains behind one interface: items from a seed, and grading."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from posttrain.eval.sustain import code_task, math_task, qa_task

DOMAINS: dict[str, tuple[Callable[[int, int], list[dict]], Callable[[dict, str], dict]]] = {
    "math": (math_task.make_items, math_task.grade),
    "qa": (qa_task.make_items, qa_task.grade),
    "code": (code_task.make_items, code_task.grade),
}


def parse_domains(text: str) -> list[str]:
    """'math,qa,code' -> ['math', 'qa', 'code'], rejecting unknown names."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in DOMAINS]
    if unknown or not names:
        raise ValueError(f"unknown domain(s) {unknown or text!r}; known: {', '.join(DOMAINS)}")
    return list(dict.fromkeys(names))


def make_items(domain: str, n: int, seed: int) -> list[dict[str, Any]]:
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    return DOMAINS[domain][0](n, seed)


def grade(item: dict[str, Any], answer: str) -> dict[str, Any]:
    """`{"correct": bool, "extracted": ...}` for the item's domain."""
    return DOMAINS[item["domain"]][1](item, answer)
