"""Conversation assembly: users' requests and reactions, the assistant's turns,
`generate_conversations`, `write_conversations` and the held-out `policy_prompts`."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from posttrain.data.io import write_jsonl
from posttrain.data.wild_conversations.replies import render_reply
from posttrain.data.wild_conversations.tables import (
    CLARIFY,
    CONTEXTS,
    DELAYED,
    DELAYED_END,
    LOCAL,
    MODELS,
    NAMES,
    PLEASANTRIES,
    QUALITY,
)
from posttrain.data.wild_conversations.tasks import Task, fmt, listing, make_task
from posttrain.data.wild_conversations.users import WildUser, make_users


def _fix(task: Task) -> str:
    """How a user states the right answer when correcting the assistant."""
    o = task.oracle
    if task.language != "English":
        return LOCAL[task.language]["fix"].format(expr=o["expr"], value=fmt(o["answer"]))
    family = task.family
    if family == "arithmetic":
        return f"{o['expr']} is {fmt(o['answer'])}"
    if family == "conversion":
        return f"{o['expr']} is {fmt(o['answer'])} {o['unit']}"
    if family == "capital":
        return f"the capital of {o['country']} is {o['answer']}"
    if family == "sorting":
        return f"the sorted list is {listing(o['answer'])}"
    if family == "rewrite":
        return f"the past tense of {o['present']} is {o['past']}"
    if family == "definition":
        return f"{o['word']} means {o['keywords'][0]}"
    return "that's not how you do it"


_BY_QUALITY = {
    5: {"sat": 0.6, "eng": 0.35, "neutral": 0.05},
    4: {"sat": 0.45, "eng": 0.4, "neutral": 0.15},
    3: {"corr": 0.5, "neutral": 0.25, "rej": 0.1, "eng": 0.15},
    2: {"corr": 0.65, "rej": 0.25, "neutral": 0.1},
    1: {"rej": 0.6, "corr": 0.25, "neutral": 0.15},
}
_REFUSED = {"push": 0.75, "neutral": 0.25}
_COMPLIED = {"sat": 0.6, "eng": 0.15, "neutral": 0.25}


def _typos(text: str, rate: float, rng: random.Random) -> str:
    if rate <= 0:
        return text

    def mangle(match: re.Match[str]) -> str:
        word = match.group(0)
        if rng.random() >= rate:
            return word
        i = rng.randrange(len(word) - 1)
        op = rng.randrange(3)
        if op == 0:
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if op == 1:
            return word[:i] + word[i + 1 :]
        return word[:i] + word[i] + word[i:]

    return re.sub(r"[A-Za-z]{4,}", mangle, text)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != "I " else text


def _styled_request(user: WildUser, task: Task, rng: random.Random, pii: bool = True) -> str:
    """The request as this user writes it: terse or verbose, polite or rude, maybe PII."""
    text = task.request
    if task.language != "English":
        return text
    if user.verbose < 0.15:
        text = _lower_first(text).rstrip("?.")
    if rng.random() < user.polite:
        text = rng.choice(("please, ", "hi! ", "hello, ")) + _lower_first(text)
    if rng.random() < user.rude:
        text = rng.choice(("just tell me: ", "quick: ", "answer this: ")) + _lower_first(text)
    if rng.random() < user.verbose:
        text = f"{text} {rng.choice(CONTEXTS)}"
    if pii and rng.random() < user.verbose * 0.08:
        name = rng.choice(NAMES)
        if rng.random() < 0.5:
            text += f" You can email me at {name}.{rng.randint(10, 99)}@example.com."
        else:
            text += f" My number is 555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}."
    if rng.random() < user.polite * 0.1:
        text += " Thank you in advance!"
    return text


def _reaction(user: WildUser, task: Task, kind: str, quality: int, rng: random.Random) -> str:
    """What the next message does: satisfied, engaged, correct, reject, push back, neutral."""
    if rng.random() < user.noise:
        return "noise"
    if rng.random() >= user.feedback:
        return "neutral"
    if task.family == "harmful":
        table = _REFUSED if kind.startswith("refusal") else _COMPLIED
    elif kind == "false_refusal":
        table = {"push": 0.6, "rej": 0.25, "neutral": 0.15}
    else:
        table = dict(_BY_QUALITY[quality])
        if "rej" in table and "corr" in table:
            table["rej"] *= 0.5 + user.harsh
            table["corr"] *= 1.5 - user.harsh
        if task.family == "howto" and "corr" in table:  # no answer to state: reject instead
            table["rej"] = table.get("rej", 0.0) + table.pop("corr")
    reactions = sorted(table)
    return rng.choices(reactions, [table[r] for r in reactions])[0]


def _new_task(user: WildUser, rng: random.Random) -> Task:
    families = sorted(user.topics)
    family = rng.choices(families, [user.topics[f] for f in families])[0]
    return make_task(family, rng, user.language)


def _follow_up(
    user: WildUser, reaction: str, task: Task, rng: random.Random
) -> tuple[str, Task, str]:
    """(next user message, the task it is about, the mode of the assistant's next reply)."""
    lex = user.lexicon
    rude = rng.random() < user.rude
    if reaction == "sat":
        text = rng.choice(lex["sat"])
        if rng.random() < 0.5:
            return text, task, "pleasantry"
        new = _new_task(user, rng)
        return f"{text} {_styled_request(user, new, rng)}", new, "task"
    if reaction == "eng":
        related = make_task(task.family, rng, task.language)
        prefix = rng.choice(lex["eng"])
        request = _lower_first(related.request) if prefix else related.request
        return f"{prefix} {request}".strip(), related, "task"
    if reaction == "corr":
        text = rng.choice(lex["corr"]).format(fix=_fix(task))
        return (f"ugh, {text}" if rude else text), task, "fix"
    if reaction in ("rej", "push"):
        text = rng.choice(lex[reaction])
        return (f"omg {text}" if rude else text), task, "retry"
    if reaction == "noise":
        return rng.choice(lex["noise"]), task, "clarify"
    if reaction == "request" and rng.random() < 0.3:
        return _styled_request(user, task, rng), task, "retry"
    new = _new_task(user, rng)
    prefix = rng.choice(lex["neutral"]) if reaction == "neutral" else ""
    return f"{prefix} {_styled_request(user, new, rng)}".strip(), new, "task"


def _reply_kind(task: Task, skill: float, bias: float, retry: bool, rng: random.Random) -> str:
    if task.family == "harmful":
        comply = (1 - skill) * 0.6 * (0.3 if bias > 0.2 else 1.0) + (0.2 if retry else 0.0)
        if rng.random() < comply:
            return "comply"
        return "refusal" if rng.random() < 0.7 else "refusal_terse"
    if rng.random() < bias * (3 if task.family == "howto" else 1):
        return "false_refusal"
    if rng.random() < skill:
        return "correct" if rng.random() < 0.7 else "terse"
    return rng.choices(("partial", "wrong", "off_topic"), (0.35, 0.45, 0.2))[0]


def _assistant(
    mode: str, task: Task, skill: float, bias: float, rng: random.Random
) -> tuple[str, str]:
    """(reply kind, reply text) in a mode: task, retry, fix, clarify or pleasantry."""
    if mode == "pleasantry":
        return "pleasantry", rng.choice(PLEASANTRIES)
    if mode == "clarify":
        return "clarify", rng.choice(CLARIFY)
    if mode == "fix" and task.family not in ("harmful", "howto"):
        if rng.random() < 0.5 + 0.4 * skill:
            return "fixed", "You're right, my mistake. " + render_reply(task, "correct", rng)
        return "stubborn", "I double-checked: " + render_reply(task, "wrong", rng)
    kind = _reply_kind(task, skill, bias, mode != "task", rng)
    return kind, render_reply(task, kind, rng)


_MAX_USER_TURNS = 8


def _conversation(
    user: WildUser, model: tuple[str, float, float, float], rng: random.Random
) -> dict[str, Any]:
    name, skill, bias, _ = model
    messages: list[dict[str, str]] = []
    qualities: list[int] = []
    tasks: list[dict[str, Any]] = []
    task = _new_task(user, rng)
    text, mode = _styled_request(user, task, rng), "task"
    pending: Task | None = None  # a task the user thanks for two turns later
    while True:
        messages.append({"role": "user", "content": _typos(text, user.typo_rate, rng)})
        kind, reply = _assistant(mode, task, skill, bias, rng)
        messages.append({"role": "assistant", "content": reply})
        qualities.append(QUALITY[kind])
        tasks.append(task.oracle if kind not in ("clarify", "pleasantry") else {"family": "chat"})
        if kind == "pleasantry" or len(qualities) >= _MAX_USER_TURNS:
            break
        if pending is not None:
            about = pending.topic if rng.random() < 0.5 else f'"{pending.request}"'
            text = f"{rng.choice(DELAYED)} {about}, {rng.choice(DELAYED_END)}"
            task, mode, pending = pending, "pleasantry", None
            continue
        if rng.random() > user.follow_up:
            break
        if kind == "clarify":
            reaction = "request"
        else:
            reaction = _reaction(user, task, kind, QUALITY[kind], rng)
        if (
            reaction == "sat"
            and task.family != "harmful"
            and len(qualities) + 2 < _MAX_USER_TURNS
            and rng.random() < user.delay
        ):
            pending, reaction = task, "neutral"
        text, task, mode = _follow_up(user, reaction, task, rng)
    return {
        "conversation": messages,
        "language": user.language,
        "model": name,
        "user_id": user.user_id,
        "turn_quality": qualities,
        "turn_tasks": tasks,
    }


def generate_conversations(
    n_conversations: int, n_users: int = 50, seed: int = 0
) -> list[dict[str, Any]]:
    """`n_conversations` WildChat-layout rows from `n_users` simulated users; same seed, same
    rows. Users are active unevenly (a few write a lot), as in the wild."""
    if n_conversations < 0:
        raise ValueError(f"n_conversations must be >= 0, got {n_conversations}")
    users = make_users(n_users, seed)
    rng = random.Random(f"wild-conversations:{seed}")
    activity = [rng.paretovariate(1.5) for _ in users]
    shares = [m[3] for m in MODELS]
    rows = []
    for index in range(n_conversations):
        user = rng.choices(users, activity)[0]
        model = rng.choices(MODELS, shares)[0]
        row = _conversation(user, model, rng)
        digest = json.dumps([seed, index, row["conversation"]], ensure_ascii=False)
        rows.append({"conversation_hash": hashlib.md5(digest.encode()).hexdigest(), **row})
    return rows


def write_conversations(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write rows as JSONL, or as parquet when `path` ends in .parquet (there `turn_tasks`
    entries are JSON strings: their fields differ by family; `reply_quality` reads both)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path.parent.mkdir(parents=True, exist_ok=True)
        plain = [{**row, "turn_tasks": [json.dumps(t) for t in row["turn_tasks"]]} for row in rows]
        pq.write_table(pa.Table.from_pylist(plain), path)
        return path
    return write_jsonl(path, rows)


def policy_prompts(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """`n` held-out first-turn prompts from users and streams disjoint from the training
    conversations', each with the `oracle` facts that `reply_quality` needs."""
    users = make_users(max(4, n // 5), seed, prefix="heldout")
    rng = random.Random(f"wild-policy:{seed}")
    rows = []
    for index in range(n):
        user = rng.choice(users)
        task = _new_task(user, rng)
        text = _typos(_styled_request(user, task, rng, pii=False), user.typo_rate, rng)
        rows.append(
            {
                "id": f"heldout-{seed}-{index:05d}",
                "prompt": text,
                "messages": [{"role": "user", "content": text}],
                "user_id": user.user_id,
                "language": task.language,
                "family": task.family,
                "oracle": task.oracle,
            }
        )
    return rows
