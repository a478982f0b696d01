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
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from posttrain.data.distractors import (
    assemble_context,
    distractor_overlap,
    oneshot_distractors,
    random_distractors,
    tiered_distractors,
)
from posttrain.data.io import write_jsonl
from posttrain.data.kg import Document, KnowledgeGraph, load_graph, synthetic_world, write_documents
from posttrain.data.search import BM25Index, RuleBasedSearchAgent
from posttrain.data.walks import MultiHopQuestion, make_questions

Setting = Literal["tiered", "random", "oneshot"]
SETTINGS: tuple[str, ...] = ("tiered", "random", "oneshot")

INSTRUCTION = (
    "Answer the question using the documents. The question is a chain: follow it one step "
    "at a time, naming the entity each step leads to, and end with a last line "
    "'Answer: <name>'."
)


@dataclass
class WorldSettings:
    countries: int = 6
    cities_per_country: int = 4
    people: int = 60
    organisations: int = 15
    works: int = 25
    doc_min_words: int = 60
    """Documents are padded with fact-free sentences up to this many words ..."""
    doc_max_words: int = 150
    """... and take incoming facts up to this many (outgoing facts are always stated)."""


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
    if (config.triples is None) != (config.entities is None):
        raise ValueError("give both `triples` and `entities` for a user graph, or neither")
    if config.triples is not None and config.entities is not None:
        kg = load_graph(config.triples, config.entities)
    else:
        w = config.world
        kg = synthetic_world(
            config.seed,
            countries=w.countries,
            cities_per_country=w.cities_per_country,
            people=w.people,
            organisations=w.organisations,
            works=w.works,
        )
    w = config.world
    return kg, write_documents(
        kg, config.seed, min_words=w.doc_min_words, max_words=w.doc_max_words
    )


def format_prompt(question: str, documents: list[Document]) -> str:
    blocks = [f"[{i}] {doc.title}\n{doc.text}" for i, doc in enumerate(documents, start=1)]
    return f"{INSTRUCTION}\n\nDocuments:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"


class ContextBuilder:
    """Distractors for one question under one setting, packed into the token budget."""

    def __init__(self, kg: KnowledgeGraph, documents: list[Document], config: LongTraceBuildConfig):
        self.kg = kg
        self.docs = {doc.id: doc for doc in documents}
        self.index = BM25Index(documents)
        self.agent = RuleBasedSearchAgent(
            self.index, kg, top_r=config.top_r, open_k=config.open_k, seed=config.seed
        )
        self.budget = config.context_tokens
        self.count = token_counter(config.tokenizer)
        self._trajectories: dict[str, Any] = {}

    def trajectory(self, question: MultiHopQuestion) -> Any:
        """The search agent's trajectory for a question (run once, reused for the stats)."""
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
    questions = make_questions(kg, config.n + config.n_test, config.hops, seed=config.seed)
    builder = ContextBuilder(kg, documents, config)
    rng = random.Random(config.seed)
    splits = {"train": questions[: config.n], "test": questions[config.n :]}
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
    stats = _stats(records, questions, builder, kg, config)
    (out / "stats.json").write_text(json.dumps(stats, indent=2))
    return stats


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
    questions = make_questions(kg, config.n + config.n_test, config.hops, seed=config.seed)
    return [
        INSTRUCTION,
        *(f"{d.title}\n{d.text}" for d in documents),
        *(f"Question: {q.question}" for q in questions[: config.n]),
    ]


def _save_dataset(records: dict[str, list[dict[str, Any]]], path: Path) -> None:
    from datasets import Dataset, DatasetDict

    DatasetDict({split: Dataset.from_list(rows) for split, rows in records.items()}).save_to_disk(
        str(path)
    )


def _stats(
    records: dict[str, list[dict[str, Any]]],
    questions: list[MultiHopQuestion],
    builder: ContextBuilder,
    kg: KnowledgeGraph,
    config: LongTraceBuildConfig,
) -> dict[str, Any]:
    """Counts per hop and tier, and how often distractors mention a gold entity, per setting.

    The overlap is measured for every setting on the same questions (not only the one
    written), so the confusability of tiered distractors can be compared with the baselines.
    """
    info = [r["metadata"]["extra_reward_info"] for rows in records.values() for r in rows]
    tiers = Counter(d["tier"] for i in info for d in i["documents"])
    overlap: dict[str, list[float]] = {}
    rng = random.Random(config.seed + 1)
    for question in questions:
        names = [kg.entity(e).name for e in question.gold_entities]
        for setting in SETTINGS:
            for doc, tier in builder.context(question, setting, rng):
                if tier != "gold":
                    overlap.setdefault(setting, []).append(distractor_overlap([doc], names))
                    if setting == "tiered":
                        overlap.setdefault(tier, []).append(distractor_overlap([doc], names))
    return {
        "questions": {split: len(rows) for split, rows in records.items()},
        "distractor_setting": config.distractors,
        "context_tokens": config.context_tokens,
        "per_hop": dict(sorted(Counter(str(i["hops"]) for i in info).items())),
        "per_tier": dict(sorted(tiers.items())),
        "documents_per_context": sum(len(i["documents"]) for i in info) / max(1, len(info)),
        "distractor_mentions_gold_entity": {
            key: sum(values) / len(values) for key, values in sorted(overlap.items()) if values
        },
    }
