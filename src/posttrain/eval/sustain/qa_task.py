"""Multi-hop QA over the LongTraceRL synthetic world, answered from facts given in the prompt.

Questions are LongTraceRL walks (`posttrain.data.walks.make_questions`, unique answers, 2 to 4
hops) on `posttrain.data.kg.synthetic_world`. The prompt names the start entity and the
relation chain in the graph's own relation phrases, and lists the needed facts mixed with
distractor facts about the same entities, so the answer follows from the prompt alone.
"""

from __future__ import annotations

import random
import re
from typing import Any

from posttrain.data.kg import RELATION_TEXT, KnowledgeGraph, synthetic_world
from posttrain.data.walks import make_questions

QA_INSTRUCTION = (
    "Answer the question using only the facts below. Give the answer on a first line "
    "'Answer: <entity>', then the chain of facts you used."
)
FACTS_HEADER = "Facts:"


def _fact(kg: KnowledgeGraph, head: str, relation: str, tail: str) -> str:
    return f"- {kg.entity(head).name} {RELATION_TEXT[relation]} {kg.entity(tail).name}."


def _facts(kg: KnowledgeGraph, chain: list[tuple[str, str, str]], rng: random.Random) -> list[str]:
    """The chain's facts, other facts about the chain's entities, and some random ones."""
    wanted = set(chain)
    nearby = [
        (e, r, t)
        for e, _, _ in chain
        for r, t in kg.out_relations(e)
        if r in RELATION_TEXT and (e, r, t) not in wanted
    ]
    others = [t for t in kg.triples() if t[1] in RELATION_TEXT and t not in wanted]
    picked = list(wanted) + rng.sample(nearby, min(4, len(nearby))) + rng.sample(others, 4)
    lines = sorted({_fact(kg, *t) for t in picked})
    rng.shuffle(lines)
    return lines


def make_items(n: int, seed: int) -> list[dict[str, Any]]:
    """`n` questions of 2 to 4 hops with their fact lists, the same for the same seed."""
    kg = synthetic_world(seed)
    questions = make_questions(kg, n, [2, 3, 4], seed=seed)
    rng = random.Random(f"sustain-qa-{seed}")
    items = []
    for index, q in enumerate(questions):
        chain = [(h.head, h.relation, h.tail) for h in q.hops]
        start = kg.entity(chain[0][0]).name
        relations = ", then ".join(f"'{RELATION_TEXT[r]}'" for _, r, _ in chain)
        question = (
            f"Starting from {start}, which entity do you reach by following these relations "
            f"in order: {relations}?"
        )
        facts = "\n".join(_facts(kg, chain, rng))
        items.append(
            {
                "key": f"qa/{index:04d}",
                "domain": "qa",
                "question": question,
                "longtrace_question": q.question,
                "prompt": f"{QA_INSTRUCTION}\n\n{FACTS_HEADER}\n{facts}\n\nQuestion: {question}",
                "gold": q.answer,
                "aliases": list(q.aliases),
                "difficulty": len(chain),
            }
        )
    return items


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def answer_line(answer: str) -> str:
    """The text after the first 'Answer:' label, else the first non-empty line."""
    match = re.search(r"(?im)^\s*\**answer\**\s*:\s*(.+)$", answer)
    if match:
        return match.group(1)
    lines = [line for line in answer.splitlines() if line.strip()]
    return lines[0] if lines else ""


def grade(item: dict[str, Any], answer: str) -> dict[str, Any]:
    """Correct when the answer line contains the gold entity name (or an alias) as words."""
    line = f" {_norm(answer_line(answer))} "
    names = [item["gold"], *item.get("aliases", [])]
    correct = any(_norm(name) and f" {_norm(name)} " in line for name in names)
    return {"correct": correct, "extracted": answer_line(answer).strip()[:200]}
