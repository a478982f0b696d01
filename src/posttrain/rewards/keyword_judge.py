"""The offline rubric judge `scripted:rubric-keywords`: a keyword rule, NOT an LLM.

It reads a prompt built by `posttrain.rewards.judge.judge_prompt` and answers every item in
the JSON an LLM judge is asked for, deciding each by `keyword_present`: enough of the
criterion's content words (Porter stems, without stopwords and the generic words rubrics are
written with, tabled in `posttrain/data/tables/keyword_judge.yaml`) occur in the response. It
lets CHERRL's pipeline run end to end offline through the same `RubricJudge` code an LLM
judge goes through; outputs name it by `JUDGE_LABEL`.

`default_judge()` is the module-wide `RubricJudge` over it, and `rubric_main_reward`
(registered as `rubric_main`) scores completions with it.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from posttrain.data.io import DataError
from posttrain.data.tables import table, table_path
from posttrain.models.chat.base import Conversation
from posttrain.models.chat.scripted import (
    ScriptedChat,
    last_user_message,
    make_script,
    register_script,
    script_names,
)
from posttrain.rewards.builtin import Completion
from posttrain.rewards.judge import RubricJudge, parse_judge_prompt, rubrics_column
from posttrain.rewards.registry import register_reward

__all__ = [
    "JUDGE_LABEL",
    "JUDGE_SCRIPT",
    "content_stems",
    "default_judge",
    "keyword_present",
    "rubric_keywords_script",
    "rubric_main_reward",
]

JUDGE_SCRIPT = "rubric-keywords"
JUDGE_LABEL = "scripted keyword judge (not an LLM): scripted:rubric-keywords"
"""What outputs should print about the offline default judge."""

WORDS = "keyword_judge"
"""The stopword and generic-word tables: `posttrain/data/tables/keyword_judge.yaml`."""


@functools.cache
def _words(key: str) -> frozenset[str]:
    """Table `key` of `WORDS`, whitespace-separated words; errors name the file and key."""
    words = table(WORDS, key, str).split()
    bad = [w for w in words if not _TOKEN.fullmatch(w)]
    if not words or bad:
        # the judge's tokens are lowercase letters and digits: anything else would never match
        detail = f"not lowercase letters/digits: {bad}" if bad else "no words"
        raise DataError(detail, table_path(WORDS), key=key)
    return frozenset(words)


_NEGATED = re.compile(
    r"^\s*(?:fails?\s+to|does\s+not|doesn['’]?t|did\s+not|omits|neglects\s+to|never)\b",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"[a-z0-9]+")
"""A word as the judge reads it (from lowercased text)."""


@functools.cache
def _stemmer() -> Any:
    from nltk.stem.porter import PorterStemmer  # nltk is slow to import: only when needed

    return PorterStemmer()


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _stemmer().stem(word)


@functools.cache
def _skipped_words() -> frozenset[str]:
    return _words("stopwords") | _words("generic")


@functools.cache
def _generic_stems() -> frozenset[str]:
    return frozenset(_stem(w) for w in _words("generic"))


def content_stems(text: str) -> set[str]:
    """Porter stems of the content words of a criterion: lowercase word tokens without
    stopwords, generic rubric verbs (recommends, mentions, states, ...) and one-letter tokens."""
    skip = _skipped_words()
    stems = set()
    for token in _TOKEN.findall(text.lower()):
        if token in skip or (len(token) < 2 and not token.isdigit()):
            continue
        stem = _stem(token)
        if stem not in _generic_stems():
            stems.add(stem)
    return stems


def _all_stems(text: str) -> set[str]:
    return {_stem(token) for token in _TOKEN.findall(text.lower())}


def keyword_present(criterion: str, response: str, threshold: float = 0.6) -> bool:
    """The keyword rule of `scripted:rubric-keywords`: PRESENT iff at least `threshold` of the
    criterion's content stems (`content_stems`; there must be at least one) occur among the
    response's stems. A criterion phrased as an omission ("Fails to mention X", "Does not ...")
    is PRESENT iff that test fails for the rest of the criterion, since omitting X is what
    such an item describes. A crude stand-in for an LLM judge, and meant to look like one."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    negated = _NEGATED.match(criterion)
    body = criterion[negated.end() :] if negated else criterion
    wanted = content_stems(body)
    if not wanted:
        return False
    hits = len(wanted & _all_stems(response))
    found = hits / len(wanted) >= threshold
    return not found if negated else found


def _keyword_reply(conversation: Conversation, threshold: float) -> str:
    try:
        response, items = parse_judge_prompt(last_user_message(conversation))
    except ValueError:
        return "I can only grade prompts built by posttrain.rewards.judge.judge_prompt."
    verdicts = {
        str(number): "PRESENT" if keyword_present(criterion, response, threshold) else "NOT_PRESENT"
        for number, _, criterion in items
    }
    return json.dumps(verdicts)


def rubric_keywords_script(threshold: float = 0.6) -> ScriptedChat:
    """`scripted:rubric-keywords`: reads a `judge_prompt` and answers each item by
    `keyword_present`, in the JSON an LLM judge is asked for."""
    return ScriptedChat(
        JUDGE_SCRIPT, [], default=functools.partial(_keyword_reply, threshold=threshold)
    )


if JUDGE_SCRIPT not in script_names():
    register_script(JUDGE_SCRIPT, rubric_keywords_script)


@functools.cache
def default_judge() -> RubricJudge:
    """The module-wide offline judge behind `rubric_main` (see `JUDGE_LABEL`)."""
    return RubricJudge(make_script(JUDGE_SCRIPT))


# --- TRL reward ---------------------------------------------------------------------------------


@register_reward("rubric_main")
def rubric_main_reward(
    prompts: list[Any],
    completions: list[Completion],
    completion_ids: list[Any] | None = None,
    **columns: Any,
) -> list[float | None]:
    """CHERRL's true score: `main_score` of each completion against its row's rubric, judged by
    `default_judge()` (the offline keyword judge); None for a row without a rubric."""
    rubrics = rubrics_column(columns, len(completions), "rubric_main")
    prompt_list = list(prompts) if prompts is not None else [""] * len(completions)
    tasks = [
        (prompt_list[i], completions[i], rubrics[i])
        for i in range(len(completions))
        if rubrics[i] is not None
    ]
    scores = iter(default_judge().scores(tasks))
    return [None if rubric is None else next(scores) for rubric in rubrics]
