"""Knowledge graph API, loading with file:line errors, and the seeded synthetic world."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest

from posttrain.data.io import DataError
from posttrain.data.kg import (
    RELATION_TEXT,
    Entity,
    KnowledgeGraph,
    load_graph,
    save_graph,
    synthetic_world,
    write_documents,
)

TYPES = {
    "located_in": ("city", "country"),
    "capital_of": ("city", "country"),
    "has_capital": ("country", "city"),
    "born_in": ("person", "city"),
    "lives_in": ("person", "city"),
    "citizen_of": ("person", "country"),
    "works_for": ("person", "organisation"),
    "founded_by": ("organisation", "person"),
    "founder_of": ("person", "organisation"),
    "headquartered_in": ("organisation", "city"),
    "authored": ("person", "work"),
    "written_by": ("work", "person"),
    "published_by": ("work", "organisation"),
    "mayor_of": ("person", "city"),
    "has_mayor": ("city", "person"),
    "spouse_of": ("person", "person"),
    "student_of": ("person", "person"),
}


@pytest.fixture(scope="module")
def world():
    return synthetic_world(0)


def _small() -> KnowledgeGraph:
    kg = KnowledgeGraph()
    kg.add_entity(Entity("p1", "Ana Belo", "person", ["A. Belo"], "a painter"))
    kg.add_entity(Entity("c1", "Toru", "city"))
    kg.add_entity(Entity("c2", "Amsa", "city"))
    kg.add_entity(Entity("k1", "Velia", "country"))
    kg.add_relation("p1", "lives_in", "c2")
    kg.add_relation("p1", "born_in", "c2")
    kg.add_relation("p1", "born_in", "c1")
    kg.add_relation("c1", "located_in", "k1")
    return kg


def test_graph_api():
    kg = _small()
    assert len(kg) == 4 and "p1" in kg and "nope" not in kg and 3 not in kg
    assert [e.id for e in kg.entities()] == ["p1", "c1", "c2", "k1"]
    assert [e.id for e in kg.entities("city")] == ["c1", "c2"]
    assert kg.entity("p1").aliases == ["A. Belo"]
    assert kg.tails("p1", "born_in") == ["c1", "c2"]
    assert kg.out_relations("p1") == [("born_in", "c1"), ("born_in", "c2"), ("lives_in", "c2")]
    assert kg.in_relations("c2") == [("p1", "born_in"), ("p1", "lives_in")]
    assert kg.neighbours("c1") == {"p1", "k1"} and kg.neighbours("k1") == {"c1"}
    kg.add_relation("p1", "born_in", "c1")  # identical triple: ignored
    assert len(kg.triples()) == 4
    assert ("c1", "located_in", "k1") in kg.triples()
    assert kg.graph.number_of_edges("p1", "c2") == 2  # a multigraph: two relations, one pair


def test_graph_errors():
    kg = _small()
    with pytest.raises(ValueError, match="duplicate entity id 'p1'"):
        kg.add_entity(Entity("p1", "Other", "person"))
    with pytest.raises(ValueError, match="unknown entity id 'zz'"):
        kg.add_relation("p1", "born_in", "zz")
    with pytest.raises(ValueError, match="unknown entity id 'zz'"):
        kg.add_relation("zz", "born_in", "c1")
    with pytest.raises(KeyError, match="unknown entity id 'zz'"):
        kg.entity("zz")
    with pytest.raises(KeyError, match="unknown entity id 'zz'"):
        kg.out_relations("zz")


def test_load_tsv_with_headers_and_aliases(tmp_path):
    (tmp_path / "e.tsv").write_text(
        "id\tname\ttype\taliases\tdescription\n"
        "p1\tAna Belo\tperson\tA. Belo|Dr. Ana Belo\ta painter\n"
        "\n"
        "c1\tToru\tcity\n"
        "k1\tVelia\tcountry\t\tan island\n"
    )
    (tmp_path / "t.tsv").write_text(
        "head\trelation\ttail\np1\tborn_in\tc1\nc1\tlocated_in\tk1\np1\tborn_in\tc1\n"
    )
    kg = load_graph(tmp_path / "t.tsv", tmp_path / "e.tsv")
    assert kg.entity("p1") == Entity(
        "p1", "Ana Belo", "person", ["A. Belo", "Dr. Ana Belo"], "a painter"
    )
    assert kg.entity("c1") == Entity("c1", "Toru", "city")
    assert kg.entity("k1").description == "an island" and kg.entity("k1").aliases == []
    assert kg.triples() == [("p1", "born_in", "c1"), ("c1", "located_in", "k1")]
    # headers are optional
    (tmp_path / "t2.tsv").write_text("p1\tlives_in\tc1\n")
    assert load_graph(tmp_path / "t2.tsv", tmp_path / "e.tsv").triples() == [
        ("p1", "lives_in", "c1")
    ]


def test_load_jsonl(tmp_path):
    (tmp_path / "e.jsonl").write_text(
        '{"id": "p1", "name": "Ana Belo", "type": "person", "aliases": ["A. Belo"], '
        '"description": "a painter"}\n{"id": "c1", "name": "Toru", "type": "city"}\n'
    )
    (tmp_path / "t.jsonl").write_text('{"head": "p1", "relation": "born_in", "tail": "c1"}\n')
    kg = load_graph(tmp_path / "t.jsonl", tmp_path / "e.jsonl")
    assert kg.entity("p1").aliases == ["A. Belo"] and kg.entity("c1").aliases == []
    assert kg.tails("p1", "born_in") == ["c1"]


ENTITIES_TSV = "id\tname\ttype\np1\tAna\tperson\nc1\tToru\tcity\n"
HEADER = "head\trelation\ttail\n"


@pytest.mark.parametrize(
    ("entities", "triples", "bad", "message"),
    [
        (
            ENTITIES_TSV,
            HEADER + "p1\tborn_in\tc1\np1\tborn_in\tc9\n",
            "t",
            r"t.tsv:3: unknown entity id 'c9'",
        ),
        (ENTITIES_TSV, "p1\tborn_in\tc1\np1\tborn_in\n", "t", r"t.tsv:2: expected 3 tab-separated"),
        (ENTITIES_TSV, "p1\tborn_in\tc1\textra\n", "t", r"t.tsv:1: expected 3 tab-separated"),
        (ENTITIES_TSV + "p1\tAgain\tperson\n", "", "e", r"e.tsv:4: duplicate entity id 'p1'"),
        (ENTITIES_TSV + "x1\tX\n", "", "e", r"e.tsv:4: expected 3 to 5"),
        (ENTITIES_TSV + "x1\t\tcity\n", "", "e", r"e.tsv:4: 'name' is empty"),
    ],
)
def test_tsv_bad_rows_name_file_and_line(tmp_path, entities, triples, bad, message):
    (tmp_path / "e.tsv").write_text(entities)
    (tmp_path / "t.tsv").write_text(triples)
    with pytest.raises(DataError, match=message) as err:
        load_graph(tmp_path / "t.tsv", tmp_path / "e.tsv")
    assert str(tmp_path / f"{bad}.tsv") in str(err.value)


def test_jsonl_bad_rows_name_file_and_line(tmp_path):
    e, t = tmp_path / "e.jsonl", tmp_path / "t.jsonl"
    e.write_text('{"id": "p1", "name": "Ana", "type": "person"}\n{"id": "c1", "name": "Toru"}\n')
    with pytest.raises(DataError, match=r"e.jsonl:2: missing key 'type'"):
        load_graph(t, e)
    e.write_text('{"id": "p1", "name": "Ana", "type": "person", "aliases": "A"}\n')
    with pytest.raises(DataError, match=r"e.jsonl:1: 'aliases' must be a list"):
        load_graph(t, e)
    e.write_text('{"id": "p1", "name": "Ana", "type": "person"}\n' * 2)
    with pytest.raises(DataError, match=r"e.jsonl:2: duplicate entity id 'p1'"):
        load_graph(t, e)
    e.write_text('{"id": "p1", "name": "Ana", "type": "person"}\n')
    t.write_text('\n{"head": "p1", "relation": "knows"}\n')
    with pytest.raises(DataError, match=r"t.jsonl:2: missing key 'tail'"):
        load_graph(t, e)
    t.write_text('{"head": "p1", "relation": "knows", "tail": "p2"}\n')
    with pytest.raises(DataError, match=r"t.jsonl:1: unknown entity id 'p2'"):
        load_graph(t, e)
    t.write_text('{"head": "p1", "relation": "knows", "tail": "p1",}\n')
    with pytest.raises(DataError, match=r"t.jsonl:1: not valid JSON"):
        load_graph(t, e)
    with pytest.raises(DataError, match="unsupported graph format"):
        load_graph(tmp_path / "t.csv", e)
    with pytest.raises(DataError, match="file not found"):
        load_graph(t, tmp_path / "missing.jsonl")


def test_save_load_round_trip(tmp_path, world):
    save_graph(world, tmp_path / "t.jsonl", tmp_path / "e.jsonl")
    loaded = load_graph(tmp_path / "t.jsonl", tmp_path / "e.jsonl")
    assert loaded.entities() == world.entities()
    assert loaded.triples() == world.triples()


def test_synthetic_world_is_seeded_and_fast():
    start = time.perf_counter()
    a = synthetic_world(0)
    assert time.perf_counter() - start < 0.5
    b, c = synthetic_world(0), synthetic_world(1)
    assert a.entities() == b.entities() and a.triples() == b.triples()
    assert [e.name for e in a.entities()] != [e.name for e in c.entities()]
    small = synthetic_world(
        3, countries=2, cities_per_country=2, people=8, organisations=2, works=3
    )
    assert Counter(e.type for e in small.entities()) == {
        "country": 2,
        "city": 4,
        "person": 8,
        "organisation": 2,
        "work": 3,
    }


def test_synthetic_world_structure(world):
    counts = Counter(e.type for e in world.entities())
    assert counts == {"country": 6, "city": 24, "person": 60, "organisation": 15, "work": 25}
    relations = {r for _, r, _ in world.triples()}
    assert relations == set(TYPES) and relations <= set(RELATION_TEXT)
    for head, relation, tail in world.triples():
        assert (world.entity(head).type, world.entity(tail).type) == TYPES[relation]
    for country in world.entities("country"):
        capitals = [h for h, r in world.in_relations(country.id) if r == "capital_of"]
        assert len(capitals) == 1 and world.tails(country.id, "has_capital") == capitals
        assert world.tails(capitals[0], "located_in") == [country.id]
    for city in world.entities("city"):
        assert len(world.tails(city.id, "located_in")) == 1
    for person in world.entities("person"):
        for relation in ("born_in", "lives_in", "citizen_of"):
            assert len(world.tails(person.id, relation)) == 1
    for org in world.entities("organisation"):
        assert len(world.tails(org.id, "founded_by")) == 1
        assert len(world.tails(org.id, "headquartered_in")) == 1
    for head, relation, tail in world.triples():  # inverse pairs agree
        inverse = {
            "capital_of": "has_capital",
            "founded_by": "founder_of",
            "authored": "written_by",
        }
        if relation in inverse:
            assert head in world.tails(tail, inverse[relation])
        if relation == "spouse_of":
            assert world.tails(tail, "spouse_of") == [head]


def test_names_unique_and_aliases(world):
    names = [e.name for e in world.entities()]
    assert len(set(names)) == len(names)
    for name in names:  # no name is a whole-word part of another (safe to grep questions)
        assert all(
            not re.search(rf"\b{re.escape(name)}\b", other) for other in names if other != name
        )
        assert re.fullmatch(r"[A-Z][a-z]*( [A-Za-z]+)*", name)
    aliased = {e.type for e in world.entities() if e.aliases}
    assert {"person", "organisation"} <= aliased
    people = [a for e in world.entities("person") for a in e.aliases]
    assert any(a.startswith("Dr. ") for a in people)
    assert any(re.fullmatch(r"[A-Z]\. [A-Z][a-z]+", a) for a in people)
    orgs = [a for e in world.entities("organisation") for a in e.aliases]
    assert orgs and all(a.isupper() for a in orgs)
    assert all(e.description for e in world.entities())


def _sentences(text: str) -> int:
    # a full stop after "Dr" or an initial does not end a sentence
    return len(re.findall(r"(?<!\bDr)(?<!\b[A-Z])[.?!](?=\s|$)", text))


def test_documents(world):
    docs = write_documents(world, seed=0)
    assert [d.entity_id for d in docs] == [e.id for e in world.entities()]
    assert write_documents(world, seed=0) == docs
    assert [d.text for d in write_documents(world, seed=1)] != [d.text for d in docs]
    for doc in docs:
        entity = world.entity(doc.entity_id)
        assert doc.id == f"doc:{entity.id}" and doc.title == entity.name
        assert entity.name in doc.text
        assert 50 <= len(doc.text.split()) <= 160, doc.text
        assert _sentences(doc.text) >= 4, doc.text
        for _, tail in world.out_relations(entity.id):
            assert world.entity(tail).name in doc.text, (entity.name, tail)
        incoming = {h for h, _ in world.in_relations(entity.id)}
        if incoming:
            assert any(world.entity(h).name in doc.text for h in incoming)


def test_documents_mention_both_directions(world):
    docs = {d.entity_id: d.text for d in write_documents(world)}
    for city in world.entities("city"):
        relations = {r for _, r in world.in_relations(city.id)}
        text = docs[city.id]
        for relation in ("born_in", "headquartered_in"):
            if relation in relations:
                heads = [h for h, r in world.in_relations(city.id) if r == relation]
                assert any(world.entity(h).name in text for h in heads), (city.name, relation)
    country = world.entities("country")[0]
    cities = [h for h, r in world.in_relations(country.id) if r == "located_in"]
    assert all(world.entity(c).name in docs[country.id] for c in cities)


def test_short_documents_still_state_every_outgoing_fact():
    kg = synthetic_world(3)
    full = {d.entity_id: d for d in write_documents(kg, 3)}
    short = write_documents(kg, 3, min_words=0, max_words=20)
    assert sum(len(d.text.split()) for d in short) < 0.7 * sum(
        len(d.text.split()) for d in full.values()
    )
    for doc in short:
        for _, tail in kg.out_relations(doc.entity_id):
            assert kg.entity(tail).name in doc.text, (doc.title, tail)
    with pytest.raises(ValueError, match="min_words"):
        write_documents(kg, 3, min_words=-1)
