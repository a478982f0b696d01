"""Loading the RPC-Bench split: one JSON paper a line, one item per QA pair.

Items are keyed ``<paper id>_<part_idx>`` as RPC-Bench's own scripts key them, with
``part_idx`` counted from 1 within a paper's ``qa_pairs`` (as the official answering and
judging scripts number them), so score files from either tool line up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from posttrain.data.io import DataError, iter_jsonl

CLAIM = "Claim_Verification"
CATEGORIES = (
    "Claim_Verification",
    "Concept_Understanding",
    "Experimental_Analysis",
    "Experimental_Exposition",
    "Experimental_Setup",
    "Method_Comparison",
    "Method_Disambiguation",
    "Method_Mechanics",
    "Motivation_Analysis",
)
PAPER_FIELDS = ("id", "title", "abstract", "qa_pairs")
QA_FIELDS = ("question", "answer", "category")

Item = dict[str, Any]


def item_key(paper_id: str, part_idx: int) -> str:
    """The key RPC-Bench's consistency tool joins on."""
    return f"{paper_id}_{part_idx}"


def _check_paper(paper: Any, where: str) -> None:
    if not isinstance(paper, dict):
        raise DataError(f"{where}: expected a JSON object")
    for name in PAPER_FIELDS:
        if name not in paper:
            raise DataError(f"{where}: missing field {name!r}")
    if not isinstance(paper["qa_pairs"], list):
        raise DataError(f"{where}: 'qa_pairs' must be a list")
    for index, qa in enumerate(paper["qa_pairs"]):
        here = f"{where}: qa_pairs[{index}]"
        if not isinstance(qa, dict):
            raise DataError(f"{here}: expected an object")
        for name in QA_FIELDS:
            if not isinstance(qa.get(name), str):
                raise DataError(f"{here}: missing or non-string field {name!r}")
        if qa["category"] not in CATEGORIES:
            raise DataError(f"{here}: unknown category {qa['category']!r}")
        if qa["category"] == CLAIM and qa["answer"] not in ("True", "False"):
            raise DataError(f"{here}: a {CLAIM} answer must be True or False, got {qa['answer']!r}")


def load_papers(path: str | Path) -> list[dict[str, Any]]:
    """The papers of a JSONL split, checked; errors name the file and line."""
    papers, seen = [], set()
    for number, paper in iter_jsonl(path):
        where = f"{path}:{number}"
        _check_paper(paper, where)
        if paper["id"] in seen:
            raise DataError(f"{where}: duplicate paper id {paper['id']!r}")
        seen.add(paper["id"])
        papers.append(paper)
    if not papers:
        raise DataError(f"{path}: no papers")
    return papers


def paper_text(papers_dir: str | Path, paper_id: str) -> str:
    """Full text of a paper: ``DIR/<id>.md`` or (RPC-Bench's own layout) ``DIR/<id>/<id>.md``."""
    papers_dir = Path(papers_dir)
    for candidate in (papers_dir / f"{paper_id}.md", papers_dir / paper_id / f"{paper_id}.md"):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise DataError(f"no full text for paper {paper_id!r}: expected {papers_dir / paper_id}.md")


def abstract_context(title: str, abstract: str) -> str:
    return f"Title: {title.strip()}\n\nAbstract: {abstract.strip()}"


def load_items(
    path: str | Path,
    papers_dir: str | Path | None = None,
    limit: int | None = None,
    read_paper: Callable[[str | Path, str], str] = paper_text,
) -> list[Item]:
    """One item per QA pair, in file order; ``limit`` keeps the first N items.

    The context is the title and abstract, or the paper's full markdown when ``papers_dir``
    is given (every paper of the kept items must then have a file, found by ``read_paper``).
    """
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    items: list[Item] = []
    for paper in load_papers(path):
        if limit is not None and len(items) >= limit:
            break
        if papers_dir is None:
            context = abstract_context(paper["title"], paper["abstract"])
        else:
            context = read_paper(papers_dir, paper["id"])
        for part_idx, qa in enumerate(paper["qa_pairs"], start=1):
            items.append(
                {
                    "key": item_key(paper["id"], part_idx),
                    "id": paper["id"],
                    "part_idx": part_idx,
                    "category": qa["category"],
                    "question": qa["question"],
                    "reference_answer": qa["answer"],
                    "title": paper["title"],
                    "abstract": paper["abstract"],
                    "context": context,
                }
            )
    return items[:limit] if limit is not None else items
