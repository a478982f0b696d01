"""BM25 search, search-agent trajectories and LongTraceRL distractor tiers, on a hand-made world.

The world objects below mirror the attributes of posttrain.data.kg / walks, so these tests do
not depend on how the knowledge graph is generated.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from posttrain.data.distractors import (
    assemble_context,
    distractor_overlap,
    oneshot_distractors,
    random_distractors,
    tiered_distractors,
)
from posttrain.data.search import (
    CITE_TASK,
    OPEN_TASK,
    QUERY_TASK,
    BM25Index,
    LLMSearchAgent,
    RuleBasedSearchAgent,
    Trajectory,
    parse_doc_ids,
    parse_query,
)
from posttrain.models.chat import scripted
from posttrain.models.chat.scripted import ScriptedChat, make_script, register_script


@dataclass
class Entity:
    id: str
    name: str
    type: str
    aliases: list[str] = field(default_factory=list)
    description: str = ""


@dataclass
class Document:
    id: str
    entity_id: str
    title: str
    text: str


@dataclass
class Hop:
    head: str
    relation: str
    tail: str


@dataclass
class MultiHopQuestion:
    id: str
    question: str
    answer: str
    aliases: list[str]
    hops: list[Hop]
    rubric: list[str]
    gold_entities: list[str]
    gold_documents: list[str]


class TinyKG:
    def __init__(self, entities: list[Entity]) -> None:
        self._entities = {e.id: e for e in entities}

    def entity(self, entity_id: str) -> Entity:
        return self._entities[entity_id]


RELATIONS = {
    "born_in": "was born in",
    "located_in": "is located in",
    "works_for": "works for",
}

ENTITIES = [
    Entity("alice", "Alice Varn", "person"),
    Entity("brill", "Brill", "city"),
    Entity("norland", "Norland", "country"),
    Entity("bob", "Bob Varn", "person"),
    Entity("crell", "Crell", "city"),
    Entity("osmark", "Osmark", "country"),
    Entity("orrin", "Orrin Press", "publishing_house"),
    Entity("dana", "Dana Holt", "person"),
]
TEXTS = {
    "alice": "Alice Varn is a painter. Alice Varn was born in Brill and worked with Dana Holt.",
    "brill": "Brill is a city. Brill is located in Norland. The painter Alice Varn was born there.",
    "norland": "Norland is a country in the north. Its largest city is Brill.",
    "bob": "Bob Varn is a sculptor. Bob Varn was born in Crell.",
    "crell": "Crell is a city located in Osmark.",
    "osmark": "Osmark is a country in the south.",
    "orrin": "Orrin Press is a publisher of maps.",
    "dana": "Dana Holt is a chemist who was born in Crell.",
}
DOCS = [Document(f"doc:{e.id}", e.id, e.name, TEXTS[e.id]) for e in ENTITIES]
KG = TinyKG(ENTITIES)

QUESTION = MultiHopQuestion(
    id="q1",
    question="In which country is the city where Alice Varn was born?",
    answer="Norland",
    aliases=[],
    hops=[Hop("alice", "born_in", "brill"), Hop("brill", "located_in", "norland")],
    rubric=[],
    gold_entities=["alice", "brill", "norland"],
    gold_documents=["doc:alice", "doc:brill", "doc:norland"],
)


@pytest.fixture(scope="module")
def index() -> BM25Index:
    return BM25Index(DOCS)


def words(text: str) -> int:
    return len(text.split())


# --- BM25 ------------------------------------------------------------------------------------


def test_bm25_ranks_matching_document_first_and_bounds_k(index: BM25Index) -> None:
    hits = index.search("sculptor", 5)
    assert [doc_id for doc_id, _ in hits] == ["doc:bob"]  # only documents sharing a term
    top = index.search("Orrin Press publisher", 3)
    assert top[0][0] == "doc:orrin" and top[0][1] > 0
    assert index.doc("doc:orrin").title == "Orrin Press"

    many = index.search("city country Brill Crell", 100)  # k beyond the corpus
    assert 0 < len(many) <= len(DOCS)
    assert len({d for d, _ in many}) == len(many)
    scores = [s for _, s in many]
    assert scores == sorted(scores, reverse=True)
    assert len(index.search("city country Brill Crell", 2)) == 2
    assert index.search("", 5) == [] and index.search("the of and", 5) == []
    assert index.search("zebra", 5) == [] and index.search("Brill", 0) == []


def test_bm25_ties_are_broken_by_doc_id() -> None:
    same = "Twin river town."
    docs = [Document(f"doc:{n}", n, "Twin", same) for n in ("c", "a", "b")]
    assert [d for d, _ in BM25Index(docs).search("twin river", 3)] == ["doc:a", "doc:b", "doc:c"]
    with pytest.raises(ValueError):
        BM25Index(docs + docs[:1])
    assert BM25Index([]).search("anything", 3) == []


# --- rule-based agent ------------------------------------------------------------------------


def test_rule_based_agent_trajectory(index: BM25Index) -> None:
    agent = RuleBasedSearchAgent(index, KG, top_r=4, open_k=2, seed=0, relation_text=RELATIONS)
    traj = agent.run(QUESTION)

    assert traj.question_id == "q1"
    assert len(traj.steps) == 2
    assert traj.steps[0]["query"] == "Alice Varn was born in"
    assert traj.steps[1]["query"] == "Brill is located in"
    assert traj.queries[:1] == ["Alice Varn was born in"]
    assert traj.cited == ["doc:brill", "doc:norland"]
    assert [s["cited"] for s in traj.steps] == traj.cited
    assert set(traj.opened) <= set(traj.seen) and set(traj.cited) <= set(traj.opened)
    for trace in (traj.seen, traj.opened, traj.cited):
        assert len(trace) == len(set(trace))
    for step in traj.steps:
        assert len(step["results"]) <= 4
        assert set(step["results"]) <= set(traj.seen)

    tiers = tiered_distractors(traj, QUESTION.gold_documents)
    assert tiers and not set(tiers) & set(QUESTION.gold_documents)
    assert {d for d, t in tiers.items() if t == 1} == set(traj.opened) - set(traj.cited) - {
        "doc:alice"
    }
    assert agent.run(QUESTION) == traj  # deterministic by seed


def alice_employer(question_id: str) -> MultiHopQuestion:
    """One hop whose gold page (Orrin Press's) shares no word with any query about it."""
    return MultiHopQuestion(
        id=question_id,
        question="Who employs Alice Varn?",
        answer="Orrin Press",
        aliases=[],
        hops=[Hop("alice", "works_for", "orrin")],
        rubric=[],
        gold_entities=["alice", "orrin"],
        gold_documents=["doc:alice", "doc:orrin"],
    )


def test_a_gold_document_search_never_finds_is_missed_and_never_opened(index: BM25Index) -> None:
    # No query about Alice's employer shares a word with Orrin Press's page.
    question = alice_employer("q2")
    agent = RuleBasedSearchAgent(index, KG, top_r=3, open_k=1, seed=1, relation_text=RELATIONS)
    traj = agent.run(question)
    step = traj.steps[0]
    assert step["query"] == "Alice Varn works for"
    assert step["retry_query"] == "Alice Varn works for publishing house"
    assert traj.queries == [step["query"], step["retry_query"]]
    assert step["missed"] is True and traj.missed == [True]
    assert "doc:orrin" not in traj.seen and "doc:orrin" not in traj.opened
    assert step["cited"] is None and traj.cited == []
    assert set(traj.opened) <= set(traj.seen)
    # The miss leaves fewer distractors, never the gold document among them.
    tiers = tiered_distractors(traj, question.gold_documents)
    assert "doc:orrin" not in tiers and set(tiers) <= set(traj.seen)
    assert Trajectory.from_dict(traj.to_dict()) == traj


def test_a_head_page_that_states_the_fact_is_cited_when_the_tail_page_is_never_found() -> None:
    # Pages as a real corpus writes them: each states its own entity's facts, so no query
    # about Alice's birthplace shares a word with Brill's page, while Alice's names Brill.
    texts = {
        "alice": "Alice Varn is a painter. Alice Varn was born in Brill.",
        "brill": "Brill lies on the coast of Norland.",
        "orrin": "Orrin Press is a publisher of maps.",
    }
    pages = BM25Index([Document(f"doc:{k}", k, KG.entity(k).name, v) for k, v in texts.items()])
    question = MultiHopQuestion(
        id="q4",
        question="Where was Alice Varn born?",
        answer="Brill",
        aliases=[],
        hops=[Hop("alice", "born_in", "brill")],
        rubric=[],
        gold_entities=["alice", "brill"],
        gold_documents=["doc:alice", "doc:brill"],
    )
    agent = RuleBasedSearchAgent(pages, KG, top_r=3, open_k=1, relation_text=RELATIONS)
    traj = agent.run(question)
    [step] = traj.steps
    assert "doc:brill" not in traj.opened  # the tail's page never surfaced
    assert step["cited"] == "doc:alice" and step["missed"] is False
    # Alice's page does not name her employer: that hop stays missed (the q2 test above).
    employer = agent.run(alice_employer("q5"))
    assert employer.steps[0]["missed"] is True and employer.cited == []


def test_the_llm_agent_never_opens_a_gold_document_search_did_not_show(index: BM25Index) -> None:
    question = alice_employer("q3")
    chat = ScriptedChat("longtrace-gold-test", [("cite", "doc:orrin")], default="doc:alice")
    agent = LLMSearchAgent(chat, index, KG, top_r=3, open_k=1, relation_text=RELATIONS)
    traj = agent.run(question)
    [step] = traj.steps
    assert step["missed"] is True and "doc:orrin" not in traj.opened
    assert step["cited"] != "doc:orrin"  # naming an unseen id does not open it


def test_a_relation_without_a_label_never_reaches_a_query(index: BM25Index) -> None:
    agent = RuleBasedSearchAgent(index, KG, relation_text={"born_in": "was born in"})
    with pytest.raises(ValueError, match="'located_in' has no label"):
        agent.run(QUESTION)


def test_ties_are_opened_in_seeded_order() -> None:
    docs = [Document(f"doc:{n}", n, n, "Same words here.") for n in "abcdefgh"]
    kg = TinyKG([Entity(n, n, "thing") for n in "abcdefgh"] + [Entity("x", "Same", "thing")])
    question = MultiHopQuestion("q", "?", "", [], [Hop("x", "words", "a")], [], [], ["doc:a"])
    index = BM25Index(docs)
    runs = {
        tuple(
            RuleBasedSearchAgent(index, kg, open_k=2, seed=s, relation_text={"words": "words"})
            .run(question)
            .steps[0]["opened"]
        )
        for s in range(10)
    }
    assert len(runs) > 1


# --- distractors -----------------------------------------------------------------------------


def test_tier_assignment() -> None:
    traj = Trajectory(
        question_id="q",
        seen=["doc:g1", "doc:a", "doc:b", "doc:c", "doc:g2", "doc:d"],
        opened=["doc:g1", "doc:a", "doc:c", "doc:g2"],
        cited=["doc:g1", "doc:c"],
    )
    tiers = tiered_distractors(traj, ["doc:g1", "doc:g2"])
    assert tiers == {"doc:a": 1, "doc:b": 2, "doc:d": 2}
    assert list(tiers) == ["doc:a", "doc:b", "doc:d"]


def test_baselines_exclude_gold(index: BM25Index) -> None:
    ids = [d.id for d in DOCS]
    gold = QUESTION.gold_documents
    picked = random_distractors(ids, gold, 3, random.Random(0))
    assert len(picked) == 3 and not set(picked) & set(gold) and len(set(picked)) == 3
    assert picked == random_distractors(ids, gold, 3, random.Random(0))
    assert sorted(random_distractors(ids, gold, 99, random.Random(1))) == sorted(
        set(ids) - set(gold)
    )

    oneshot = oneshot_distractors(index, QUESTION.question, gold, 3)
    assert 0 < len(oneshot) <= 3 and not set(oneshot) & set(gold)
    assert oneshot[0] == "doc:bob"  # "Varn ... born" makes Bob the most confusable hit
    assert oneshot_distractors(index, QUESTION.question, gold, 0) == []


def _doc(doc_id: str, n_words: int) -> Document:
    return Document(doc_id, doc_id, doc_id, " ".join(["w"] * (n_words - 1)))  # title + text


def test_context_budget_gold_and_tier_priority() -> None:
    gold = [_doc("g1", 10), _doc("g2", 10)]
    distractors = [
        (_doc("t2a", 10), "tier2"),
        (_doc("t1a", 10), "tier1"),
        (_doc("t2b", 5), "tier2"),
        (_doc("t1b", 30), "tier1"),
    ]
    context = assemble_context(gold, distractors, 35, words, random.Random(0))
    labels = {doc.id: label for doc, label in context}
    assert labels == {"g1": "gold", "g2": "gold", "t1a": "tier1", "t2b": "tier2"}
    assert sum(words(f"{d.title}\n{d.text}") for d, _ in context) <= 35

    only_gold = assemble_context(gold, distractors, 24, words, random.Random(0))
    assert {d.id for d, _ in only_gold} == {"g1", "g2"}
    with pytest.raises(ValueError):
        assemble_context(gold, distractors, 19, words, random.Random(0))

    positions = set()
    for seed in range(20):
        ctx = assemble_context(gold, distractors, 100, words, random.Random(seed))
        assert len(ctx) == 6
        positions.add(tuple(i for i, (_, label) in enumerate(ctx) if label == "gold"))
    assert len(positions) > 1


def test_distractor_overlap() -> None:
    docs = [
        Document("1", "1", "x", "Bob met ALICE VARN yesterday."),
        Document("2", "2", "x", "Brillant ideas only."),  # not a whole-word mention
        Document("3", "3", "x", "Nothing (Brill) here."),
        Document("4", "4", "x", "Alice alone."),
    ]
    assert distractor_overlap(docs, ["Alice Varn", "Brill"]) == pytest.approx(0.5)
    assert distractor_overlap([], ["Brill"]) == 0.0
    assert distractor_overlap(docs, []) == 0.0


# --- LLM agent -------------------------------------------------------------------------------


def test_parsers() -> None:
    assert parse_query("Sure.\nQuery: `Alice Varn birthplace`\n") == "Alice Varn birthplace"
    assert parse_query("Alice Varn birthplace") == "Alice Varn birthplace"
    assert parse_query("  \n ") is None
    allowed = ["doc:e1", "doc:e12", "doc:e2"]
    assert parse_doc_ids("Open doc:e12, then doc:e1.", allowed) == ["doc:e12", "doc:e1"]
    assert parse_doc_ids("doc:e123 and xdoc:e2", allowed) == []


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scripted, "_SCRIPTS", dict(scripted._SCRIPTS))


def search_script() -> ScriptedChat:
    """Answers step 1 properly and step 2 with replies that cannot be parsed."""
    return ScriptedChat(
        "longtrace-search-test",
        [
            (rf"Step 1 of[\s\S]*{QUERY_TASK}", "Query: Alice Varn birthplace born"),
            (rf"Step 1 of[\s\S]*{OPEN_TASK}", "I will read [doc:brill] and doc:bob."),
            (rf"Step 1 of[\s\S]*{CITE_TASK}", "The answer is in doc:brill"),
            (rf"Step 2 of[\s\S]*{QUERY_TASK}", ""),
        ],
        default="no idea",
    )


@pytest.mark.usefixtures("isolated_registry")
def test_llm_agent_with_scripted_chat(index: BM25Index) -> None:
    register_script("longtrace-search-test", search_script)
    chat = make_script("longtrace-search-test")
    agent = LLMSearchAgent(chat, index, KG, top_r=5, open_k=2, seed=0, relation_text=RELATIONS)
    traj = agent.run(QUESTION)

    first, second = traj.steps
    assert first["query"] == "Alice Varn birthplace born"
    assert first["opened"] == ["doc:brill", "doc:bob"]
    assert first["cited"] == first["model_cited"] == "doc:brill"
    assert first["rule_fallbacks"] == [] and first["missed"] is False

    assert second["query"] == "Brill is located in"  # rule query after the empty reply
    assert second["rule_fallbacks"] == ["query", "open", "cite"]
    assert second["model_cited"] is None and second["cited"] == "doc:norland"

    assert traj.cited == ["doc:brill", "doc:norland"]
    assert set(traj.opened) <= set(traj.seen) and set(traj.cited) <= set(traj.opened)
    assert not set(tiered_distractors(traj, QUESTION.gold_documents)) & set(QUESTION.gold_documents)
