"""A small typed knowledge graph, a seeded synthetic world, and documents written from it.

Multi-hop questions are made by walking this graph (see `walks.py`); the documents are the
corpus a policy searches. A synthetic world keeps everything offline and reproducible: names
are made-up, so a model cannot answer from memory and has to read the documents.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from posttrain.data.io import DataError, iter_jsonl, write_jsonl
from posttrain.data.tables import table

# The phrase tables (relation phrases, the world's names and descriptions, the document
# sentences) are shipped data: tables/kg.yaml.
RELATION_TEXT: dict[str, str] = table("kg", "relation_text", dict[str, str])
"""Phrase read as "<head> <phrase> <tail>"; documents and questions both build on it."""
INVERSE_RELATIONS: dict[str, str] = table("kg", "inverse_relations", dict[str, str])
"""Pairs that state the same fact from either end, so a document says it once."""


@dataclass
class Entity:
    id: str
    name: str
    type: str  # person | city | country | organisation | work (free text for user graphs)
    aliases: list[str] = field(default_factory=list)
    description: str = ""


@dataclass
class Document:
    id: str  # "doc:<entity id>"
    entity_id: str
    title: str  # the entity name
    text: str


def document_id(entity_id: str) -> str:
    return f"doc:{entity_id}"


class KnowledgeGraph:
    """A typed directed multigraph of entities (networkx.MultiDiGraph underneath, `.graph`).

    Edges are keyed by relation, so a (head, relation, tail) triple is stored at most once
    while two different relations between the same pair coexist.
    """

    def __init__(self) -> None:
        self.graph = nx.MultiDiGraph()
        self.relation_labels: dict[str, str] = {}
        """Phrases of a user graph's relations (a relations file, `posttrain.data.corpus`),
        read before RELATION_TEXT wherever a relation is put into words."""

    def relation_text(self, relation: str) -> str | None:
        """The relation's phrase: its label, else its RELATION_TEXT entry, else None."""
        return self.relation_labels.get(relation) or RELATION_TEXT.get(relation)

    def relations(self) -> set[str]:
        return {key for _, _, key in self.graph.edges(keys=True)}

    def add_entity(self, entity: Entity) -> None:
        if not entity.id:
            raise ValueError("entity id must be a non-empty string")
        if entity.id in self.graph:
            raise ValueError(f"duplicate entity id {entity.id!r}")
        self.graph.add_node(entity.id, entity=entity)

    def add_relation(self, head: str, relation: str, tail: str) -> None:
        if not relation:
            raise ValueError(f"empty relation between {head!r} and {tail!r}")
        for entity_id in (head, tail):
            if entity_id not in self.graph:
                raise ValueError(
                    f"unknown entity id {entity_id!r} in ({head!r}, {relation!r}, {tail!r})"
                )
        if not self.graph.has_edge(head, tail, key=relation):
            self.graph.add_edge(head, tail, key=relation, relation=relation)

    def entity(self, entity_id: str) -> Entity:
        try:
            return self.graph.nodes[entity_id]["entity"]
        except KeyError:
            raise KeyError(f"unknown entity id {entity_id!r}") from None

    def entities(self, type: str | None = None) -> list[Entity]:
        found = (data["entity"] for _, data in self.graph.nodes(data=True))
        return [e for e in found if type is None or e.type == type]

    def triples(self) -> list[tuple[str, str, str]]:
        return [(head, key, tail) for head, tail, key in self.graph.edges(keys=True)]

    def tails(self, head: str, relation: str) -> list[str]:
        return sorted(tail for rel, tail in self._out(head) if rel == relation)

    def out_relations(self, head: str) -> list[tuple[str, str]]:
        """(relation, tail) pairs leaving `head`, sorted so walks are reproducible."""
        return sorted(self._out(head))

    def in_relations(self, tail: str) -> list[tuple[str, str]]:
        """(head, relation) pairs arriving at `tail`, sorted."""
        self.entity(tail)
        return sorted((head, key) for head, _, key in self.graph.in_edges(tail, keys=True))

    def neighbours(self, entity_id: str) -> set[str]:
        self.entity(entity_id)
        return set(self.graph.successors(entity_id)) | set(self.graph.predecessors(entity_id))

    def _out(self, head: str) -> Iterator[tuple[str, str]]:
        self.entity(head)
        return ((key, tail) for _, tail, key in self.graph.out_edges(head, keys=True))

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def __contains__(self, entity_id: object) -> bool:
        return isinstance(entity_id, str) and entity_id in self.graph

    def __repr__(self) -> str:
        return f"KnowledgeGraph({len(self)} entities, {self.graph.number_of_edges()} triples)"


# --- loading and saving -------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers, so errors can point at them."""
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield number, line


def _tsv_rows(path: Path, header: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """Tab-separated fields; a first line naming the leading columns is a header and skipped."""
    first = True
    for number, line in _lines(path):
        fields = [f.strip() for f in line.split("\t")]
        if first and tuple(f.lower() for f in fields[: len(header)]) == header:
            first = False
            continue
        first = False
        yield number, fields


def _format(path: Path) -> str:
    if path.suffix in (".tsv", ".jsonl"):
        return path.suffix
    raise DataError(f"{path}: unsupported graph format (use .tsv or .jsonl)")


def _text(value: Any, key: str, where: str, required: bool = True) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: {key!r} must be a string, got {value!r:.60}")
    if required and not value.strip():
        raise DataError(f"{where}: {key!r} is empty")
    return value.strip()


def _entity_from_tsv(fields: list[str], where: str) -> Entity:
    if not 3 <= len(fields) <= 5:
        raise DataError(
            f"{where}: expected 3 to 5 tab-separated columns "
            f"(id, name, type, aliases, description), got {len(fields)}"
        )
    fields = fields + [""] * (5 - len(fields))
    for key, value in zip(("id", "name", "type"), fields, strict=False):
        _text(value, key, where)
    aliases = [a.strip() for a in fields[3].split("|") if a.strip()]
    return Entity(fields[0], fields[1], fields[2], aliases, fields[4])


def _entity_from_json(row: dict[str, Any], where: str) -> Entity:
    missing = [k for k in ("id", "name", "type") if k not in row]
    if missing:
        raise DataError(f"{where}: missing key {', '.join(map(repr, missing))}")
    aliases = row.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise DataError(f"{where}: 'aliases' must be a list of strings")
    return Entity(
        id=_text(row["id"], "id", where),
        name=_text(row["name"], "name", where),
        type=_text(row["type"], "type", where),
        aliases=[a.strip() for a in aliases if a.strip()],
        description=_text(row.get("description", ""), "description", where, required=False),
    )


def _triple_from_tsv(fields: list[str], where: str) -> tuple[str, str, str]:
    if len(fields) != 3:
        raise DataError(
            f"{where}: expected 3 tab-separated columns (head, relation, tail), got {len(fields)}"
        )
    for key, value in zip(("head", "relation", "tail"), fields, strict=True):
        _text(value, key, where)
    return fields[0], fields[1], fields[2]


def _triple_from_json(row: dict[str, Any], where: str) -> tuple[str, str, str]:
    missing = [k for k in ("head", "relation", "tail") if k not in row]
    if missing:
        raise DataError(f"{where}: missing key {', '.join(map(repr, missing))}")
    head, relation, tail = (_text(row[k], k, where) for k in ("head", "relation", "tail"))
    return head, relation, tail


def _read_entities(path: Path) -> Iterator[tuple[str, Entity]]:
    if _format(path) == ".tsv":
        for number, fields in _tsv_rows(path, ("id", "name")):
            where = f"{path}:{number}"
            yield where, _entity_from_tsv(fields, where)
    else:
        for number, row in iter_jsonl(path):
            where = f"{path}:{number}"
            yield where, _entity_from_json(row, where)


def _read_triples(path: Path) -> Iterator[tuple[str, tuple[str, str, str]]]:
    if _format(path) == ".tsv":
        for number, fields in _tsv_rows(path, ("head", "relation", "tail")):
            where = f"{path}:{number}"
            yield where, _triple_from_tsv(fields, where)
    else:
        for number, row in iter_jsonl(path):
            where = f"{path}:{number}"
            yield where, _triple_from_json(row, where)


def load_graph(triples: str | Path, entities: str | Path) -> KnowledgeGraph:
    """Build a graph from entity and triple files (.tsv or .jsonl); bad rows name file:line."""
    triples, entities = Path(triples), Path(entities)
    kg = KnowledgeGraph()
    for where, entity in _read_entities(entities):
        if entity.id in kg:
            raise DataError(f"{where}: duplicate entity id {entity.id!r}")
        kg.add_entity(entity)
    for where, (head, relation, tail) in _read_triples(triples):
        for entity_id in (head, tail):
            if entity_id not in kg:
                raise DataError(f"{where}: unknown entity id {entity_id!r} (not in {entities})")
        kg.add_relation(head, relation, tail)
    return kg


def save_graph(kg: KnowledgeGraph, triples_path: str | Path, entities_path: str | Path) -> None:
    """Write JSONL files that `load_graph` reads back into an equal graph."""
    write_jsonl(entities_path, (asdict(e) for e in kg.entities()))
    write_jsonl(triples_path, ({"head": h, "relation": r, "tail": t} for h, r, t in kg.triples()))


# --- synthetic world ----------------------------------------------------------------------

_ONSETS = table("kg", "onsets", tuple[str, ...])
_VOWELS = table("kg", "vowels", str)
_FINAL_VOWELS = table("kg", "final_vowels", str)
_COUNTRY_SUFFIXES = table("kg", "country_suffixes", tuple[str, ...])
_CITY_KINDS = table("kg", "city_kinds", tuple[str, ...])
_COUNTRY_KINDS = table("kg", "country_kinds", tuple[str, ...])
_ORG_KINDS = table("kg", "org_kinds", dict[str, str])
_OCCUPATIONS = table("kg", "occupations", tuple[str, ...])
_DOCTORS = table("kg", "doctors", frozenset[str])
_WORK_TITLES = table("kg", "work_titles", tuple[str, ...])
_WORK_KINDS = table("kg", "work_kinds", tuple[str, ...])


class _Names:
    """Unique made-up stems: no stem is ever reused, so no name contains another name."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def stem(self) -> str:
        while True:
            syllables = [
                self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS)
                for _ in range(self.rng.choice((2, 2, 3)))
            ]
            syllables[-1] = syllables[-1][:-1] + self.rng.choice(_FINAL_VOWELS)
            word = "".join(syllables).capitalize()
            if word.lower() not in self.used:
                self.used.add(word.lower())
                return word


def _add(kg: KnowledgeGraph, prefix: str, index: int, **fields: Any) -> str:
    entity = Entity(id=f"{prefix}-{index:03d}", **fields)
    kg.add_entity(entity)
    return entity.id


def _add_places(kg: KnowledgeGraph, names: _Names, rng: random.Random, countries: int, per: int):
    """Countries with their cities; the first city of each country is its capital."""
    city_country: dict[str, str] = {}
    for c in range(countries):
        name = names.stem() + rng.choice(_COUNTRY_SUFFIXES)
        aliases = [f"Republic of {name}"] if rng.random() < 0.5 else []
        country = _add(
            kg,
            "country",
            c,
            name=name,
            type="country",
            aliases=aliases,
            description=rng.choice(_COUNTRY_KINDS),
        )
        for k in range(per):
            city = _add(
                kg,
                "city",
                c * per + k,
                name=names.stem(),
                type="city",
                description=rng.choice(_CITY_KINDS),
            )
            kg.add_relation(city, "located_in", country)
            city_country[city] = country
            if k == 0:
                kg.add_relation(city, "capital_of", country)
                kg.add_relation(country, "has_capital", city)
    return city_country


def _add_people(kg: KnowledgeGraph, names: _Names, rng: random.Random, n: int, cities, places):
    people = []
    for p in range(n):
        first, last = names.stem(), names.stem()
        job = rng.choice(_OCCUPATIONS)
        aliases = [f"Dr. {first} {last}"] if job in _DOCTORS else []
        if rng.random() < 0.5:
            aliases.append(f"{first[0]}. {last}")
        person = _add(
            kg,
            "person",
            p,
            name=f"{first} {last}",
            type="person",
            aliases=aliases,
            description=job,
        )
        born = rng.choice(cities)
        home = born if rng.random() < 0.4 else rng.choice(cities)
        kg.add_relation(person, "born_in", born)
        kg.add_relation(person, "lives_in", home)
        kg.add_relation(person, "citizen_of", places[born if rng.random() < 0.8 else home])
        people.append(person)
    return people


def _add_organisations(kg, names: _Names, rng: random.Random, n: int, cities, people):
    orgs, acronyms = [], set()
    founders = rng.sample(people, min(n, len(people)))
    for o in range(n):
        kind = rng.choice(sorted(_ORG_KINDS))
        name = (
            f"{names.stem()} {names.stem()} {kind}"
            if rng.random() < 0.5
            else f"{names.stem()} {kind}"
        )
        acronym = "".join(word[0] for word in name.split())
        aliases = []
        if len(acronym) >= 3 and acronym not in acronyms:
            acronyms.add(acronym)
            aliases.append(acronym)
        org = _add(
            kg,
            "org",
            o,
            name=name,
            type="organisation",
            aliases=aliases,
            description=_ORG_KINDS[kind],
        )
        kg.add_relation(org, "headquartered_in", rng.choice(cities))
        if o < len(founders):
            kg.add_relation(org, "founded_by", founders[o])
            kg.add_relation(founders[o], "founder_of", org)
            kg.add_relation(founders[o], "works_for", org)
        orgs.append(org)
    for person in people:
        if not kg.tails(person, "works_for") and orgs and rng.random() < 0.85:
            kg.add_relation(person, "works_for", rng.choice(orgs))
    return orgs


def _add_works(kg, names: _Names, rng: random.Random, n: int, people, orgs) -> None:
    """Works by a pool of writers, so some people author several works."""
    writers = rng.sample(people, max(1, min(len(people), n * 2 // 3)))
    for w in range(n):
        title = rng.choice(_WORK_TITLES).format(s=names.stem())
        aliases = [title[4:]] if title.startswith("The ") and rng.random() < 0.4 else []
        work = _add(
            kg,
            "work",
            w,
            name=title,
            type="work",
            aliases=aliases,
            description=rng.choice(_WORK_KINDS),
        )
        author = rng.choice(writers)
        kg.add_relation(author, "authored", work)
        kg.add_relation(work, "written_by", author)
        if orgs:
            kg.add_relation(work, "published_by", rng.choice(orgs))


def _add_social(kg, rng: random.Random, cities, people) -> None:
    """Mayors, marriages and teachers: functional person links that let long walks continue."""
    mayors: set[str] = set()
    for city in cities:
        residents = [h for h, r in kg.in_relations(city) if r == "lives_in" and h not in mayors]
        if residents and rng.random() < 0.7:
            mayor = rng.choice(residents)
            mayors.add(mayor)
            kg.add_relation(mayor, "mayor_of", city)
            kg.add_relation(city, "has_mayor", mayor)
    married = rng.sample(people, 2 * (len(people) // 10))
    for a, b in zip(married[0::2], married[1::2], strict=True):
        kg.add_relation(a, "spouse_of", b)
        kg.add_relation(b, "spouse_of", a)
    teachers = rng.sample(people, max(1, len(people) // 6))
    for person in people:
        options = [t for t in teachers if t != person]
        if options and rng.random() < 0.5:
            kg.add_relation(person, "student_of", rng.choice(options))


def synthetic_world(
    seed: int = 0,
    *,
    countries: int = 6,
    cities_per_country: int = 4,
    people: int = 60,
    organisations: int = 15,
    works: int = 25,
) -> KnowledgeGraph:
    """A made-up world of people, places, organisations and works, the same for the same seed."""
    if countries < 1 or cities_per_country < 1 or people < 2:
        raise ValueError("need at least 1 country, 1 city per country and 2 people")
    rng = random.Random(seed)
    names = _Names(rng)
    kg = KnowledgeGraph()
    places = _add_places(kg, names, rng, countries, cities_per_country)
    cities = list(places)
    persons = _add_people(kg, names, rng, people, cities, places)
    orgs = _add_organisations(kg, names, rng, organisations, cities, persons)
    _add_works(kg, names, rng, works, persons, orgs)
    _add_social(kg, rng, cities, persons)
    return kg


# --- documents ----------------------------------------------------------------------------

_OUT_TEMPLATES = table("kg", "out_templates", dict[str, tuple[str, ...]])
_IN_TEMPLATES = table("kg", "in_templates", dict[str, tuple[str, ...]])
_ALIAS_TEMPLATES = table("kg", "alias_templates", tuple[str, ...])
_FLAVOUR = table("kg", "flavour", dict[str, tuple[str, ...]])
_GENERIC_FLAVOUR = table("kg", "generic_flavour", tuple[str, ...])
_MAX_LISTED = 4
_MIN_WORDS, _MAX_WORDS = 60, 150


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


def _words(sentences: list[str]) -> int:
    return sum(len(s.split()) for s in sentences)


def _ref(entity: Entity, rng: random.Random) -> str:
    """The entity's name, or now and then a shorter reference to vary the prose."""
    if rng.random() > 0.35:
        return entity.name
    if entity.type == "person" and " " in entity.name:
        return entity.name.split()[-1]
    if entity.type in _FLAVOUR:
        return f"the {entity.type}"
    return entity.name


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for relation, other in pairs:
        groups.setdefault(relation, []).append(other)
    return groups


def _fact_sentences(kg: KnowledgeGraph, entity: Entity, rng: random.Random):
    """Sentences for outgoing facts (all kept) and incoming facts (lists capped)."""
    name = {e: kg.entity(e).name for e in kg.neighbours(entity.id)}
    out_pairs = kg.out_relations(entity.id)
    out = []
    for relation, tails in _grouped(out_pairs).items():
        phrase = kg.relation_text(relation) or relation.replace("_", " ")
        template = rng.choice(_OUT_TEMPLATES.get(relation, ["{s} " + phrase + " {o}."]))
        out.append(template.format(s=_ref(entity, rng), o=_join([name[t] for t in tails])))
    said = set(out_pairs)
    incoming = [
        (r, h) for h, r in kg.in_relations(entity.id) if (INVERSE_RELATIONS.get(r), h) not in said
    ]
    inc = []
    for relation, heads in _grouped(incoming).items():
        listed = sorted(rng.sample(heads, min(len(heads), _MAX_LISTED)), key=heads.index)
        phrase = kg.relation_text(relation) or relation.replace("_", " ")
        template = rng.choice(_IN_TEMPLATES.get(relation, ["{os} " + phrase + " {s}."]))
        inc.append(template.format(s=_ref(entity, rng), os=_join([name[h] for h in listed])))
    return out, inc


def _document(
    kg: KnowledgeGraph,
    entity: Entity,
    seed: int,
    min_words: int = _MIN_WORDS,
    max_words: int = _MAX_WORDS,
) -> Document:
    rng = random.Random(f"{seed}:{entity.id}")
    opening = [
        f"{entity.name} is {entity.description}."
        if entity.description[:1].islower()
        else f"{entity.name}: {entity.description}."
        if entity.description
        else f"{entity.name} is a {entity.type}."
    ]
    if entity.aliases:
        aliases = " or ".join(entity.aliases)
        opening.append(rng.choice(_ALIAS_TEMPLATES).format(s=entity.name, a=aliases))
    out, inc = _fact_sentences(kg, entity, rng)
    body = list(out)
    for sentence in inc:
        if _words(opening + body) + len(sentence.split()) <= max_words:
            body.append(sentence)
    rng.shuffle(body)
    pool = _FLAVOUR.get(entity.type, ()) + _GENERIC_FLAVOUR
    for sentence in rng.sample(pool, len(pool)):
        if _words(opening + body) >= min_words:
            break
        body.insert(rng.randrange(len(body) + 1), sentence.format(s=_ref(entity, rng)))
    text = " ".join(_sentence(s) for s in opening + body)
    return Document(document_id(entity.id), entity.id, entity.name, text)


def write_documents(
    kg: KnowledgeGraph, seed: int = 0, *, min_words: int = _MIN_WORDS, max_words: int = _MAX_WORDS
) -> list[Document]:
    """One document per entity, stating its facts in both directions with varied wording.

    Neighbours are named in each other's documents, so a wrong document is a plausible
    distractor; each document is seeded by (seed, entity id) and does not depend on the others.
    Every outgoing fact is always stated (a chain's hop is read from its head's document);
    incoming facts fill up to `max_words` and fact-free sentences pad up to `min_words`, so
    small `min_words` / `max_words` give the short documents a tiny model can read.
    """
    if min_words < 0 or max_words < 1:
        raise ValueError(f"need min_words >= 0 and max_words >= 1, got {min_words}, {max_words}")
    return [_document(kg, entity, seed, min_words, max_words) for entity in kg.entities()]
