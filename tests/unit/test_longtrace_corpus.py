"""LongTraceRL on a user's corpus: pages and relation labels for a user graph, the search agent
and outcome judge chosen by the config, and the trajectories written with the build.

The graph is a tiny Wikidata-like one (relation ids P19, P17), so a raw id leaking into a
question or a query would show; the scripted chat models below are labelled as scripts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from posttrain.data.corpus import check_relation_labels, load_documents, load_relation_labels
from posttrain.data.io import DataError, read_jsonl
from posttrain.data.kg import load_graph
from posttrain.data.longtrace import LongTraceBuildConfig, SearchSettings, build_longtrace
from posttrain.data.search import CITE_TASK, OPEN_TASK, QUERY_TASK, Trajectory
from posttrain.data.tables import table
from posttrain.models.chat import scripted
from posttrain.models.chat.scripted import ScriptedChat, register_script

COUNTRIES = {"Q900": "Norvale", "Q901": "Ostrija", "Q902": "Pelmark"}
CITIES = {"Q800": ("Brill", "Q900"), "Q801": ("Crell", "Q901"), "Q802": ("Dorn", "Q902")}
PEOPLE = {
    "Q1": ("Alice Varn", "Q800"),
    "Q2": ("Bob Tesk", "Q800"),
    "Q3": ("Cara Lund", "Q801"),
    "Q4": ("Dino Marr", "Q801"),
    "Q5": ("Edda Sorn", "Q802"),
    "Q6": ("Fabe Quill", "Q802"),
}
LABELS = {"P19": "was born in", "P17": "is a city of"}


def write_world(root: Path, *, labels: dict[str, str] = LABELS) -> dict[str, Path]:
    entities = [f"{q}\t{name}\tcountry" for q, name in COUNTRIES.items()]
    entities += [f"{q}\t{name}\tcity" for q, (name, _) in CITIES.items()]
    entities += [f"{q}\t{name}\tperson" for q, (name, _) in PEOPLE.items()]
    triples = [f"{q}\tP17\t{country}" for q, (_, country) in CITIES.items()]
    triples += [f"{q}\tP19\t{city}" for q, (_, city) in PEOPLE.items()]
    pages = [
        {"entity": q, "title": name, "text": f"{name} is a nation with a long coast."}
        for q, name in COUNTRIES.items()
    ]
    pages += [
        {"entity": q, "title": name, "text": f"{name} is a river town in {COUNTRIES[c]}."}
        for q, (name, c) in CITIES.items()
    ]
    pages += [
        {"entity": q, "title": name, "text": f"{name} (born in {CITIES[c][0]}) paints ships."}
        for q, (name, c) in PEOPLE.items()
    ]
    pages.append({"entity": "Q999", "title": "Zeller Lake", "text": "A lake near Brill."})
    paths = {
        "entities": root / "entities.tsv",
        "triples": root / "triples.tsv",
        "documents": root / "pages.jsonl",
        "relations": root / "relations.tsv",
    }
    paths["entities"].write_text("\n".join(entities) + "\n")
    paths["triples"].write_text("\n".join(triples) + "\n")
    paths["documents"].write_text("".join(json.dumps(p) + "\n" for p in pages))
    paths["relations"].write_text("id\tlabel\n" + "".join(f"{k}\t{v}\n" for k, v in labels.items()))
    return paths


def tiny_config(root: Path, paths: dict[str, Path], **settings) -> LongTraceBuildConfig:
    files = {key: str(path) for key, path in paths.items()}
    return LongTraceBuildConfig(
        out=str(root / "out"), n=2, n_test=1, hops=[2], context_tokens=200, **files, **settings
    )


def filler_fragments() -> list[str]:
    """The longest fixed piece of every filler sentence the synthetic world pads with."""
    flavour = table("kg", "flavour", dict[str, tuple[str, ...]])
    sentences = [*table("kg", "generic_flavour", tuple[str, ...])]
    sentences += [s for group in flavour.values() for s in group]
    return [max(s.split("{s}"), key=len).strip() for s in sentences]


# --- loaders ------------------------------------------------------------------------------------


def test_pages_and_labels_load(tmp_path):
    paths = write_world(tmp_path)
    kg = load_graph(paths["triples"], paths["entities"])
    documents = load_documents(paths["documents"], kg)
    assert len(documents) == len(kg) + 1  # the lake outside the graph is kept, to be searched
    alice = next(d for d in documents if d.entity_id == "Q1")
    assert (alice.id, alice.title) == ("doc:Q1", "Alice Varn")
    assert load_relation_labels(paths["relations"]) == LABELS
    jsonl = tmp_path / "relations.jsonl"
    jsonl.write_text('{"id": "P19", "label": "was born in"}\n{"id": "P17", "label": "in"}\n')
    assert load_relation_labels(jsonl) == {"P19": "was born in", "P17": "in"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"entity": "Q1", "title": "Alice Varn"}, ":2: text: missing key"),
        ({"entity": "Q1", "title": 7, "text": "x"}, ":2: title: must be a string"),
        ({"entity": " ", "title": "A", "text": "x"}, ":2: entity: is empty"),
        ({"entity": "Q900", "title": "A", "text": "x"}, ":2: entity: a second document"),
    ],
)
def test_bad_pages_name_file_line_and_key(tmp_path, line, message):
    paths = write_world(tmp_path)
    kg = load_graph(paths["triples"], paths["entities"])
    first = paths["documents"].read_text().splitlines()[0]
    paths["documents"].write_text(first + "\n" + json.dumps(line) + "\n")
    with pytest.raises(DataError) as caught:
        load_documents(paths["documents"], kg)
    assert f"{paths['documents']}{message}" in str(caught.value)


def test_a_graph_entity_without_a_page_is_an_error_naming_it(tmp_path):
    paths = write_world(tmp_path)
    kg = load_graph(paths["triples"], paths["entities"])
    kept = [row for row in read_jsonl(paths["documents"]) if row["entity"] != "Q3"]
    paths["documents"].write_text("".join(json.dumps(r) + "\n" for r in kept))
    with pytest.raises(DataError, match=r"1 graph entities have no document: 'Q3'"):
        load_documents(paths["documents"], kg)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("P19\twas born in\nP17\n", ":2: expected 2 non-empty tab-separated columns"),
        ("P19\twas born in\nP19\tborn in\n", ":2: id: relation 'P19' labelled twice"),
    ],
)
def test_bad_label_rows_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "relations.tsv"
    path.write_text(text)
    with pytest.raises(DataError) as caught:
        load_relation_labels(path)
    assert f"{path}{message}" in str(caught.value)


def test_an_unlabelled_relation_is_an_error_naming_it_and_the_file(tmp_path):
    paths = write_world(tmp_path, labels={"P19": "was born in"})
    with pytest.raises(DataError) as caught:
        build_longtrace(tiny_config(tmp_path, paths))
    assert "'P17'" in str(caught.value) and str(paths["relations"]) in str(caught.value)
    assert not (tmp_path / "out" / "train.jsonl").exists()
    kg = load_graph(paths["triples"], paths["entities"])
    with pytest.raises(DataError, match="give a relations file"):
        check_relation_labels(kg, None)  # no labels at all: says where they would go


# --- builds -------------------------------------------------------------------------------------


def rows_of(out: Path) -> list[dict]:
    return read_jsonl(out / "train.jsonl") + read_jsonl(out / "test.jsonl")


def test_a_build_on_user_pages_adds_no_filler_and_no_raw_relation_id(tmp_path):
    paths = write_world(tmp_path)
    stats = build_longtrace(tiny_config(tmp_path, paths))
    out = tmp_path / "out"
    pages = {
        f"doc:{r['entity']}": f"{r['title']}\n{r['text']}" for r in read_jsonl(paths["documents"])
    }
    fragments = filler_fragments()
    for row in rows_of(out):
        prompt = row["input_messages"][0]["content"]
        for document in row["metadata"]["extra_reward_info"]["documents"]:
            assert f"] {pages[document['id']]}\n" in prompt + "\n"  # the page, word for word
        assert not [f for f in fragments if f in prompt]
        assert not re.search(r"\bP\d+\b", row["metadata"]["extra_reward_info"]["question"])

    trajectories = read_jsonl(out / "trajectories.jsonl")
    assert [t["split"] for t in trajectories] == ["train", "train", "test"]
    assert [t["question_id"] for t in trajectories] == [r["id"] for r in rows_of(out)]
    for row in trajectories:
        trajectory = Trajectory.from_dict(row)
        assert trajectory.to_dict() == {k: v for k, v in row.items() if k != "split"}
        assert not [q for q in trajectory.queries if re.search(r"\bP\d+\b", q)]
        assert "was born in" in trajectory.queries[0]
    search = stats["search"]
    assert search["agent"] == "rule" and search["hops"] == 6
    assert set(search["gold_missed_per_hop"]) == {"1", "2"}
    # These pages state each fact on the head's page, as Wikipedia does, and no query about a
    # person's birthplace shares a word with the town's own page: the head's page is cited.
    assert search["gold_missed"] == 0.0 and search["cited_head_page"] > 0.5


def test_a_user_graph_without_pages_gets_fact_documents_without_filler(tmp_path):
    paths = write_world(tmp_path)
    del paths["documents"]
    build_longtrace(tiny_config(tmp_path, paths))
    fragments = filler_fragments()
    for row in rows_of(tmp_path / "out"):
        prompt = row["input_messages"][0]["content"]
        assert not [f for f in fragments if f in prompt]
        assert "was born in" in prompt or "is a city of" in prompt  # facts by their labels


# --- the agent and the judge chosen by the config -----------------------------------------------


def _whole_question(match: re.Match[str], conversation) -> str:
    return f"Query: {match['question']}"


def search_script() -> ScriptedChat:
    """A scripted stand-in for an LLM agent: queries with the whole question, opens and cites
    the first document listed."""
    return ScriptedChat(
        "longtrace-test-agent",
        [
            (rf"Question: (?P<question>[^\n]*)[\s\S]*{QUERY_TASK}", _whole_question),
            (rf"\[(doc:[^\]]+)\][\s\S]*{OPEN_TASK}", r"\1"),
            (rf"\[(doc:[^\]]+)\][\s\S]*{CITE_TASK}", r"\1"),
        ],
    )


def judge_script() -> ScriptedChat:
    """A scripted judge that accepts every answer, so its verdicts differ from the rule's."""
    return ScriptedChat(
        "longtrace-test-judge", [], default="extracted_final_answer: x\ncorrect: yes"
    )


@pytest.fixture
def scripts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scripted, "_SCRIPTS", dict(scripted._SCRIPTS))
    register_script("longtrace-test-agent", search_script)
    register_script("longtrace-test-judge", judge_script)


@pytest.mark.usefixtures("scripts")
def test_the_llm_agent_and_the_judge_come_from_the_config(tmp_path):
    from posttrain.models.chat.spec import load_chat
    from posttrain.rewards.reward_set import RewardSet
    from posttrain.rewards.rubric import with_judged_outcome
    from posttrain.rewards.spec import get_reward

    paths = write_world(tmp_path)
    search = SearchSettings(agent="llm", model="scripted:longtrace-test-agent")
    stats = build_longtrace(tiny_config(tmp_path, paths, search=search))
    assert stats["search"]["agent"] == "llm"
    assert stats["search"]["model"] == "scripted:longtrace-test-agent"
    rows = rows_of(tmp_path / "out")
    trajectories = read_jsonl(tmp_path / "out" / "trajectories.jsonl")
    for row, trajectory in zip(rows, trajectories, strict=True):
        question = row["metadata"]["extra_reward_info"]["question"]
        assert trajectory["steps"][0]["query"] == question  # the script's query, not the rule's
        assert trajectory["steps"][0]["rule_fallbacks"] == []

    rewards = ["longtrace_rubric", "longtrace_outcome"]
    judge = load_chat("scripted:longtrace-test-judge")
    judged = RewardSet(with_judged_outcome([get_reward(r) for r in rewards], judge), [1.0, 0.0])
    row = rows[0]
    result = judged(
        prompts=[row["input_messages"]],
        completions=["Answer: somebody else"],  # wrong by the rule, right by this judge
        label=[row["label"]],
        metadata=[row["metadata"]],
    )
    assert result.breakdown["longtrace_outcome"] == [1.0]
    assert judged.functions[1].judge.requests >= 1
    assert get_reward("longtrace_outcome").judge is None  # the registered reward is untouched
    with pytest.raises(ValueError, match="search.model"):
        build_longtrace(tiny_config(tmp_path, paths, search=SearchSettings(agent="llm")))
