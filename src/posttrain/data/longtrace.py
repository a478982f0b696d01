"""LongTraceRL data: multi-hop questions in long contexts of confusable distractors.

LongTraceRL (THU-KEG, 2026) builds RL data from knowledge-graph random walks: each question
comes with the documents of its reasoning chain, hidden among distractors taken from a
search agent's trajectory (opened-but-not-cited documents are tier 1, seen-but-not-opened
tier 2), and with a rubric, the gold entities along the chain. This module turns a graph
into that data: `build_longtrace(config)` writes `train.jsonl`, `test.jsonl`, a `datasets`
copy and `stats.json` (`posttrain longtrace build`).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from posttrain.data.corpus import check_relation_labels, load_documents, load_relation_labels
from posttrain.data.distractors import (
    assemble_context,
    distractor_overlap,
    oneshot_distractors,
    random_distractors,
    tiered_distractors,
)
from posttrain.data.io import read_jsonl, write_jsonl
from posttrain.data.kg import Document, KnowledgeGraph, load_graph, synthetic_world, write_documents
from posttrain.data.search import (
    BM25Index,
    LLMSearchAgent,
    RuleBasedSearchAgent,
    Trajectory,
    gold_doc_id,
)
from posttrain.data.walks import MultiHopQuestion, fact_key, make_split

Setting = Literal["tiered", "random", "oneshot"]
SETTINGS: tuple[str, ...] = ("tiered", "random", "oneshot")

INSTRUCTION = (
    "Answer the question using the documents. The question is a chain: follow it one step "
    "at a time, naming the entity each step leads to, and end with a last line "
    "'Answer: <name>'."
)


@dataclass
class WorldSettings:
    # Large enough (360 entities, 1,336 triples) that 1,000 training questions can be drawn
    # without any fact or answer of 100 held-out ones (`make_split`; 111 distinct training
    # answers), the 130-entity world of before supplied only 161. Not larger: more names
    # take more tokens each, and the demo's 3-hop gold documents must fit 300 tokens.
    countries: int = 10
    cities_per_country: int = 5
    people: int = 200
    organisations: int = 40
    works: int = 60
    doc_min_words: int = 60
    """Documents are padded with fact-free sentences up to this many words ..."""
    doc_max_words: int = 150
    """... and take incoming facts up to this many (outgoing facts are always stated)."""


@dataclass
class SearchSettings:
    """The search agent whose trajectory gives the tiered distractors."""

    agent: Literal["rule", "llm"] = "rule"
    """rule: `RuleBasedSearchAgent` (no model); llm: `LLMSearchAgent` driven by `model`."""
    model: str | None = None
    """The llm agent's chat model spec: `scripted:NAME`, `openai:MODEL[@BASE_URL]` or a
    model directory (docs/specs.md)."""


@dataclass
class LongTraceBuildConfig:
    out: str = "data/longtrace"
    n: int = 200
    """Training questions."""
    n_test: int = 100
    hops: list[int] = field(default_factory=lambda: [2, 3, 4])
    """Hop counts (2 to 8), cycled over the questions."""
    distractors: Setting = "tiered"
    eval_settings: list[str] = field(default_factory=list)
    """Also write `test.<setting>.jsonl` for each of these settings: the same held-out
    questions with other distractors, to compare confusability on one question set (for
    the `distractors` setting itself, a copy of `test.jsonl`)."""
    context_tokens: int = 1024
    """Token budget of the documents in each context."""
    tokenizer: str | None = None
    """A tokenizer directory to count tokens with; None: about 1.3 tokens per word."""
    triples: str | None = None
    """A user graph (TSV or JSONL triples) with `entities`; None: the synthetic world."""
    entities: str | None = None
    documents: str | None = None
    """A user graph's pages, JSONL `{entity, title, text}` (`posttrain.data.corpus`); None:
    documents written from the graph's facts."""
    relations: str | None = None
    """A user graph's relation labels, TSV `id<TAB>phrase` or JSONL `{id, label}`; needed for
    every relation RELATION_TEXT does not phrase."""
    search: SearchSettings = field(default_factory=SearchSettings)
    world: WorldSettings = field(default_factory=WorldSettings)
    top_r: int = 8
    """Search results the agent sees per query."""
    open_k: int = 3
    """Results the agent opens per query."""
    seed: int = 0


def token_counter(tokenizer: str | None) -> Callable[[str], int]:
    """Tokens in a text: by `tokenizer`, or about 1.3 per word; memoised, since every
    document is counted once per context it might join."""
    if tokenizer is None:
        return functools.cache(lambda text: math.ceil(1.3 * len(re.findall(r"\S+", text))))
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(tokenizer)
    return functools.cache(lambda text: len(loaded.encode(text, add_special_tokens=False)))


def load_world(config: LongTraceBuildConfig) -> tuple[KnowledgeGraph, list[Document]]:
    """The graph and its documents: the synthetic world with generated documents, or a user
    graph with its own pages (`documents`) or documents written from its facts.

    Fact-free filler sentences pad only the synthetic world's documents: said of real
    entities they would be false, and a user's pages are used as they are.
    """
    if (config.triples is None) != (config.entities is None):
        raise ValueError("give both `triples` and `entities` for a user graph, or neither")
    w = config.world
    if config.triples is None or config.entities is None:
        if config.documents is not None or config.relations is not None:
            raise ValueError("`documents` and `relations` need a user graph: `triples`, `entities`")
        kg = synthetic_world(
            config.seed,
            countries=w.countries,
            cities_per_country=w.cities_per_country,
            people=w.people,
            organisations=w.organisations,
            works=w.works,
        )
        return kg, write_documents(
            kg, config.seed, min_words=w.doc_min_words, max_words=w.doc_max_words
        )
    kg = load_graph(config.triples, config.entities)
    if config.relations is not None:
        kg.relation_labels = load_relation_labels(config.relations)
    check_relation_labels(kg, config.relations)
    if config.documents is not None:
        return kg, load_documents(config.documents, kg)
    return kg, write_documents(kg, config.seed, min_words=0, max_words=w.doc_max_words)


def search_agent(
    config: LongTraceBuildConfig, index: BM25Index, kg: KnowledgeGraph
) -> RuleBasedSearchAgent | LLMSearchAgent:
    """The agent `config.search` names, querying with the graph's relation phrases."""
    labels = {relation: kg.relation_text(relation) or "" for relation in kg.relations()}
    common: dict[str, Any] = {
        "top_r": config.top_r,
        "open_k": config.open_k,
        "seed": config.seed,
        "relation_text": labels,
    }
    settings = config.search
    if settings.agent == "rule":
        if settings.model is not None:
            raise ValueError("search.model is read only with search.agent: llm")
        return RuleBasedSearchAgent(index, kg, **common)
    if settings.agent == "llm":
        if not settings.model:
            raise ValueError(
                "search.agent: llm needs search.model, a chat model spec (scripted:NAME, "
                "openai:MODEL[@BASE_URL] or a model directory)"
            )
        from posttrain.models.chat.spec import load_chat

        return LLMSearchAgent(load_chat(settings.model), index, kg, **common)
    raise ValueError(f"search.agent: unknown agent {settings.agent!r}; expected rule or llm")


def format_prompt(question: str, documents: list[Document]) -> str:
    blocks = [f"[{i}] {doc.title}\n{doc.text}" for i, doc in enumerate(documents, start=1)]
    return f"{INSTRUCTION}\n\nDocuments:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"


class ContextBuilder:
    """Distractors for one question under one setting, packed into the token budget."""

    def __init__(self, kg: KnowledgeGraph, documents: list[Document], config: LongTraceBuildConfig):
        self.kg = kg
        self.docs = {doc.id: doc for doc in documents}
        self.index = BM25Index(documents)
        self.agent = search_agent(config, self.index, kg)
        self.budget = config.context_tokens
        self.count = token_counter(config.tokenizer)
        self._trajectories: dict[str, Trajectory] = {}

    def trajectory(self, question: MultiHopQuestion) -> Trajectory:
        """The search agent's trajectory for a question (run once per question, then reused)."""
        if question.id not in self._trajectories:
            self._trajectories[question.id] = self.agent.run(question)
        return self._trajectories[question.id]

    def distractors(
        self, question: MultiHopQuestion, setting: str, rng: random.Random
    ) -> list[tuple[Document, str]]:
        gold = question.gold_documents
        if setting == "tiered":
            tiers = tiered_distractors(self.trajectory(question), gold)
            ranked = sorted(tiers, key=lambda doc_id: tiers[doc_id])  # stable: tier 1 first
            return [(self.docs[d], f"tier{tiers[d]}") for d in ranked]
        if setting == "random":
            ids = random_distractors(list(self.docs), gold, len(self.docs), rng)
            return [(self.docs[d], "random") for d in ids]
        if setting == "oneshot":
            ids = oneshot_distractors(self.index, question.question, gold, len(self.docs))
            return [(self.docs[d], "oneshot") for d in ids]
        raise ValueError(f"unknown distractor setting {setting!r}; expected one of {SETTINGS}")

    def context(
        self, question: MultiHopQuestion, setting: str, rng: random.Random
    ) -> list[tuple[Document, str]]:
        gold = [self.docs[d] for d in question.gold_documents]
        return assemble_context(
            gold, self.distractors(question, setting, rng), self.budget, self.count, rng
        )


def to_record(
    question: MultiHopQuestion, context: list[tuple[Document, str]], setting: str
) -> dict[str, Any]:
    """One row in LongTraceRL's format."""
    documents = [doc for doc, _ in context]
    return {
        "id": question.id,
        "input_messages": [
            {"role": "user", "content": format_prompt(question.question, documents)}
        ],
        "label": question.answer,
        "metadata": {
            "extra_reward_info": {
                "question": question.question,
                "rubrics": list(question.rubric),
                "aliases": list(question.aliases),
                "hops": len(question.hops),
                "distractor_setting": setting,
                "gold_documents": list(question.gold_documents),
                "documents": [
                    {"id": doc.id, "title": doc.title, "tier": tier} for doc, tier in context
                ],
            }
        },
    }


def build_longtrace(config: LongTraceBuildConfig) -> dict[str, Any]:
    """Write the splits, a `datasets` copy and stats.json under `config.out`; return the stats."""
    unknown = [s for s in [config.distractors, *config.eval_settings] if s not in SETTINGS]
    if unknown:
        raise ValueError(f"unknown distractor setting {unknown[0]!r}; expected one of {SETTINGS}")
    kg, documents = load_world(config)
    train, test = make_split(kg, config.n, config.n_test, config.hops, seed=config.seed)
    builder = ContextBuilder(kg, documents, config)
    rng = random.Random(config.seed)
    splits = {"train": train, "test": test}
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    records: dict[str, list[dict[str, Any]]] = {}
    for split, chosen in splits.items():
        records[split] = [
            to_record(q, builder.context(q, config.distractors, rng), config.distractors)
            for q in chosen
        ]
        write_jsonl(out / f"{split}.jsonl", records[split])
    for setting in config.eval_settings:
        rows = records["test"]  # the training setting's test split is test.jsonl itself
        if setting != config.distractors:
            rows = [to_record(q, builder.context(q, setting, rng), setting) for q in splits["test"]]
        write_jsonl(out / f"test.{setting}.jsonl", rows)
    _save_dataset(records, out / "dataset")
    search = write_trajectories(out / "trajectories.jsonl", splits, builder, config.search)
    stats = {**_stats(out, config), "search": search}
    (out / "stats.json").write_text(json.dumps(stats, indent=2))
    return stats


def write_trajectories(
    path: Path,
    splits: dict[str, list[MultiHopQuestion]],
    builder: ContextBuilder,
    search: SearchSettings,
) -> dict[str, Any]:
    """The agent's trajectory for every question (`Trajectory.to_dict` plus its `split`), one
    JSONL row each, and how often a hop's gold document was never found by search."""
    rows = [
        {"split": split, **builder.trajectory(q).to_dict()}
        for split, questions in splits.items()
        for q in questions
    ]
    write_jsonl(path, rows)
    per_hop: dict[str, list[bool]] = {}
    for row in rows:
        for i, missed in enumerate(Trajectory.from_dict(row).missed, start=1):
            per_hop.setdefault(str(i), []).append(missed)
    every = [missed for hops in per_hop.values() for missed in hops]
    # Found hops cited from the head's page (the rule agent: its tail page was never opened).
    head_pages = [
        step["cited"] == gold_doc_id(step["head"])
        for row in rows
        for step in row["steps"]
        if not step.get("missed")
    ]
    return {
        "agent": search.agent,
        "model": search.model,
        "hops": len(every),
        "gold_missed": sum(every) / len(every) if every else 0.0,
        "gold_missed_per_hop": {k: sum(v) / len(v) for k, v in per_hop.items()},
        "cited_head_page": sum(head_pages) / len(head_pages) if head_pages else 0.0,
    }


def reference_completion(record: dict[str, Any]) -> str:
    """The answer format a warm start teaches: the chain from the start entity, then the
    answer line.

    `Badatri Foundation -> Sami -> Pakrafamar\nAnswer: Pakrafamar` names every rubric entity
    and ends with the line the outcome reward reads, so a policy that imitates it is well
    formed from step 0. Each step follows the entity just written, which a small model can
    look up by its document title.
    """
    info = record["metadata"]["extra_reward_info"]
    titles = {d["id"]: d["title"] for d in info["documents"]}
    start = titles[info["gold_documents"][0]]
    chain = " -> ".join([start, *info["rubrics"], record["label"]])
    return f"{chain}\nAnswer: {record['label']}"


def sft_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TRL SFT rows (conversational prompt + completion) from LongTraceRL records."""
    return [
        {
            "prompt": record["input_messages"],
            "completion": [{"role": "assistant", "content": reference_completion(record)}],
        }
        for record in records
    ]


def tokenizer_corpus(config: LongTraceBuildConfig) -> list[str]:
    """Texts to train a tiny model's tokenizer on: the instruction, the documents and the
    training questions (the same ones `build_longtrace` writes; held-out ones stay out), so
    entity names and question phrasing get tokens of their own."""
    kg, documents = load_world(config)
    train, _ = make_split(kg, config.n, config.n_test, config.hops, seed=config.seed)
    return [
        INSTRUCTION,
        *(f"{d.title}\n{d.text}" for d in documents),
        *(f"Question: {q.question}" for q in train),
    ]


def _save_dataset(records: dict[str, list[dict[str, Any]]], path: Path) -> None:
    from datasets import Dataset, DatasetDict

    DatasetDict({split: Dataset.from_list(rows) for split, rows in records.items()}).save_to_disk(
        str(path)
    )


def _stats(out: Path, config: LongTraceBuildConfig) -> dict[str, Any]:
    """Counts per hop and tier, distractor confusability and the split's overlap, all read
    back from the files written under `out` (not from a fresh draw), so they describe the
    data a trainer and an evaluation actually see."""
    records = {split: read_jsonl(out / f"{split}.jsonl") for split in ("train", "test")}
    info = [r["metadata"]["extra_reward_info"] for rows in records.values() for r in rows]
    tiers = Counter(d["tier"] for i in info for d in i["documents"])
    files = {f"{split}.jsonl": rows for split, rows in records.items()}
    for setting in config.eval_settings:
        files[f"test.{setting}.jsonl"] = read_jsonl(out / f"test.{setting}.jsonl")
    by_file = {name: _distractor_mentions(rows) for name, rows in files.items()}
    # Per setting: the training setting over train + test (every context it was built
    # for), each other setting over its own test file.
    by_setting = _distractor_mentions([*records["train"], *records["test"]])
    for setting in config.eval_settings:
        if setting != config.distractors:
            by_setting.update(_distractor_mentions(files[f"test.{setting}.jsonl"]))
    return {
        "questions": {split: len(rows) for split, rows in records.items()},
        "distractor_setting": config.distractors,
        "context_tokens": config.context_tokens,
        "per_hop": dict(sorted(Counter(str(i["hops"]) for i in info).items())),
        "per_tier": dict(sorted(tiers.items())),
        "documents_per_context": sum(len(i["documents"]) for i in info) / max(1, len(info)),
        "distractor_mentions_gold_entity": dict(sorted(by_setting.items())),
        "distractor_mentions_gold_entity_by_file": by_file,
        "split_overlap": split_overlap(records["train"], records["test"]),
    }


def _prompt_documents(record: dict[str, Any]) -> list[Document]:
    """The documents as the prompt shows them, in the record's document order. Each is found
    by its `[i] title` header in turn, so a text that itself contains a `[n]` line (a real
    page's reference) does not split it."""
    prompt = record["input_messages"][0]["content"]
    body = prompt.split("Documents:\n\n", 1)[1].rsplit("\n\nQuestion: ", 1)[0]
    listed = record["metadata"]["extra_reward_info"]["documents"]
    starts, position = [], 0
    for index, doc in enumerate(listed, start=1):
        header = f"[{index}] {doc['title']}\n"
        position = body.find(header, position)
        if position < 0:
            raise ValueError(f"{record['id']}: no document {header.strip()!r} in the prompt")
        starts.append((position, position + len(header)))
    ends = [start for start, _ in starts[1:]] + [len(body) + 2]  # +2: no separator at the end
    return [
        Document(doc["id"], doc["id"].removeprefix("doc:"), doc["title"], body[text : end - 2])
        for doc, (_, text), end in zip(listed, starts, ends, strict=True)
    ]


def _distractor_mentions(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per distractor setting and tier: the fraction of distractor documents in `rows` that
    name an entity of their question's chain (start, rubric entities, answer)."""
    hits: dict[str, list[float]] = {}
    for row in rows:
        info = row["metadata"]["extra_reward_info"]
        titles = {d["id"]: d["title"] for d in info["documents"]}
        names = [titles[info["gold_documents"][0]], *info["rubrics"], row["label"]]
        for doc, listed in zip(_prompt_documents(row), info["documents"], strict=True):
            if listed["tier"] == "gold":
                continue
            hit = distractor_overlap([doc], names)
            hits.setdefault(info["distractor_setting"], []).append(hit)
            if listed["tier"] != info["distractor_setting"]:  # tiered: tier1 / tier2 too
                hits.setdefault(listed["tier"], []).append(hit)
    return {key: sum(values) / len(values) for key, values in sorted(hits.items()) if values}


def split_overlap(train: list[dict[str, Any]], test: list[dict[str, Any]]) -> dict[str, int]:
    """What held-out rows share with training rows, from the rows themselves: facts (linked
    entity pairs along a chain, `fact_key`), answers (by name, case-folded) and, as
    information only, entities anywhere on a chain."""

    def facts(rows: list[dict[str, Any]]) -> set[frozenset[str]]:
        chains = [r["metadata"]["extra_reward_info"]["gold_documents"] for r in rows]
        return {fact_key(a, b) for chain in chains for a, b in itertools.pairwise(chain)}

    def answers(rows: list[dict[str, Any]]) -> set[str]:
        return {r["label"].strip().casefold() for r in rows}

    def entities(rows: list[dict[str, Any]]) -> set[str]:
        return {d for r in rows for d in r["metadata"]["extra_reward_info"]["gold_documents"]}

    return {
        "facts_shared": len(facts(train) & facts(test)),
        "answers_shared": len(answers(train) & answers(test)),
        "entities_shared": len(entities(train) & entities(test)),
        "held_out_facts": len(facts(test)),
        "held_out_answers": len(answers(test)),
        "held_out_entities": len(entities(test)),
    }
