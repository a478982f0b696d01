"""A fixed, training-free reader for LongTraceRL contexts: how confusable are the distractors?

`ChainReader` is a retrieve-then-extract baseline that follows the question's chain through
the context alone: it starts at the document of the entity the question names and, for
each hop, moves to a document whose title the current document mentions, preferring the
one BM25 finds closest to that hop's sentence of the question. With random distractors the
current document rarely mentions any other document in the context but the right one; with
distractors from a search agent's trajectory it mentions several, so the reader is misled
exactly as LongTraceRL intends a model to be. Written here because no library reads
multi-hop chains over a given document set; BM25 itself comes from `bm25s`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from posttrain.data.kg import Document
from posttrain.data.search import BM25Index
from posttrain.rewards.rubric import outcome_exact

_DOCUMENT = re.compile(r"^\[\d+\] (?P<title>[^\n]+)\n(?P<text>.*?)(?=\n\n\[\d+\] |\Z)", re.M | re.S)


def context_documents(prompt: str) -> list[Document]:
    """The documents of a LongTraceRL prompt (`[i] Title` then the text, blank-line separated)."""
    body = prompt.split("Documents:\n\n", 1)[-1].rsplit("\n\nQuestion:", 1)[0]
    return [
        Document(id=f"ctx:{i}", entity_id="", title=m["title"].strip(), text=m["text"].strip())
        for i, m in enumerate(_DOCUMENT.finditer(body))
    ]


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) is not None


class ChainReader:
    """Follow the chain hop by hop inside one context; answer the last entity reached."""

    def answer(self, question: str, documents: list[Document]) -> str:
        sentences = [s.strip() for s in re.split(r"(?<=[.?!])\s+", question) if s.strip()]
        if len(sentences) < 2 or not documents:
            return ""
        by_title = {doc.title: doc for doc in documents}
        named = [t for t in by_title if _mentions(sentences[0], t)]
        if not named:
            return ""
        current = max(named, key=len)
        visited = {current}
        index = BM25Index(documents)
        for hop in sentences[1:-1]:
            text = by_title[current].text
            linked = [t for t in by_title if t not in visited and _mentions(text, t)]
            if not linked:
                break
            scores = dict(index.search(f"{current} {hop}", k=len(documents)))
            ids = {doc.title: doc.id for doc in documents}
            current = max(linked, key=lambda t: (scores.get(ids[t], 0.0), -linked.index(t)))
            visited.add(current)
        return current


def reader_accuracy(rows: list[dict[str, Any]], reader: ChainReader | None = None) -> dict:
    """Exact-match accuracy of the reader on LongTraceRL rows, overall and per hop count."""
    reader = reader or ChainReader()
    hits: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        info = row["metadata"]["extra_reward_info"]
        prompt = row["input_messages"][-1]["content"]
        guess = reader.answer(info["question"], context_documents(prompt))
        correct = outcome_exact(guess, row["label"], info.get("aliases", []))
        hits["all"].append(correct)
        hits[f"hops={info['hops']}"].append(correct)
    return {key: sum(values) / len(values) for key, values in sorted(hits.items())}
