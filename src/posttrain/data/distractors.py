"""Distractor documents for long-context multi-hop questions, and packing them into a budget.

LongTraceRL (THU-KEG, 2026) ranks distractors by how a search agent treated them: opened but
not cited (tier 1, the most confusable: they looked relevant enough to read) and seen in a
result list but never opened (tier 2). Random documents and one-shot search results for the
whole question are the baselines. `distractor_overlap` measures confusability the same way
for all of them, so the settings can be compared.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from posttrain.data.kg import Document
    from posttrain.data.search import BM25Index, Trajectory

TIER_LABELS = ("tier1", "tier2", "random", "oneshot")
_PRIORITY = {"tier1": 0, "tier2": 1}  # every other label comes after, in the order given


def tiered_distractors(trajectory: Trajectory, gold_documents: Iterable[str]) -> dict[str, int]:
    """Doc id -> tier: 1 = opened but not cited, 2 = seen but never opened; gold docs excluded.

    Tier-1 ids come first (in the order opened), then tier-2 ids (in the order seen).
    """
    gold = set(gold_documents)
    cited = set(trajectory.cited)
    opened = set(trajectory.opened)
    tiers: dict[str, int] = {}
    for doc_id in trajectory.opened:
        if doc_id not in gold and doc_id not in cited:
            tiers.setdefault(doc_id, 1)
    for doc_id in trajectory.seen:
        if doc_id not in gold and doc_id not in opened:
            tiers.setdefault(doc_id, 2)
    return tiers


def random_distractors(
    all_doc_ids: Sequence[str], gold_documents: Iterable[str], n: int, rng: random.Random
) -> list[str]:
    """`n` distinct non-gold ids drawn uniformly (fewer if the corpus has fewer): the baseline."""
    gold = set(gold_documents)
    pool = [doc_id for doc_id in dict.fromkeys(all_doc_ids) if doc_id not in gold]
    return rng.sample(pool, min(max(n, 0), len(pool)))


def oneshot_distractors(
    index: BM25Index, question_text: str, gold_documents: Iterable[str], n: int
) -> list[str]:
    """The top `n` non-gold hits of one BM25 search with the whole question: the RAG baseline."""
    if n <= 0:
        return []
    gold = set(gold_documents)
    hits = index.search(question_text, n + len(gold))
    return [doc_id for doc_id, _ in hits if doc_id not in gold][:n]


def render_document(doc: Document) -> str:
    """A document as the context shows it (title line, then text); what the budget counts."""
    return f"{doc.title}\n{doc.text}"


def assemble_context(
    gold: Sequence[Document],
    distractors: Sequence[tuple[Document, str]],
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    rng: random.Random,
    *,
    render: Callable[[Document], str] = render_document,
) -> list[tuple[Document, str]]:
    """Gold documents plus as many distractors as fit `budget_tokens`, in random order.

    Every gold document is kept (ValueError if they alone exceed the budget). Distractors are
    tried in priority order (tier 1, then tier 2, then any other label, each in the order
    given); one that does not fit is skipped and smaller ones after it may still go in.
    Duplicates of a document already placed are dropped. Each document's cost is
    `count_tokens(render(doc))`; separators between documents are not counted. The result is
    shuffled so the gold documents sit at random positions; gold ones are labelled "gold".
    """
    chosen: list[tuple[Document, str]] = []
    placed: set[str] = set()
    used = 0
    for doc in gold:
        if doc.id in placed:
            continue
        placed.add(doc.id)
        used += count_tokens(render(doc))
        chosen.append((doc, "gold"))
    if used > budget_tokens:
        raise ValueError(
            f"the {len(chosen)} gold documents take {used} tokens, over the budget of "
            f"{budget_tokens}"
        )
    ranked = sorted(distractors, key=lambda pair: _PRIORITY.get(pair[1], len(_PRIORITY)))
    for doc, label in ranked:
        if doc.id in placed:
            continue
        cost = count_tokens(render(doc))
        if used + cost <= budget_tokens:
            placed.add(doc.id)
            used += cost
            chosen.append((doc, label))
    rng.shuffle(chosen)
    return chosen


def distractor_overlap(distractors: Sequence[Document], gold_entity_names: Iterable[str]) -> float:
    """Fraction of distractors whose text names a gold entity (case-insensitive, whole word).

    A distractor that mentions an entity of the reasoning chain cannot be dismissed by string
    matching alone; this is the confusability statistic compared across settings.
    """
    names = sorted({name.strip() for name in gold_entity_names if name.strip()}, key=len)
    if not distractors or not names:
        return 0.0
    alternatives = "|".join(re.escape(name) for name in reversed(names))
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
    hits = sum(1 for doc in distractors if pattern.search(doc.text))
    return hits / len(distractors)
