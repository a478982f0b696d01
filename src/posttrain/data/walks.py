"""Multi-hop questions made from random walks on a knowledge graph.

After LongTraceRL (THU-KEG, 2026): RL for long-context multi-hop reasoning trains on questions
built from knowledge-graph random walks. A walk of 2 to 8 hops is kept only when following its
relations from the start reaches exactly one entity, so the answer is checkable. The question
names the start and describes every later entity only by its relation to the one before, so
the chain must be traced through the documents; the intermediate entities form the rubric.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from posttrain.data.kg import KnowledgeGraph, document_id
from posttrain.data.tables import table

MIN_HOPS, MAX_HOPS = 2, 8


@dataclass
class Hop:
    head: str
    relation: str
    tail: str  # entity ids


@dataclass
class MultiHopQuestion:
    id: str
    question: str
    answer: str  # answer entity name
    aliases: list[str]  # answer aliases
    hops: list[Hop]
    rubric: list[str] = field(default_factory=list)  # intermediate entity names, in order
    gold_entities: list[str] = field(default_factory=list)  # chain ids, start and answer too
    gold_documents: list[str] = field(default_factory=list)  # "doc:<id>" for each chain id

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> MultiHopQuestion:
        hops = [Hop(**hop) for hop in record["hops"]]
        return cls(**{**record, "hops": hops})


def fact_key(head: str, tail: str) -> frozenset[str]:
    """A fact as the pair of entities it links, in either direction and under any relation:
    `capital_of` and its inverse `has_capital` state one fact, and a user graph's inverse
    relations are not known, so the held-out split keeps whole entity pairs apart."""
    return frozenset((head, tail))


def random_walk(
    kg: KnowledgeGraph,
    start: str,
    hops: int,
    rng: random.Random,
    blocked: Collection[frozenset[str]] = (),
) -> list[Hop] | None:
    """A walk along outgoing edges that never revisits an entity nor uses a `blocked` fact
    (`fact_key`); None if it gets stuck."""
    visited, current, walk = {start}, start, []
    for _ in range(hops):
        options = [
            (r, t)
            for r, t in kg.out_relations(current)
            if t not in visited and fact_key(current, t) not in blocked
        ]
        if not options:
            return None
        relation, tail = rng.choice(options)
        walk.append(Hop(current, relation, tail))
        visited.add(tail)
        current = tail
    return walk


def unique_answer(kg: KnowledgeGraph, start: str, relations: list[str]) -> str | None:
    """Follow the relation path as a set of entities; the single end entity, else None.

    This is what a reader of the question can infer: at a one-to-many step every branch is
    followed, and the question is fair only if all branches meet at one answer.
    """
    frontier = {start}
    for relation in relations:
        frontier = {tail for head in frontier for tail in kg.tails(head, relation)}
        if not frontier:
            return None
    return next(iter(frontier)) if len(frontier) == 1 else None


# --- phrasing -----------------------------------------------------------------------------

# The question's phrases are shipped data (tables/walks.yaml): in a hop template "{x}" is a
# reference to the previous entity ("that person") and "{t}" the next entity's type.
_HOP_TEMPLATES = table("walks", "hop_templates", dict[str, tuple[str, ...]])
_OPENINGS = table("walks", "openings", tuple[str, ...])
_FIRST_STEP = table("walks", "first_step", tuple[str, ...])
_NEXT_STEP = table("walks", "next_step", tuple[str, ...])
_CLOSINGS = table("walks", "closings", tuple[str, ...])
_REFERENCES = table("walks", "references", tuple[str, ...])


def _noun(kg: KnowledgeGraph, entity_id: str) -> str:
    return kg.entity(entity_id).type.strip().lower() or "entity"


def _hop_phrase(kg: KnowledgeGraph, hop: Hop, rng: random.Random) -> str:
    """The tail described only through its relation to the head, in the relation's direction."""
    reference = rng.choice(_REFERENCES).format(t=_noun(kg, hop.head))
    tail_noun = _noun(kg, hop.tail)
    templates = _HOP_TEMPLATES.get(hop.relation)
    if templates is None:
        text = kg.relation_text(hop.relation)  # a user graph's label, else RELATION_TEXT
        if text is None:
            words = hop.relation.replace("_", " ")
            return f'the {tail_noun} linked from {reference} by the relation "{words}"'
        templates = ("the {t} that {x} " + text,)
    return rng.choice(templates).format(x=reference, t=tail_noun)


def _check_chain(kg: KnowledgeGraph, hops: list[Hop]) -> None:
    if not hops:
        raise ValueError("a question needs at least one hop")
    for before, after in zip(hops, hops[1:], strict=False):
        if before.tail != after.head:
            raise ValueError(f"hops do not chain: {before.tail!r} is not {after.head!r}")
    for hop in hops:
        kg.entity(hop.head), kg.entity(hop.tail)


def phrase_question(kg: KnowledgeGraph, hops: list[Hop], rng: random.Random) -> str:
    """Name the start, describe each later entity by relation only, ask for the answer's type."""
    _check_chain(kg, hops)
    sentences = [rng.choice(_OPENINGS).format(name=kg.entity(hops[0].head).name)]
    for index, hop in enumerate(hops):
        step = rng.choice(_FIRST_STEP if index == 0 else _NEXT_STEP)
        sentences.append(step.format(p=_hop_phrase(kg, hop, rng)))
    sentences.append(rng.choice(_CLOSINGS).format(t=_noun(kg, hops[-1].tail)))
    return " ".join(sentences)


# --- question sets ------------------------------------------------------------------------


def _hop_counts(hops: int | Sequence[int]) -> list[int]:
    if isinstance(hops, int):
        counts = [hops]
    elif isinstance(hops, Sequence) and not isinstance(hops, str):
        counts = list(hops)
    else:
        raise ValueError(f"hops must be an int or a list of ints, got {hops!r}")
    if not counts:
        raise ValueError("hops must be an int or a non-empty list of ints")
    for count in counts:
        if not isinstance(count, int) or not MIN_HOPS <= count <= MAX_HOPS:
            raise ValueError(
                f"hop counts must be integers from {MIN_HOPS} to {MAX_HOPS}: {count!r}"
            )
    return counts


def _question_id(start: str, relations: list[str]) -> str:
    """A content hash, so the same question gets the same id in any set that contains it."""
    digest = hashlib.sha1("|".join([start, *relations]).encode()).hexdigest()
    return f"mhq-{digest[:12]}"


def build_question(kg: KnowledgeGraph, hops: list[Hop], rng: random.Random) -> MultiHopQuestion:
    """Phrase a walk and fill in the answer, rubric and gold fields from its entities."""
    chain = [hops[0].head] + [hop.tail for hop in hops]
    answer = kg.entity(chain[-1])
    return MultiHopQuestion(
        id=_question_id(chain[0], [hop.relation for hop in hops]),
        question=phrase_question(kg, hops, rng),
        answer=answer.name,
        aliases=list(answer.aliases),
        hops=list(hops),
        rubric=[kg.entity(e).name for e in chain[1:-1]],
        gold_entities=chain,
        gold_documents=[document_id(e) for e in chain],
    )


def _find_walk(
    kg: KnowledgeGraph,
    starts: list[str],
    hops: int,
    rng: random.Random,
    seen: set,
    max_tries: int,
    blocked: Collection[frozenset[str]] = (),
    banned_answers: Collection[str] = (),
) -> list[Hop] | None:
    for _ in range(max_tries):
        start = rng.choice(starts)
        walk = random_walk(kg, start, hops, rng, blocked)
        if walk is None or _answer_key(kg, walk[-1].tail) in banned_answers:
            continue
        key = (start, tuple(hop.relation for hop in walk))
        if key in seen or unique_answer(kg, start, list(key[1])) != walk[-1].tail:
            continue
        seen.add(key)
        return walk
    return None


def _answer_key(kg: KnowledgeGraph, entity_id: str) -> str:
    """Answers are compared by name, as the outcome reward compares them."""
    return kg.entity(entity_id).name.strip().casefold()


def _draw(
    kg: KnowledgeGraph,
    n: int,
    counts: list[int],
    rng: random.Random,
    seen: set,
    max_tries: int,
    what: str,
    blocked: Collection[frozenset[str]] = (),
    banned_answers: Collection[str] = (),
) -> list[MultiHopQuestion]:
    starts = [e.id for e in kg.entities() if kg.graph.out_degree(e.id)]
    if n and not starts:
        raise ValueError("the graph has no relations to walk")
    questions = []
    for index in range(n):
        count = counts[index % len(counts)]
        walk = _find_walk(kg, starts, count, rng, seen, max_tries, blocked, banned_answers)
        if walk is None:
            raise ValueError(
                f"found only {len(questions)} of {n} {what}: no new {count}-hop walk with a "
                f"unique answer in {max_tries} tries; use a larger graph, fewer questions or "
                f"other hop counts"
            )
        questions.append(build_question(kg, walk, rng))
    return questions


def _check_request(n: int, hops: int | Sequence[int]) -> list[int]:
    counts = _hop_counts(hops)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    return counts


def make_questions(
    kg: KnowledgeGraph,
    n: int,
    hops: int | Sequence[int],
    seed: int = 0,
    max_tries: int = 2000,
) -> list[MultiHopQuestion]:
    """`n` distinct questions with unique answers; hop counts cycle over `hops`.

    `max_tries` bounds the walks tried for each question, so a graph too small or too sparse
    for the request fails with a clear error instead of looping.
    """
    counts = _check_request(n, hops)
    return _draw(kg, n, counts, random.Random(seed), set(), max_tries, "questions")


def question_facts(question: MultiHopQuestion) -> set[frozenset[str]]:
    return {fact_key(hop.head, hop.tail) for hop in question.hops}


def make_split(
    kg: KnowledgeGraph,
    n_train: int,
    n_test: int,
    hops: int | Sequence[int],
    seed: int = 0,
    max_tries: int = 2000,
) -> tuple[list[MultiHopQuestion], list[MultiHopQuestion]]:
    """Training and held-out questions that share no fact and no answer.

    The held-out questions are drawn first; training walks then avoid every entity pair a
    held-out hop links (`fact_key`) and every held-out answer name, so a held-out question
    can be answered only by reading its documents, never by recalling a training chain or
    guessing a training answer. Entities may still recur (a city on a held-out chain may be
    a training chain's start). When the graph cannot supply `n_train` such questions the
    error says how many it found.
    """
    counts = _check_request(n_train, hops)
    _check_request(n_test, hops)
    rng = random.Random(seed)
    seen: set[tuple[str, tuple[str, ...]]] = set()
    test = _draw(kg, n_test, counts, rng, seen, max_tries, "held-out questions")
    blocked = set().union(*(question_facts(q) for q in test))
    answers = {_answer_key(kg, q.gold_entities[-1]) for q in test}
    train = _draw(
        kg,
        n_train,
        counts,
        rng,
        seen,
        max_tries,
        f"training questions sharing no fact or answer with the {n_test} held-out ones",
        blocked,
        answers,
    )
    return train, test
