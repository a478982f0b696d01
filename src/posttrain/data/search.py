"""BM25 search over the world's documents, and search agents that record their trajectories.

LongTraceRL (THU-KEG, 2026) takes its distractors from a search agent's trajectory: documents
the agent opened but did not cite are the most confusable, documents it only saw in result
lists less so. This module supplies both halves offline and deterministically: a BM25 index
(`bm25s`) and agents that work a multi-hop question hop by hop and log every query, result
list, opened document and citation in a `Trajectory`.

Two agents share the same bookkeeping and `run(question) -> Trajectory` signature:

* `RuleBasedSearchAgent` needs no model, so corpora can be built on a CPU in seconds.
* `LLMSearchAgent` lets a `ChatModel` write queries and choose what to open and cite, falling
  back to the rule for any hop whose reply cannot be parsed.

Neither agent opens a document it was not shown by a search: a hop whose gold document no
query surfaced (first query, then one retry) cites the head's page instead when search opened
it and it names the tail (a real corpus states facts there), and is otherwise recorded as
missed (`step["missed"]`), never completed by opening the gold document directly. The agent
then goes on from the chain's next
entity, since the trajectory serves to mine distractors around a known question; a miss only
leaves that hop with fewer tiered distractors.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import bm25s
import numpy as np

from posttrain.models.chat.base import ChatModel, GenerationParams, ask

if TYPE_CHECKING:
    from posttrain.data.kg import Document, KnowledgeGraph
    from posttrain.data.walks import Hop, MultiHopQuestion

STOPWORDS = "en"
"""bm25s's English stopword list; applied to documents and queries alike."""


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased word tokens of two or more characters, English stopwords removed (bm25s)."""
    if not texts:
        return []
    return bm25s.tokenize(list(texts), stopwords=STOPWORDS, return_ids=False, show_progress=False)


class BM25Index:
    """Lucene-style BM25 over `title + text` of each document.

    Results are best first; equal scores are ordered by doc id so every run ranks alike.
    Documents sharing no (non-stopword) term with the query are not results, so a search may
    return fewer than `k` hits, and an empty or all-stopword query returns [].
    """

    def __init__(self, documents: Sequence[Document]) -> None:
        self.documents: dict[str, Document] = {}
        for document in documents:
            if document.id in self.documents:
                raise ValueError(f"duplicate document id {document.id!r}")
            self.documents[document.id] = document
        self.ids = list(self.documents)
        # Rank of each doc id in sorted order: the secondary sort key for ties.
        order = sorted(range(len(self.ids)), key=self.ids.__getitem__)
        self._id_rank = np.empty(len(self.ids), dtype=np.int64)
        self._id_rank[order] = np.arange(len(self.ids))
        corpus = tokenize([f"{d.title}\n{d.text}" for d in self.documents.values()])
        self._retriever: bm25s.BM25 | None = None
        if any(corpus):  # bm25s cannot index a corpus without a single token
            self._retriever = bm25s.BM25()
            self._retriever.index(corpus, show_progress=False)

    def __len__(self) -> int:
        return len(self.ids)

    def doc(self, doc_id: str) -> Document:
        """The document with this id (KeyError if unknown)."""
        return self.documents[doc_id]

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Up to `k` (doc id, score) pairs, best first, ties broken by doc id."""
        if k <= 0 or self._retriever is None:
            return []
        vocab = self._retriever.vocab_dict
        tokens = [t for t in tokenize([query])[0] if t in vocab]
        if not tokens:
            return []
        scores = np.asarray(self._retriever.get_scores(tokens), dtype=np.float64)
        hits = np.flatnonzero(scores > 0)
        order = hits[np.lexsort((self._id_rank[hits], -scores[hits]))][:k]
        return [(self.ids[i], float(scores[i])) for i in order]


@dataclass
class Trajectory:
    """What a search agent did for one question.

    `seen` lists every doc id shown in any result list, in the order first seen; `opened` and
    `cited` likewise, without duplicates. `steps` has one dict per hop (see the agents).
    """

    question_id: str
    queries: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    cited: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trajectory:
        lists = {key: list(data.get(key, [])) for key in _TRAJECTORY_LISTS}
        return cls(question_id=data["question_id"], **lists)

    def _see(self, doc_ids: Sequence[str]) -> None:
        _extend_unique(self.seen, doc_ids)

    def _open(self, doc_ids: Sequence[str]) -> None:
        _extend_unique(self.seen, doc_ids)  # a document is seen before (or as) it is opened
        _extend_unique(self.opened, doc_ids)

    def _cite(self, doc_id: str) -> None:
        _extend_unique(self.cited, [doc_id])

    @property
    def missed(self) -> list[bool]:
        """Per hop, whether its gold document was never found by search."""
        return [bool(step.get("missed")) for step in self.steps]


_TRAJECTORY_LISTS = ("queries", "seen", "opened", "cited", "steps")


def _extend_unique(target: list[str], items: Sequence[str]) -> None:
    present = set(target)
    for item in items:
        if item not in present:
            target.append(item)
            present.add(item)


def relation_phrase(relation: str, relation_text: Mapping[str, str] | None = None) -> str:
    """How a relation reads in a query: its phrase in `relation_text` (default RELATION_TEXT).

    A relation without a phrase is a ValueError: a raw id such as `P19` would make a query
    that matches nothing, so it must be labelled (a relations file) before the agent runs.
    """
    if relation_text is None:
        from posttrain.data.kg import RELATION_TEXT

        relation_text = RELATION_TEXT
    phrase = relation_text.get(relation)
    if not phrase:
        raise ValueError(f"relation {relation!r} has no label to search with")
    return phrase


def gold_doc_id(entity_id: str) -> str:
    """The id of the document about an entity (kg's convention: `doc:<entity id>`)."""
    return f"doc:{entity_id}"


class _SearchAgentBase:
    """Bookkeeping and the hop rules both agents share."""

    def __init__(
        self,
        index: BM25Index,
        kg: KnowledgeGraph,
        *,
        top_r: int = 8,
        open_k: int = 3,
        seed: int = 0,
        relation_text: Mapping[str, str] | None = None,
    ) -> None:
        if top_r < 1 or open_k < 1:
            raise ValueError(f"top_r and open_k must be >= 1, got {top_r}, {open_k}")
        self.index = index
        self.kg = kg
        self.top_r = top_r
        self.open_k = open_k
        self.seed = seed
        self.relation_text = relation_text

    def _rng(self, question: MultiHopQuestion) -> random.Random:
        # Seeded per question, so a trajectory does not depend on which questions ran before.
        return random.Random(f"{self.seed}:{question.id}")

    def rule_query(self, hop: Hop) -> str:
        """The current entity's name followed by the relation's words."""
        name = self.kg.entity(hop.head).name
        return f"{name} {relation_phrase(hop.relation, self.relation_text)}"

    def retry_query(self, hop: Hop) -> str:
        """The rule query plus the expected answer's type word (e.g. "city"), to narrow it."""
        kind = self.kg.entity(hop.tail).type.replace("_", " ")
        return f"{self.rule_query(hop)} {kind}"

    def _search(self, trajectory: Trajectory, query: str) -> list[tuple[str, float]]:
        trajectory.queries.append(query)
        results = self.index.search(query, self.top_r)
        trajectory._see([doc_id for doc_id, _ in results])
        return results

    def rule_open(
        self, results: Sequence[tuple[str, float]], already: set[str], rng: random.Random
    ) -> list[str]:
        """Up to `open_k` unopened results: highest scores first, equal scores in seeded order."""
        groups: dict[float, list[str]] = {}
        for doc_id, score in results:
            if doc_id not in already:
                groups.setdefault(score, []).append(doc_id)
        ranked: list[str] = []
        for score in sorted(groups, reverse=True):
            tied = groups[score]
            rng.shuffle(tied)
            ranked.extend(tied)
        return ranked[: self.open_k]

    def _retry_hop(
        self, trajectory: Trajectory, hop: Hop, step: dict[str, Any], rng: random.Random
    ) -> str | None:
        """The hop's gold document if it was opened, after one retry query if needed; else the
        head's page if it states the fact; else None.

        Only search results are ever opened: when neither query surfaced the gold document,
        the hop's fact page (`_fact_page`) is cited if search opened it, else the hop is
        marked `missed` and nothing is cited for it.
        """
        gold = gold_doc_id(hop.tail)
        if gold not in trajectory.opened:
            query = self.retry_query(hop)
            results = self._search(trajectory, query)
            step["retry_query"] = query
            step["retry_results"] = [doc_id for doc_id, _ in results]
            opened = self.rule_open(results, set(trajectory.opened), rng)
            trajectory._open(opened)
            step["opened"].extend(opened)
        if gold in trajectory.opened:
            return gold
        stated = self._fact_page(trajectory, hop)
        if stated is None:
            step["missed"] = True
        return stated

    def _fact_page(self, trajectory: Trajectory, hop: Hop) -> str | None:
        """The head's page, when search opened it and it names the tail; else None.

        A hop's gold document is the tail's page (the page the next hop starts from), but a
        real corpus (Wikipedia or KILT pages) states the fact `head -relation-> tail` on the
        head's page, and a query made of the head's name finds that page first. Citing it
        keeps a real corpus's hops from counting as missed when the tail's own page does not
        answer a query about the head. Both are gold documents, so no distractor changes.
        """
        page = gold_doc_id(hop.head)
        if page not in trajectory.opened or page not in self.index.documents:
            return None
        doc = self.index.doc(page)
        tail = self.kg.entity(hop.tail).name.casefold()
        return page if tail in f"{doc.title}\n{doc.text}".casefold() else None

    @staticmethod
    def _new_step(index: int, hop: Hop, query: str, results: Sequence[tuple[str, float]]) -> dict:
        return {
            "hop": index,
            "head": hop.head,
            "relation": hop.relation,
            "query": query,
            "results": [doc_id for doc_id, _ in results],
            "opened": [],
            "cited": None,
            "retry_query": None,
            "retry_results": [],
            "missed": False,
        }


class RuleBasedSearchAgent(_SearchAgentBase):
    """Works the chain hop by hop with fixed rules; no model needed.

    Per hop, starting from the entity the question names (hops[0].head):

    1. query = current entity's name + the relation's words; look at the top `top_r` results;
    2. open up to `open_k` results not opened before: highest BM25 score first, ties in a
       seeded random order;
    3. cite the hop's gold document (`doc:<tail>`) if it has been opened (now or in an earlier
       hop: the agent remembers what it read);
    4. otherwise retry once with the tail's type word appended and open up to `open_k` more;
    5. failing that, cite the head's page if it was opened and names the tail (where a real
       corpus states the fact), else mark the hop `missed` (cited: None); either way move on
       to the tail entity.

    Each step dict holds: hop, head, relation, query, results (ids), opened (ids opened in
    this hop), cited, retry_query, retry_results, missed.
    """

    def run(self, question: MultiHopQuestion) -> Trajectory:
        rng = self._rng(question)
        trajectory = Trajectory(question_id=question.id)
        for i, hop in enumerate(question.hops):
            query = self.rule_query(hop)
            results = self._search(trajectory, query)
            step = self._new_step(i, hop, query, results)
            opened = self.rule_open(results, set(trajectory.opened), rng)
            trajectory._open(opened)
            step["opened"].extend(opened)
            cited = self._retry_hop(trajectory, hop, step, rng)
            if cited is not None:
                trajectory._cite(cited)
            step["cited"] = cited
            trajectory.steps.append(step)
        return trajectory


QUERY_TASK = "TASK: write a search query"
OPEN_TASK = "TASK: choose documents to open"
CITE_TASK = "TASK: cite the answering document"


def first_sentence(text: str, limit: int = 200) -> str:
    """The text up to its first sentence end, cut to `limit` characters."""
    match = re.search(r"(?<=[.!?])\s", text)
    sentence = text[: match.start()] if match else text
    sentence = " ".join(sentence.split())
    return sentence if len(sentence) <= limit else sentence[: limit - 3].rstrip() + "..."


def parse_query(reply: str) -> str | None:
    """The query in a reply: a `Query:` line if present, else the first non-empty line."""
    match = re.search(r"(?im)^\s*(?:search\s+)?query\s*:\s*(.+)$", reply)
    line = match.group(1) if match else next((s for s in reply.splitlines() if s.strip()), "")
    line = line.strip().strip("`\"'").strip()
    return line or None


def parse_doc_ids(reply: str, allowed: Sequence[str]) -> list[str]:
    """Allowed doc ids mentioned in a reply, in the order first mentioned.

    An id must stand alone (`doc:e1` is not found inside `doc:e12`), so stray text cannot
    invent an id the agent was never shown.
    """
    found: list[tuple[int, str]] = []
    for doc_id in dict.fromkeys(allowed):
        match = re.search(rf"(?<![\w:.\-]){re.escape(doc_id)}(?![\w:\-]|\.\w)", reply)
        if match:
            found.append((match.start(), doc_id))
    return [doc_id for _, doc_id in sorted(found)]


class LLMSearchAgent(_SearchAgentBase):
    """A chat model drives the search: it writes each query, picks what to open and what to cite.

    Per hop it is asked three single-turn questions (each carries the question and its notes
    so far): a query (`QUERY_TASK`), which of the shown results (id, title, first sentence) to
    open (`OPEN_TASK`), and which opened document answers this step (`CITE_TASK`). Any reply
    that cannot be parsed is replaced by the rule-based choice for that decision, and the step
    lists it under `rule_fallbacks`. The model's pick is cited when the hop's gold document has
    been opened; otherwise the hop is retried as the rule-based agent does, and the gold
    document is cited if the retry's results opened it, else the hop is `missed` and the
    model's pick (if any) stays cited. The pick is kept as `model_cited` in every case. The
    agent then moves on along the gold chain, whatever the model cited, since the trajectory
    serves to mine distractors for a known question.
    """

    def __init__(
        self,
        chat: ChatModel,
        index: BM25Index,
        kg: KnowledgeGraph,
        *,
        top_r: int = 8,
        open_k: int = 3,
        seed: int = 0,
        relation_text: Mapping[str, str] | None = None,
        params: GenerationParams | None = None,
    ) -> None:
        super().__init__(
            index, kg, top_r=top_r, open_k=open_k, seed=seed, relation_text=relation_text
        )
        self.chat = chat
        self.params = params or GenerationParams(max_tokens=128, temperature=0.0, seed=seed)

    def _ask(self, prompt: str) -> str:
        return ask(self.chat, prompt, self.params)

    def _header(self, question: MultiHopQuestion, notes: list[str], i: int) -> str:
        lines = [f"Question: {question.question}", f"Step {i + 1} of {len(question.hops)}."]
        lines.append("Notes so far:" if notes else "Notes so far: none")
        lines.extend(f"- {note}" for note in notes)
        return "\n".join(lines)

    def _listing(self, doc_ids: Sequence[str], full: bool) -> str:
        rows = []
        for doc_id in doc_ids:
            doc = self.index.doc(doc_id)
            body = " ".join(doc.text.split()) if full else first_sentence(doc.text)
            rows.append(f"[{doc_id}] {doc.title}: {body}")
        return "\n".join(rows)

    def run(self, question: MultiHopQuestion) -> Trajectory:
        rng = self._rng(question)
        trajectory = Trajectory(question_id=question.id)
        notes: list[str] = []
        for i, hop in enumerate(question.hops):
            header = self._header(question, notes, i)
            fallbacks: list[str] = []

            reply = self._ask(
                f"{header}\n\n{QUERY_TASK} that finds the next fact needed for this step. "
                "Reply as `Query: <query>`."
            )
            query = parse_query(reply)
            if query is None:
                fallbacks.append("query")
                query = self.rule_query(hop)
            results = self._search(trajectory, query)
            step = self._new_step(i, hop, query, results)
            shown = [doc_id for doc_id, _ in results]

            opened: list[str] = []
            if shown:
                reply = self._ask(
                    f"{header}\n\nSearch results for `{query}`:\n{self._listing(shown, False)}"
                    f"\n\n{OPEN_TASK}: reply with up to {self.open_k} document ids to read."
                )
                opened = parse_doc_ids(reply, shown)[: self.open_k]
                if not opened:
                    fallbacks.append("open")
                    opened = self.rule_open(results, set(trajectory.opened), rng)
            trajectory._open(opened)
            step["opened"].extend(opened)

            model_cited: str | None = None
            # What it just opened, plus what it read earlier and sees again in these results.
            readable = [d for d in trajectory.opened if d in opened or d in shown]
            if readable:
                reply = self._ask(
                    f"{header}\n\nDocuments you opened:\n{self._listing(readable, True)}"
                    f"\n\n{CITE_TASK} for this step: reply with exactly one document id."
                )
                picks = parse_doc_ids(reply, readable)
                model_cited = picks[0] if picks else None
            if model_cited is None:
                fallbacks.append("cite")
            gold = gold_doc_id(hop.tail)
            cited: str | None
            if model_cited is not None and gold in trajectory.opened:
                cited = model_cited
            else:
                cited = self._retry_hop(trajectory, hop, step, rng) or model_cited
            if cited is not None:
                trajectory._cite(cited)
                doc = self.index.doc(cited)
                notes.append(f"{doc.title}: {first_sentence(doc.text)}")
            else:
                notes.append(f"step {i + 1}: nothing found")
            step.update(cited=cited, model_cited=model_cited, rule_fallbacks=fallbacks)
            trajectory.steps.append(step)
        return trajectory
