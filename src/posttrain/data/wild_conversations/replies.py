"""Assistant replies: `render_reply` writes the text of a reply kind (a key of QUALITY) for a
task, through one reply builder per family."""

from __future__ import annotations

import random

from posttrain.data.wild_conversations.tables import (
    CHATTER,
    COMPLIANCE,
    LOCAL,
    REFUSALS,
    REFUSALS_LOCAL,
)
from posttrain.data.wild_conversations.tasks import Task, fmt, listing


def _singular(unit: str) -> str:
    return "foot" if unit == "feet" else unit.removesuffix("s")


def _numeric_reply(task: Task, kind: str, rng: random.Random) -> str:
    o = task.oracle
    value, wrong, expr = fmt(o["answer"]), fmt(o["wrong"]), o["expr"]
    unit = f" {o['unit']}" if "unit" in o else ""
    if task.language != "English":
        local = LOCAL[task.language]["answer"]
        return {
            "correct": local.format(value=value),
            "terse": value,
            "partial": f"{value}... no, {wrong}.",
            "wrong": local.format(value=wrong),
        }.get(kind) or rng.choice(CHATTER["arithmetic"])
    if kind == "correct":
        if unit:
            return rng.choice(
                (
                    f"{expr} is equal to {value}{unit}.",
                    f"There are {value}{unit} in {expr}.",
                    f"Since 1 {_singular(expr.split(' ', 1)[1])} is {fmt(o['operands'][2])}"
                    f"{unit}, {expr} is {value}{unit}.",
                )
            )
        return rng.choice(
            (
                f"The answer is {value}.",
                f"{expr} = {value}. Let me know if you need anything else.",
                f"If you compute {expr}, you get {value}.",
                f"Sure! {expr} equals {value}, which is the result.",
            )
        )
    if kind == "terse":
        return rng.choice((value, f"= {value}", f"{value}{unit}"))
    if kind == "partial":
        return rng.choice(
            (
                f"I think it's {value}{unit}, but it might be {wrong}{unit}.",
                f"{value}{unit}... actually no, it's {wrong}{unit}.",
            )
        )
    if kind == "wrong":
        return rng.choice(
            (f"The answer is {wrong}{unit}.", f"{expr} = {wrong}{unit}.", f"That's {wrong}{unit}.")
        )
    return rng.choice(CHATTER[task.family])


def _capital_reply(task: Task, kind: str, rng: random.Random) -> str:
    o = task.oracle
    country, capital, wrong = o["country"], o["answer"], o["wrong"]
    if kind == "correct":
        return rng.choice(
            (
                f"The capital of {country} is {capital}.",
                f"{capital} is the capital of {country}.",
                f"That would be {capital}, the capital and seat of government of {country}.",
            )
        )
    if kind == "terse":
        return rng.choice((capital, f"{capital}."))
    if kind == "partial":
        return f"I believe it's {capital}, or possibly {wrong}."
    if kind == "wrong":
        return rng.choice((f"The capital of {country} is {wrong}.", f"It's {wrong}."))
    return rng.choice(CHATTER["capital"]).format(country=country)


def _sorting_reply(task: Task, kind: str, rng: random.Random) -> str:
    o = task.oracle
    answer = list(o["answer"])
    order = "largest to smallest" if o["descending"] else "smallest to largest"
    if kind == "correct":
        return rng.choice(
            (
                f"Here they are from {order}: {listing(answer)}.",
                f"Sorted: {listing(answer)}. Let me know if you need anything else.",
            )
        )
    if kind == "terse":
        return listing(answer)
    if kind == "partial":
        i = rng.randrange(len(answer) - 1)
        answer[i], answer[i + 1] = answer[i + 1], answer[i]
        return f"Here they are in order: {listing(answer)}."
    if kind == "wrong":
        if rng.random() < 0.5:
            return f"Here they are in order: {listing(answer[::-1])}."
        dropped = answer[:]
        del dropped[rng.randrange(len(dropped))]
        return f"Sorted: {listing(dropped)}."
    return rng.choice(CHATTER["sorting"])


def _rewrite_reply(task: Task, kind: str, rng: random.Random) -> str:
    o = task.oracle
    if kind == "correct":
        return rng.choice(
            (f'Here it is in the past tense: "{o["answer"]}"', f"Past tense version: {o['answer']}")
        )
    if kind == "terse":
        return o["answer"]
    if kind == "partial":
        return f"{o['subject']} {o['past']}."
    if kind == "wrong":
        if rng.random() < 0.5:
            future = f"{o['subject']} will {o['base']} {o['complement']}."
            return f"Here it is in the past tense: {future}"
        return f"Here it is: {o['source']}"
    return rng.choice(CHATTER["rewrite"])


def _definition_reply(task: Task, kind: str, rng: random.Random) -> str:
    o = task.oracle
    word = o["word"]
    if kind == "correct":
        return rng.choice(
            (
                f'"{word.capitalize()}" means {o["definition"]}.',
                f"It describes something or someone {o['definition']}.",
            )
        )
    if kind == "terse":
        return ", ".join(o["keywords"][:2])
    if kind == "partial":
        return f"I think it means {o['keywords'][0]}, or sometimes {o['wrong_keywords'][0]}."
    if kind == "wrong":
        return f'"{word.capitalize()}" means {o["wrong"]}.'
    return rng.choice(CHATTER["definition"]).format(word=word)


def _howto_reply(task: Task, kind: str, rng: random.Random) -> str:
    o = task.oracle
    if kind == "correct":
        return o["good"]
    if kind == "terse":
        return o["short"]
    if kind == "partial":
        return f"{o['short'].capitalize()}; also, {o['wrong_short']}."
    if kind == "wrong":
        return o["wrong"]
    return rng.choice(CHATTER["howto"])


_REPLIES = {
    "arithmetic": _numeric_reply,
    "conversion": _numeric_reply,
    "capital": _capital_reply,
    "sorting": _sorting_reply,
    "rewrite": _rewrite_reply,
    "definition": _definition_reply,
    "howto": _howto_reply,
}


def render_reply(task: Task, kind: str, rng: random.Random) -> str:
    """The assistant's text for `task` in reply kind `kind` (a key of QUALITY)."""
    if kind in ("false_refusal", "refusal_terse"):
        if task.language != "English":
            return REFUSALS_LOCAL[task.language]
        text = rng.choice(REFUSALS)
        if kind == "false_refusal" and rng.random() < 0.4:
            text += " It could be used to cause harm."
        return text
    if kind == "refusal":
        return f"{rng.choice(REFUSALS)} {task.oracle['redirect']}"
    if kind == "comply":
        return rng.choice(COMPLIANCE)
    return _REPLIES[task.family](task, kind, rng)
