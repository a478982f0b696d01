"""Random walks and multi-hop questions: no revisits, unique answers, no leaked names."""

from __future__ import annotations

import random
import re

import pytest

from posttrain.data.kg import Entity, KnowledgeGraph, synthetic_world
from posttrain.data.walks import (
    Hop,
    MultiHopQuestion,
    fact_key,
    make_questions,
    make_split,
    phrase_question,
    random_walk,
    unique_answer,
)


@pytest.fixture(scope="module")
def world():
    return synthetic_world(0)


def _follow(kg: KnowledgeGraph, start: str, relations: list[str]) -> set[str]:
    """Independent of walks.py: follow edges by their `relation` attribute in networkx."""
    frontier = {start}
    for relation in relations:
        frontier = {
            v
            for u in frontier
            for _, v, data in kg.graph.out_edges(u, data=True)
            if data["relation"] == relation
        }
    return frontier


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", text) is not None


def _toy() -> KnowledgeGraph:
    """p1 and p2 both live in c1 and were born in c1 / c2; both cities are in k1."""
    kg = KnowledgeGraph()
    for eid, name, kind in [
        ("p1", "Ana", "person"),
        ("p2", "Bo", "person"),
        ("c1", "Toru", "city"),
        ("c2", "Amsa", "city"),
        ("k1", "Velia", "country"),
    ]:
        kg.add_entity(Entity(eid, name, kind))
    for triple in [
        ("p1", "born_in", "c1"),
        ("p2", "born_in", "c2"),
        ("p1", "lives_in", "c1"),
        ("p2", "lives_in", "c1"),
        ("c1", "located_in", "k1"),
        ("c2", "located_in", "k1"),
    ]:
        kg.add_relation(*triple)
    return kg


def test_unique_answer_follows_sets():
    kg = _toy()
    assert unique_answer(kg, "p1", ["born_in", "located_in"]) == "k1"
    assert unique_answer(kg, "p2", ["born_in"]) == "c2"
    assert unique_answer(kg, "p1", ["lives_in", "located_in"]) == "k1"
    assert unique_answer(kg, "p1", ["works_for"]) is None  # no such edge
    kg.add_entity(Entity("p3", "Cy", "person"))
    kg.add_relation("p3", "born_in", "c1")
    kg.add_relation("p3", "born_in", "c2")
    assert unique_answer(kg, "p3", ["born_in"]) is None  # two cities
    assert unique_answer(kg, "p3", ["born_in", "located_in"]) == "k1"  # branches meet


def test_random_walk_no_revisits(world):
    rng = random.Random(0)
    starts = [e.id for e in world.entities()]
    walks, triples = 0, set(world.triples())
    for _ in range(300):
        start = rng.choice(starts)
        walk = random_walk(world, start, 8, rng)
        if walk is None:
            continue
        walks += 1
        chain = [start] + [hop.tail for hop in walk]
        assert len(walk) == 8 and len(set(chain)) == 9
        assert walk[0].head == start
        for before, after in zip(walk, walk[1:], strict=False):
            assert before.tail == after.head
        for hop in walk:
            assert (hop.head, hop.relation, hop.tail) in triples
    assert walks > 100
    assert random_walk(_toy(), "k1", 2, rng) is None  # no outgoing edges: stuck
    assert random_walk(_toy(), "p1", 3, rng) is None  # every 3rd step would revisit or end


@pytest.mark.parametrize("hops", [2, 4, 8])
def test_questions_have_unique_answers(world, hops):
    questions = make_questions(world, 40, hops, seed=0)
    assert len(questions) == 40
    keys = {(q.gold_entities[0], tuple(h.relation for h in q.hops)) for q in questions}
    assert len(keys) == 40
    assert len({q.id for q in questions}) == 40
    for q in questions:
        assert len(q.hops) == hops
        start, answer = q.gold_entities[0], q.gold_entities[-1]
        assert _follow(world, start, [h.relation for h in q.hops]) == {answer}
        assert q.answer == world.entity(answer).name
        assert q.aliases == world.entity(answer).aliases


def test_question_fields_and_phrasing(world):
    questions = make_questions(world, 60, [2, 3, 5, 8], seed=4)
    for q in questions:
        chain = [q.hops[0].head] + [h.tail for h in q.hops]
        assert q.gold_entities == chain and len(set(chain)) == len(chain)
        assert q.gold_documents == [f"doc:{e}" for e in chain]
        assert q.rubric == [world.entity(e).name for e in chain[1:-1]]
        start = world.entity(chain[0])
        assert _mentions(q.question, start.name)
        for entity_id in chain[1:]:
            entity = world.entity(entity_id)
            for name in [entity.name, *entity.aliases]:
                assert not _mentions(q.question, name), (name, q.question)
        last = re.split(r"(?<=[.?])\s+", q.question)[-1]
        assert last.startswith(f"Which {world.entity(chain[-1]).type} ") and last.endswith("?")
        assert q.question.count(".") == len(q.hops) + 1 + q.question.count("Dr.")
    assert [len(q.hops) for q in questions[:8]] == [2, 3, 5, 8, 2, 3, 5, 8]


KEYWORDS = {
    "born_in": ("born", "birthplace"),
    "lives_in": ("lives", "home"),
    "located_in": ("located", "contains", "lies"),
    "capital_of": ("capital",),
    "has_capital": ("capital",),
    "citizen_of": ("citizen",),
    "works_for": ("works", "employ"),
    "founded_by": ("founded", "founder"),
    "founder_of": ("founded", "founder"),
    "headquartered_in": ("headquarter", "head office"),
    "authored": ("wrote", "written", "authored"),
    "written_by": ("wrote", "written", "author"),
    "published_by": ("publish",),
    "mayor_of": ("mayor", "governs"),
    "has_mayor": ("mayor",),
    "spouse_of": ("spouse", "married"),
    "student_of": ("teacher", "taught", "studied"),
}


def test_every_relation_is_phrased_in_its_direction(world):
    rng = random.Random(0)
    seen = set()
    for head, relation, tail in world.triples():
        if relation in seen:
            continue
        seen.add(relation)
        for _ in range(6):
            text = phrase_question(world, [Hop(head, relation, tail)], rng)
            assert any(word in text for word in KEYWORDS[relation]), (relation, text)
            head_type, tail_type = world.entity(head).type, world.entity(tail).type
            assert re.search(rf"\b(that|this) {head_type}\b", text), text
            assert text.endswith("?") and f"Which {tail_type} " in text
    assert seen == set(KEYWORDS)
    # direction matters: "the city where that person was born", not the other way round
    person = world.entities("person")[0].id
    city = world.tails(person, "born_in")[0]
    text = phrase_question(world, [Hop(person, "born_in", city)], random.Random(1))
    assert "person" in text and "Which city" in text


def test_unknown_relation_and_bad_chains():
    kg = _toy()
    kg.add_relation("c1", "twinned_with", "c2")
    text = phrase_question(kg, [Hop("c1", "twinned_with", "c2")], random.Random(0))
    assert "twinned with" in text and "Amsa" not in text and "Toru" in text
    with pytest.raises(ValueError, match="do not chain"):
        phrase_question(kg, [Hop("p1", "born_in", "c1"), Hop("c2", "located_in", "k1")], None)
    with pytest.raises(ValueError, match="at least one hop"):
        phrase_question(kg, [], random.Random(0))


def test_determinism_by_seed(world):
    a = make_questions(world, 20, [2, 4, 8], seed=7)
    assert a == make_questions(world, 20, [2, 4, 8], seed=7)
    assert a == make_questions(synthetic_world(0), 20, [2, 4, 8], seed=7)
    b = make_questions(world, 20, [2, 4, 8], seed=8)
    assert [q.question for q in a] != [q.question for q in b]
    assert MultiHopQuestion.from_dict(a[0].to_dict()) == a[0]


def test_bad_requests(world):
    for hops in (1, 9, [2, 9], [], 2.0):
        with pytest.raises(ValueError, match="hop"):
            make_questions(world, 3, hops)
    with pytest.raises(ValueError, match=r"found only \d+ of 50 questions"):
        make_questions(_toy(), 50, 2, max_tries=200)
    assert make_questions(world, 0, 3) == []


def _pairs(question: MultiHopQuestion) -> set[frozenset[str]]:
    chain = question.gold_entities
    return {frozenset(pair) for pair in zip(chain, chain[1:], strict=False)}


def test_split_shares_no_fact_and_no_answer(world):
    train, test = make_split(world, 60, 20, [2, 3], seed=0)
    assert len(train) == 60 and len(test) == 20
    held_out = set().union(*(_pairs(q) for q in test))
    for q in train:
        assert not _pairs(q) & held_out, q.id
        # an inverse relation over the same pair is the same fact
        assert all(fact_key(h.tail, h.head) not in held_out for h in q.hops)
    assert not {q.answer.casefold() for q in train} & {q.answer.casefold() for q in test}
    assert not {q.id for q in train} & {q.id for q in test}
    assert [len(q.hops) for q in train[:4]] == [2, 3, 2, 3]
    assert make_split(world, 60, 20, [2, 3], seed=0) == (train, test)  # seeded


def test_split_held_out_questions_do_not_depend_on_the_training_size(world):
    _, few = make_split(world, 5, 20, 2, seed=3)
    _, many = make_split(world, 40, 20, 2, seed=3)
    assert few == many  # drawn first: growing the training set never moves the test set


def test_split_says_how_many_training_questions_the_graph_allows(world):
    with pytest.raises(ValueError, match=r"found only \d+ of 5000 training questions sharing no"):
        make_split(world, 5000, 40, 2, max_tries=300)
    with pytest.raises(ValueError, match=r"of 4000 held-out questions"):
        make_split(world, 0, 4000, 2, max_tries=300)
