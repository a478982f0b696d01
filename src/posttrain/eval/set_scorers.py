"""Scorers of candidate sets: given a prompt and its candidates, one score per candidate.

A reward-model benchmark and best-of-n selection both ask the same question of a scorer —
which of these candidates is best — so both take a `SetScorer`. A pointwise scorer (a
reward model in-process or over HTTP, anything with `score(prompts, responses)`) scores
every candidate on its own, in one batch across all sets; an LLM judge can rate each
candidate 1-10 (pointwise) or choose the best of the whole list (listwise). `load_scorer`
turns a SPEC string (`posttrain.specs`' grammar, docs/specs.md) into one of them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Protocol

from posttrain.models.chat.base import ChatModel, GenerationParams
from posttrain.specs import SpecKind, parse_spec, resolve_import_path


class SetScorer(Protocol):
    """Scores every candidate of every set; higher is better, ties are allowed."""

    name: str
    independent: bool
    """True when a candidate's score does not depend on the other candidates in its set."""

    def score_sets(self, prompts: list[str], candidates: list[list[str]]) -> list[list[float]]: ...


class PointwiseScorer(Protocol):
    """Anything with a batched `score(prompts, responses)`: `RewardModel`, `HTTPRewardModel`."""

    def score(self, prompts: list[str], responses: list[str]) -> list[float]: ...


class Pointwise:
    """A pointwise scorer applied to each candidate, every set in one flat batch."""

    independent = True

    def __init__(self, scorer: PointwiseScorer, name: str) -> None:
        self.scorer = scorer
        self.name = name

    def score_sets(self, prompts: list[str], candidates: list[list[str]]) -> list[list[float]]:
        flat_prompts = [p for p, cands in zip(prompts, candidates, strict=True) for _ in cands]
        flat = self.scorer.score(flat_prompts, [c for cands in candidates for c in cands])
        out, start = [], 0
        for cands in candidates:
            out.append([float(s) for s in flat[start : start + len(cands)]])
            start += len(cands)
        return out


class LengthScorer:
    """The "longer wins" heuristic: a candidate's score is its word count."""

    independent = True

    name = "length"

    def score_sets(self, prompts: list[str], candidates: list[list[str]]) -> list[list[float]]:
        return [[float(len(c.split())) for c in cands] for cands in candidates]


_WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*")


class VocabularyScorer:
    """The "richer vocabulary wins" heuristic: a candidate's score is its distinct words."""

    independent = True

    name = "vocabulary"

    def score_sets(self, prompts: list[str], candidates: list[list[str]]) -> list[list[float]]:
        return [[float(len(set(_WORD.findall(c.lower())))) for c in cands] for cands in candidates]


class RandomScorer:
    """Independent uniform scores, seeded: the chance baseline, measured rather than assumed."""

    independent = True

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.name = f"random:{seed}"

    def score_sets(self, prompts: list[str], candidates: list[list[str]]) -> list[list[float]]:
        return [[self.rng.random() for _ in cands] for cands in candidates]


POINTWISE_PROMPT = """Rate the response to the writing prompt below for overall story quality \
(coherence, creativity, characterization, fluency and relevance to the prompt).

Prompt: {prompt}

Response:
{response}

Reply with one line "Score: N", where N is an integer from 1 (poor) to 10 (excellent)."""

LISTWISE_PROMPT = """Here is a writing prompt and {k} candidate stories. Choose the best one for \
overall story quality (coherence, creativity, characterization, fluency and relevance).

Prompt: {prompt}

{listing}

Reply with one line "Best: N", where N is the number of the best story (1 to {k})."""

_SCORE = re.compile(r"score\s*[:=]?\s*\**\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_BEST = re.compile(r"best\s*(?:story)?\s*[:=]?\s*\**\s*#?(\d+)", re.IGNORECASE)
_LONE_NUMBER = re.compile(r"^\W*(\d+(?:\.\d+)?)\W*$")


def parse_rating(reply: str, low: float = 1, high: float = 10) -> float | None:
    """The last "Score: N" in the reply (else a reply that is just a number), within range."""
    reply = reply.rsplit("</think>", 1)[-1]  # a thinking judge's drafts say anything
    found = _SCORE.findall(reply) or _LONE_NUMBER.findall(reply.strip())
    if not found:
        return None
    value = float(found[-1])
    return value if low <= value <= high else None


def parse_choice(reply: str, k: int) -> int | None:
    """The last "Best: N" (1-based) as a 0-based index, else a reply that is just a number."""
    reply = reply.rsplit("</think>", 1)[-1]
    found = _BEST.findall(reply) or _LONE_NUMBER.findall(reply.strip())
    if not found or not found[-1].isdigit():
        return None
    index = int(found[-1]) - 1
    return index if 0 <= index < k else None


class JudgeScorer:
    """An LLM judge through any `ChatModel`, pointwise (1-10 ratings) or listwise (choose one).

    Replies that cannot be parsed are asked again up to `retries` times (sampling at
    `retry_temperature`, since greedy would repeat itself); after that a pointwise rating
    is 0, below the scale, and a listwise choice leaves every candidate at 0, a full tie.
    Both count in `unparsed`. The listwise judge sees the candidates in a seeded shuffled
    order, so that the position of the chosen story tells it nothing.
    """

    def __init__(
        self,
        model: ChatModel,
        mode: str = "pointwise",
        retries: int = 2,
        max_tokens: int = 256,
        retry_temperature: float = 0.7,
        seed: int = 0,
    ) -> None:
        if mode not in ("pointwise", "listwise"):
            raise ValueError(f"mode must be 'pointwise' or 'listwise', got {mode!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.model = model
        self.mode = mode
        self.retries = retries
        self.params = GenerationParams(temperature=0.0, max_tokens=max_tokens)
        self.retry_params = GenerationParams(
            temperature=retry_temperature, max_tokens=max_tokens, seed=seed
        )
        self.seed = seed
        self.name = f"judge-{mode}:{model.name}"
        self.independent = mode == "pointwise"
        self.requests = 0
        self.unparsed = 0

    def score_sets(self, prompts: list[str], candidates: list[list[str]]) -> list[list[float]]:
        if self.mode == "pointwise":
            return self._pointwise(prompts, candidates)
        return self._listwise(prompts, candidates)

    def _ask(self, questions: list[str], parse) -> list:
        """Send every question, re-ask those whose reply did not parse; None where none did."""
        answers: list = [None] * len(questions)
        pending = list(range(len(questions)))
        for attempt in range(1 + self.retries):
            if not pending:
                break
            params = self.params if attempt == 0 else self.retry_params
            conversations = [[{"role": "user", "content": questions[i]}] for i in pending]
            self.requests += len(conversations)
            replies = self.model.chat(conversations, params)
            for i, reply in zip(pending, replies, strict=True):
                answers[i] = parse(i, reply.text)
            pending = [i for i in pending if answers[i] is None]
        self.unparsed += len(pending)
        return answers

    def _pointwise(self, prompts: list[str], candidates: list[list[str]]) -> list[list[float]]:
        pairs = [(p, c) for p, cands in zip(prompts, candidates, strict=True) for c in cands]
        questions = [POINTWISE_PROMPT.format(prompt=p, response=c) for p, c in pairs]
        ratings = self._ask(questions, lambda _, text: parse_rating(text))
        out, start = [], 0
        for cands in candidates:
            out.append([r if r is not None else 0.0 for r in ratings[start : start + len(cands)]])
            start += len(cands)
        return out

    def _listwise(self, prompts: list[str], candidates: list[list[str]]) -> list[list[float]]:
        orders, questions = [], []
        for prompt, cands in zip(prompts, candidates, strict=True):
            order = list(range(len(cands)))
            random.Random(f"{self.seed}:{prompt}").shuffle(order)
            listing = "\n\n".join(
                f"Story {shown + 1}:\n{cands[i]}" for shown, i in enumerate(order)
            )
            orders.append(order)
            questions.append(LISTWISE_PROMPT.format(prompt=prompt, k=len(cands), listing=listing))
        choices = self._ask(questions, lambda i, text: parse_choice(text, len(orders[i])))
        out = []
        for order, choice in zip(orders, choices, strict=True):
            scores = [0.0] * len(order)
            if choice is not None:
                scores[order[choice]] = 1.0
            out.append(scores)
        return out


SPEC_HELP = (
    "a reward-model directory, Bradley–Terry or ordinal "
    "(DIR?torch_dtype=bfloat16&device=cuda:0 sets how it loads), "
    "http(s)://HOST:PORT of `posttrain serve-rm`, "
    "judge:MODEL_SPEC or judge-listwise:MODEL_SPEC (an LLM judge), length, vocabulary, "
    "random[:SEED], or package.module:Scorer (a class with score_sets, built without arguments)"
)


SCORER_NAMES = ("length", "vocabulary", "random")
"""Scorers named by a word alone."""
JUDGE_MODES = {"judge": "pointwise", "judge-listwise": "listwise"}
"""`judge:MODEL_SPEC` and `judge-listwise:MODEL_SPEC`: an LLM judge in that mode."""


def load_scorer(spec: str) -> SetScorer:
    """The scorer a SPEC names (see `SPEC_HELP`). A reward-model directory loads as what it
    holds (`posttrain.rewards.spec.load_reward_model`: ordinal or Bradley–Terry), the same as
    `reward-model:DIR` does for RL."""
    parsed = parse_spec(
        spec,
        (SpecKind.NAME, SpecKind.URL, SpecKind.DIRECTORY, SpecKind.IMPORT_PATH),
        what="scorer",
        names=SCORER_NAMES,
        takes_argument=("random", *JUDGE_MODES),
        directory_options=True,
        expected=SPEC_HELP,
    )
    if parsed.kind is SpecKind.NAME:
        if parsed.name == "length":
            return LengthScorer()
        if parsed.name == "vocabulary":
            return VocabularyScorer()
        if parsed.name == "random":
            seed = parsed.argument or "0"
            if not seed.isdigit():
                raise ValueError(f"scorer {spec!r}: the random seed must be an integer")
            return RandomScorer(int(seed))
        from posttrain.models.chat.spec import load_chat

        return JudgeScorer(load_chat(parsed.argument or ""), mode=JUDGE_MODES[parsed.name])
    if parsed.kind is SpecKind.IMPORT_PATH:  # a user's scorer: a class or factory, no arguments
        scorer = resolve_import_path(parsed, "scorer")()
        if not callable(getattr(scorer, "score_sets", None)):
            raise ValueError(f"scorer {spec!r} built a {type(scorer).__name__} without score_sets")
        return scorer
    from posttrain.rewards.spec import load_reward_model

    # A reward model scores each (prompt, candidate) as a conversation through its chat template.
    return Pointwise(load_reward_model(parsed), name=parsed.url or str(parsed.path))


def best_index(scores: Sequence[float]) -> int:
    """The first candidate with the top score (ties go to the earliest)."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))
