"""LongTraceRL rubric rewards: outcome plus the gold entities along the reasoning chain.

LongTraceRL (Lin, Zhang, Hou, Li; THU-KEG 2026, arXiv:2605.31584) trains long-context
multi-hop reasoning with GRPO and a reward that adds a *rubric* to the outcome: each question
comes from a knowledge-graph walk, so the entities every hop must reach are known, and the
fraction of them a response names (r) is process supervision. r is normalised by the best
response of its group (r~ = r / max r) and, in the paper's positive-only strategy, only
counts for responses whose final answer is correct, so naming entities cannot replace solving.

Everything here is a pure function except `JudgeOutcome`, which asks a `ChatModel`. The
reward functions follow TRL's signature, `fn(prompts, completions, completion_ids=None,
**columns) -> list[float | None]`, and read LongTraceRL rows: `label` (the answer) and
`metadata = {"extra_reward_info": {"question", "rubrics", "aliases", ...}}`, or plain
`answer` / `aliases` / `rubrics` / `question` columns when those are absent (as they are under
verl, where `to_verl_compute_score` passes `ground_truth` as `answer`).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from posttrain.models.chat.base import ChatModel, Conversation, GenerationParams
from posttrain.rewards.builtin import Completion, completion_text, visible_answer
from posttrain.rewards.registry import RewardFunc, register_reward

__all__ = [
    "DEFAULT_ETA",
    "MODES",
    "JudgeOutcome",
    "LongTraceReward",
    "Mode",
    "Scope",
    "entity_hit",
    "group_max_normalise",
    "longtrace_rubric_recall",
    "make_longtrace_reward",
    "normalise_text",
    "outcome_exact",
    "outcome_with_rubric",
    "parse_verdict",
    "prompt_groups",
    "rubric_score",
    "visible_answer",
    "well_formed",
]

logger = logging.getLogger(__name__)

Mode = Literal["positive_only", "mixed", "negative_only", "outcome_only"]
MODES: tuple[str, ...] = ("positive_only", "mixed", "negative_only", "outcome_only")
Scope = Literal["answer", "reasoning", "all"]
SCOPES: tuple[str, ...] = ("answer", "reasoning", "all")
DEFAULT_ETA = 0.3
"""The paper's rubric weight η."""

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

# Han (with extensions A-H and compatibility forms), kana, Hangul syllables.
_CJK = (
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf"  # CJK Extension A
    "\u4e00-\u9fff"  # CJK Unified Ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK Compatibility Ideographs
    "\U00020000-\U0003134f"  # CJK Extensions B-H
)
_TOKEN = re.compile(rf"[a-z0-9_]+|[{_CJK}]")
_LATIN_MARKS = re.compile("[\u0300-\u036f]")


# --- text ---------------------------------------------------------------------------------------


def normalise_text(text: str) -> str:
    """Lowercase word tokens joined by single spaces; punctuation and markup drop out.

    Tokens are runs of `[a-z0-9_]` and single CJK characters: Chinese and Japanese write no
    spaces between words, so one token per character lets "北京" match inside "北京大学".
    Compatibility forms are folded first (full-width "Ｐａｒｉｓ" → "paris", "ß" → "ss") and
    Latin accents stripped ("Café" → "cafe"); letters of other scripts (Cyrillic, Greek, ...)
    are dropped, so an entity written only in them normalises to "" and never counts as hit.
    """
    text = unicodedata.normalize("NFKD", text).casefold()
    # Only Latin diacritics go: kana voicing marks (U+3099) must recompose, and NFC below
    # rebuilds Hangul syllables from the jamo NFKD split them into.
    text = unicodedata.normalize("NFC", _LATIN_MARKS.sub("", text))
    return " ".join(_TOKEN.findall(text))


def reasoning_part(text: str) -> str:
    """The text before the last `</think>` (without a leading `<think>`); "" when there is none."""
    before, found, _ = text.rpartition(THINK_CLOSE)
    return before.strip().removeprefix(THINK_OPEN) if found else ""


def scoped_text(text: str, scope: Scope = "answer") -> str:
    """The part of a response a rubric is checked against: the visible answer, the reasoning
    before `</think>`, or both (the LongTraceRL data's `rubric_use_*` flags choose per row)."""
    if scope == "answer":
        return visible_answer(text)
    if scope == "reasoning":
        return reasoning_part(text)
    if scope == "all":
        return reasoning_part(text) + "\n\n" + visible_answer(text)
    raise ValueError(f"unknown rubric scope {scope!r}; expected one of {', '.join(SCOPES)}")


def well_formed(text: str, *, require_think: bool = False) -> bool:
    """Whether a response may earn reward at all (LongTraceRL gives ill-formed ones 0).

    Ill-formed: more than one `</think>`; an empty visible answer; or a `<think>` that is never
    closed, which is what a response cut off mid-reasoning looks like (its "answer" would be
    reasoning). `require_think=True` also demands exactly one `</think>`, for thinking models
    whose chat template opens `<think>` in the prompt, where a missing one means truncation.
    """
    closes = text.count(THINK_CLOSE)
    if closes > 1 or (require_think and closes != 1):
        return False
    if closes == 0 and THINK_OPEN in text:
        return False
    return bool(visible_answer(text).strip())


# --- rubric -------------------------------------------------------------------------------------


def _padded(normalised: str) -> str:
    return f" {normalised} "


def entity_hit(entity: str, answer_text: str) -> bool:
    """Whether the response's visible answer names `entity`.

    Substring match of the normalised entity in the normalised visible answer, both padded
    with a space, so matches are whole tokens: "ana" hits "ana lopez" but not "banana". An
    entity that normalises to "" never hits.
    """
    target = normalise_text(str(entity))
    return bool(target) and _padded(target) in _padded(normalise_text(visible_answer(answer_text)))


def rubric_score(rubrics: Sequence[Any], text: str, *, scope: Scope = "answer") -> float:
    """r: the fraction of gold entities the response names (0.0 for an empty rubric).

    Same matching as `entity_hit`, on the part of the response `scope` picks ("answer", the
    visible answer, by default). A repeated entity counts once per occurrence in the rubric.
    """
    if not rubrics:
        return 0.0
    haystack = _padded(normalise_text(scoped_text(text, scope)))
    hits = 0
    for entity in rubrics:
        target = normalise_text(str(entity))
        hits += bool(target) and _padded(target) in haystack
    return hits / len(rubrics)


def _normalise_groups(scores: Sequence[float], sizes: Sequence[int]) -> list[float]:
    out: list[float] = []
    start = 0
    for size in sizes:
        group = [float(s) for s in scores[start : start + size]]
        best = max(group, default=0.0)
        out.extend([s / best for s in group] if best > 0 else group)
        start += size
    if start != len(scores):
        raise ValueError(f"group sizes {list(sizes)} do not cover {len(scores)} scores")
    return out


def group_max_normalise(scores: Sequence[float], group_size: int) -> list[float]:
    """r~ = r / max(r over its group), so the best response of every group scores 1.

    Groups are consecutive blocks of `group_size` (GRPO's completions per prompt). A group
    whose max is 0 (no response named any entity) is returned unchanged.
    """
    if group_size < 1 or len(scores) % group_size:
        raise ValueError(
            f"group_size must be a positive divisor of the number of scores ({len(scores)}), "
            f"got {group_size}"
        )
    return _normalise_groups(scores, [group_size] * (len(scores) // group_size))


def prompt_groups(prompts: Sequence[Any] | None, n: int) -> list[int]:
    """Group sizes inferred from runs of identical consecutive prompts.

    TRL's GRPOTrainer (its RepeatSampler) and posttrain's rollouts both place a prompt's
    completions next to each other, so a run of equal prompts is one group. Two adjacent
    copies of the same prompt in the data merge into one run, and TRL may split a group
    between processes; pass `group_size` where that matters. Without usable prompts (None, or
    not one per completion), or when no prompt repeats, the whole batch is one group.
    """
    if n == 0:
        return []
    if prompts is None or len(prompts) != n:
        return [n]
    sizes = [1]
    for previous, current in zip(prompts, prompts[1:], strict=False):
        if current == previous:
            sizes[-1] += 1
        else:
            sizes.append(1)
    return [n] if len(sizes) == n else sizes


# --- outcome ------------------------------------------------------------------------------------

_ANSWER_PREFIX = re.compile(
    r"^(?:(?:so|thus|therefore|hence) )?(?:the )?(?:final )?answer(?: is)? "
    r"|^(?:最 终 )?答 案 (?:是 |为 )?"
)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def answer_candidates(text: str) -> list[str]:
    """Normalised strings from a response that may state its final answer.

    The whole visible answer, its last non-empty line and its last `\\boxed{...}`, each as is
    and without a leading "answer:", "the final answer is", "答案是" (after normalisation,
    so markdown such as "**Final answer:**" is covered).
    """
    visible = visible_answer(text)
    pieces = [visible]
    lines = [line for line in visible.splitlines() if line.strip()]
    if lines:
        pieces.append(lines[-1])
    boxed = _BOXED.findall(visible)
    if boxed:
        pieces.append(boxed[-1])
    candidates: list[str] = []
    for piece in pieces:
        norm = normalise_text(piece)
        for form in (norm, _ANSWER_PREFIX.sub("", norm, count=1)):
            if form and form not in candidates:
                candidates.append(form)
    return candidates


def outcome_exact(text: str, answer: Any, aliases: Sequence[Any] = ()) -> float:
    """o by rule: 1.0 when one of `answer_candidates(text)` equals the normalised answer or an
    alias, else 0.0. Whole-string equality (not containment), so listing several candidate
    answers does not pass; a reference that normalises to "" matches nothing."""
    targets = {normalise_text(str(a)) for a in (answer, *aliases) if a is not None} - {""}
    if not targets:
        return 0.0
    return 1.0 if any(c in targets for c in answer_candidates(text)) else 0.0


_JUDGE_PROMPT = """\
You are checking the final answer of a response to a multi-hop question.

Question: {question}

Reference answer: {answer}
Other accepted forms of the reference answer: {aliases}

Response:
<<<
{response}
>>>

First find the single final answer the response commits to (write "none" if it commits to \
none). It is correct when it names the same thing as the reference answer or one of its \
accepted forms; differences in spelling, case, articles, abbreviation or formatting do not \
matter. It is incorrect when it names something else, something less specific, hedges between \
several answers, or gives no answer.

Reply with exactly these two lines:
extracted_final_answer: <the final answer, or none>
correct: <yes or no>
"""

_VERDICT = re.compile(r"(?<![a-z])correct[\s*_`'\"]*[:：=][\s*_`'\"]*(yes|no)\b", re.IGNORECASE)
_LEADING = re.compile(r"^[\W_]*(yes|no)\b", re.IGNORECASE)


def parse_verdict(reply: str) -> bool | None:
    """The judge's yes/no: the last "correct: yes|no" line (markdown and quotes tolerated),
    else a reply that starts with yes/no; None when neither is there. A thinking judge's
    reasoning before `</think>` is ignored, since drafts there may say anything."""
    reply = visible_answer(reply)
    matches = _VERDICT.findall(reply)
    if matches:
        return matches[-1].lower() == "yes"
    leading = _LEADING.match(reply.strip())
    return leading[1].lower() == "yes" if leading else None


JudgeItem = tuple[str, str | None, Any, Sequence[Any]]
"""(response text, question, answer, aliases)."""


class JudgeOutcome:
    """o from an LLM judge, which LongTraceRL uses for answers that rules cannot match.

    The judge sees the question, the reference answer with its aliases and the response's
    visible answer, and replies with the extracted answer and "correct: yes/no". A reply
    that `parse_verdict` cannot read is asked again, up to `retries` more times; after that,
    or if the model raises, the response is scored by `outcome_exact` (counted in
    `fallbacks`). Works with any `ChatModel`; `many` sends a batch as one `chat` call.
    """

    def __init__(
        self, model: ChatModel, retries: int = 2, params: GenerationParams | None = None
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.model = model
        self.retries = retries
        self.params = params or GenerationParams(temperature=0.0, max_tokens=512)
        self.requests = 0
        """Conversations sent to the judge, retries included."""
        self.fallbacks = 0
        """Responses scored by `outcome_exact` because the judge gave no readable verdict."""

    def __repr__(self) -> str:
        return f"JudgeOutcome({getattr(self.model, 'name', self.model)!r}, retries={self.retries})"

    @staticmethod
    def prompt(text: str, question: str | None, answer: Any, aliases: Sequence[Any] = ()) -> str:
        """The judge prompt for one response (its visible answer only)."""
        others = [str(a) for a in aliases if a is not None and str(a) != str(answer)]
        return _JUDGE_PROMPT.format(
            question=question or "(not given)",
            answer=answer,
            aliases="; ".join(others) if others else "(none)",
            response=visible_answer(text).strip(),
        )

    def __call__(
        self, text: str, question: str | None, answer: Any, aliases: Sequence[Any] = ()
    ) -> float:
        """o in {0.0, 1.0} for one response."""
        return self.many([(text, question, answer, aliases)])[0]

    def many(self, items: Sequence[JudgeItem]) -> list[float]:
        """o for each (text, question, answer, aliases); an empty visible answer is 0.0 unasked."""
        scores: list[float | None] = [None] * len(items)
        pending: list[int] = []
        for i, (text, _, _, _) in enumerate(items):
            if visible_answer(text).strip():
                pending.append(i)
            else:
                scores[i] = 0.0
        conversations: dict[int, Conversation] = {
            i: [{"role": "user", "content": self.prompt(*items[i])}] for i in pending
        }
        for _ in range(1 + self.retries):
            if not pending:
                break
            self.requests += len(pending)
            try:
                results = self.model.chat([conversations[i] for i in pending], self.params)
            except Exception as exc:  # a judge outage should cost accuracy, not the run
                logger.warning("judge %r failed (%s); retrying or falling back", self, exc)
                continue
            unread: list[int] = []
            for i, result in zip(pending, results, strict=True):
                verdict = parse_verdict(result.text if result.choices else "")
                if verdict is None:
                    unread.append(i)
                else:
                    scores[i] = 1.0 if verdict else 0.0
            pending = unread
        for i in pending:
            self.fallbacks += 1
            text, _, answer, aliases = items[i]
            scores[i] = outcome_exact(text, answer, aliases)
        return [float(s) for s in scores]  # type: ignore[arg-type]  # all filled above


# --- combination --------------------------------------------------------------------------------


def outcome_with_rubric(
    mode: Mode | str, o: float, r: float, r_tilde: float, eta: float = DEFAULT_ETA
) -> float:
    """R from outcome o, rubric r and group-normalised rubric r~ (LongTraceRL's strategies).

    - positive_only (the paper's): R = 0 if o == 0 else (1 - η)·o + η·r~, so the rubric only
      ranks correct responses and cannot pay for a wrong answer;
    - mixed: R = (1 - η)·o + η·r, rubric credit for everyone;
    - negative_only: R = o if o > 0 else η·r, partial credit for wrong answers only;
    - outcome_only: R = o.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    if mode == "positive_only":
        return 0.0 if o <= 0 else (1 - eta) * o + eta * r_tilde
    if mode == "mixed":
        return (1 - eta) * o + eta * r
    if mode == "negative_only":
        return o if o > 0 else eta * r
    if mode == "outcome_only":
        return float(o)
    raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")


# --- dataset columns ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    answer: Any
    aliases: tuple[Any, ...]
    rubrics: tuple[Any, ...] | None
    question: str | None
    scope: Scope | None  # from the row's rubric_use_* flags, when it has them


def _info(metadata: Any) -> dict[str, Any]:
    """A row's extra_reward_info from `metadata` (a dict, or JSON text as some writers store)."""
    if metadata is None:
        return {}
    if isinstance(metadata, str):
        metadata = json.loads(metadata) if metadata.strip() else {}
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict or JSON object, got {type(metadata).__name__}")
    inner = metadata.get("extra_reward_info")
    if isinstance(inner, str):
        inner = json.loads(inner)
    return dict(inner) if isinstance(inner, dict) else metadata


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _row_scope(info: dict[str, Any]) -> Scope | None:
    """Map LongTraceRL's rubric_use_reasoning_content / rubric_use_content flags to a scope."""
    use_reasoning = info.get("rubric_use_reasoning_content")
    use_content = info.get("rubric_use_content")
    if use_reasoning is None and use_content is None:
        return None
    use_content = True if use_content is None else bool(use_content)
    if use_reasoning and use_content:
        return "all"
    if use_reasoning:
        return "reasoning"
    if use_content:
        return "answer"
    raise ValueError("a row turns off both rubric_use_reasoning_content and rubric_use_content")


def _cell(columns: dict[str, Any], key: str, i: int) -> Any:
    values = columns.get(key)
    return None if values is None else values[i]


def _columns(name: str, columns: dict[str, Any], n: int, need_answer: bool) -> list[_Row]:
    """Per-completion answer, aliases, rubric and question, from whichever columns exist."""
    for key in ("label", "answer", "metadata", "extra_reward_info", "aliases", "rubrics"):
        if key in columns and columns[key] is not None and len(columns[key]) != n:
            raise ValueError(
                f"reward {name!r}: column {key!r} has {len(columns[key])} values for {n} "
                "completions"
            )
    answer_key = next((k for k in ("label", "answer") if columns.get(k) is not None), None)
    if need_answer and answer_key is None:
        raise ValueError(
            f"reward {name!r} needs a 'label' (LongTraceRL) or 'answer' column aligned with the "
            f"completions; got columns {sorted(columns)}"
        )
    rows: list[_Row] = []
    for i in range(n):
        if columns.get("metadata") is not None:
            info = _info(columns["metadata"][i])
        elif columns.get("extra_reward_info") is not None:
            info = _info({"extra_reward_info": columns["extra_reward_info"][i]})
        else:
            info = {}
        answer = columns[answer_key][i] if answer_key else None
        aliases = info.get("aliases", _cell(columns, "aliases", i))
        if isinstance(answer, list | tuple):  # an answer list: the first, then its aliases
            answer, aliases = (answer[0] if answer else None), (*answer[1:], *_as_tuple(aliases))
        rubrics = info.get("rubrics", _cell(columns, "rubrics", i))
        question = info.get("question", _cell(columns, "question", i))
        rows.append(
            _Row(
                answer=answer,
                aliases=_as_tuple(aliases),
                rubrics=None if rubrics is None else _as_tuple(rubrics),
                question=question,
                scope=_row_scope(info),
            )
        )
    return rows


# --- TRL reward functions -----------------------------------------------------------------------

_NAMES = {
    "positive_only": "longtrace_rubric",
    "mixed": "longtrace_rubric_mixed",
    "negative_only": "longtrace_rubric_negative",
    "outcome_only": "longtrace_outcome",
}


class LongTraceReward:
    """LongTraceRL's reward as a TRL reward function (a class so configured ones pickle).

    Per response: o (rule-based `outcome_exact`, or `judge`), r (`rubric_score`), r~ (r over
    its group's max), then `outcome_with_rubric`; an ill-formed response (`well_formed`)
    scores 0 in every mode, and a row without an answer None. Groups are `group_size`
    consecutive completions or, when None, inferred by `prompt_groups`. The rubric is checked
    on `scope` ("answer", "reasoning", "all"); None reads each row's `rubric_use_*` flags and
    defaults to "answer". Under TRL, means of o and r over the scored responses, and the
    ill-formed fraction of the batch, go to `log_metric` as `<name>/outcome`, `<name>/rubric`
    and `<name>/ill_formed`.

    verl's per-response reward managers score one response at a time, so there every group is
    that one response and r~ is 1 whenever r > 0: use mode="mixed" under verl, or score groups.
    """

    def __init__(
        self,
        mode: Mode | str = "positive_only",
        eta: float = DEFAULT_ETA,
        judge: ChatModel | JudgeOutcome | None = None,
        group_size: int | None = None,
        *,
        scope: Scope | None = None,
        require_think: bool = False,
        name: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta}")
        if group_size is not None and group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        if scope is not None and scope not in SCOPES:
            raise ValueError(f"unknown rubric scope {scope!r}; expected one of {SCOPES}")
        self.mode = mode
        self.eta = eta
        self.judge = (
            judge if judge is None or isinstance(judge, JudgeOutcome) else JudgeOutcome(judge)
        )
        self.group_size = group_size
        self.scope = scope
        self.require_think = require_think
        self.__name__ = name or _NAMES[mode]  # what TRL names the logged reward

    def __repr__(self) -> str:
        return (
            f"{self.__name__}(mode={self.mode!r}, eta={self.eta}, judge={self.judge!r}, "
            f"group_size={self.group_size})"
        )

    def _groups(self, prompts: Sequence[Any] | None, n: int) -> list[int]:
        if self.group_size is None:
            return prompt_groups(prompts, n)
        if n % self.group_size:
            raise ValueError(
                f"reward {self.__name__!r}: {n} completions do not split into groups of "
                f"{self.group_size} (TRL may split a group across processes; leave group_size "
                "None to infer groups from the prompts)"
            )
        return [self.group_size] * (n // self.group_size)

    def __call__(
        self,
        prompts: list[Any],
        completions: list[Completion],
        completion_ids: list[Any] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        n = len(completions)
        rows = _columns(self.__name__, columns, n, need_answer=True)
        texts = [completion_text(c) for c in completions]
        formed = [well_formed(t, require_think=self.require_think) for t in texts]
        scorable = [i for i in range(n) if formed[i] and rows[i].answer is not None]

        o = [0.0] * n
        if self.judge is not None:
            items = [
                (texts[i], rows[i].question, rows[i].answer, rows[i].aliases) for i in scorable
            ]
            for i, score in zip(scorable, self.judge.many(items), strict=True):
                o[i] = score
        else:
            for i in scorable:
                o[i] = outcome_exact(texts[i], rows[i].answer, rows[i].aliases)

        r = [0.0] * n
        if self.mode != "outcome_only":
            for i in range(n):
                if formed[i] and rows[i].rubrics:
                    scope = self.scope or rows[i].scope or "answer"
                    r[i] = rubric_score(rows[i].rubrics, texts[i], scope=scope)
        r_tilde = _normalise_groups(r, self._groups(prompts, n))

        rewards: list[float | None] = []
        for i in range(n):
            if rows[i].answer is None:
                rewards.append(None)
            elif not formed[i]:
                rewards.append(0.0)
            else:
                rewards.append(outcome_with_rubric(self.mode, o[i], r[i], r_tilde[i], self.eta))

        log_metric = columns.get("log_metric")
        if callable(log_metric) and scorable:
            log_metric(f"{self.__name__}/outcome", sum(o[i] for i in scorable) / len(scorable))
            if self.mode != "outcome_only":
                log_metric(f"{self.__name__}/rubric", sum(r[i] for i in scorable) / len(scorable))
        if callable(log_metric) and n:
            log_metric(f"{self.__name__}/ill_formed", formed.count(False) / n)
        return rewards


def make_longtrace_reward(
    mode: Mode | str = "positive_only",
    eta: float = DEFAULT_ETA,
    judge: ChatModel | JudgeOutcome | None = None,
    group_size: int | None = None,
    *,
    scope: Scope | None = None,
    require_think: bool = False,
    name: str | None = None,
) -> RewardFunc:
    """A LongTraceRL reward function with TRL's signature; see `LongTraceReward`.

    `group_size` is GRPO's num_generations; None infers groups from consecutive prompts. A
    `ChatModel` judge is wrapped in `JudgeOutcome` (2 retries, then the rule-based outcome).
    """
    return LongTraceReward(
        mode,
        eta,
        judge,
        group_size,
        scope=scope,
        require_think=require_think,
        name=name,
    )


longtrace_outcome: RewardFunc = register_reward("longtrace_outcome")(
    LongTraceReward("outcome_only")
)
"""o by rule (`outcome_exact`), 0 for an ill-formed response."""

longtrace_rubric: RewardFunc = register_reward("longtrace_rubric")(LongTraceReward("positive_only"))
"""The paper's reward: (1 - 0.3)·o + 0.3·r~ for correct responses, else 0."""

longtrace_rubric_mixed: RewardFunc = register_reward("longtrace_rubric_mixed")(
    LongTraceReward("mixed")
)
"""(1 - 0.3)·o + 0.3·r for every well-formed response."""

longtrace_rubric_negative: RewardFunc = register_reward("longtrace_rubric_negative")(
    LongTraceReward("negative_only")
)
"""o for correct responses, 0.3·r for wrong ones."""


@register_reward("longtrace_rubric_recall")
def longtrace_rubric_recall(
    prompts: list[Any],
    completions: list[Completion],
    completion_ids: list[Any] | None = None,
    **columns: Any,
) -> list[float | None]:
    """Evaluation metric: the fraction of rubric entities each response names (`rubric_score`
    on the row's scope), for every response, well-formed or not; None for rows without a
    rubric. Needs no answer column."""
    rows = _columns("longtrace_rubric_recall", columns, len(completions), need_answer=False)
    scores: list[float | None] = []
    for completion, row in zip(completions, rows, strict=True):
        if not row.rubrics:
            scores.append(None)
        else:
            text = completion_text(completion)
            scores.append(rubric_score(row.rubrics, text, scope=row.scope or "answer"))
    return scores


def with_judged_outcome(functions: Sequence[Any], judge: ChatModel) -> list[Any]:
    """`functions` with the outcome o of every LongTraceRL reward decided by the chat model
    `judge` (one `JudgeOutcome`, shared, so its calls and fallbacks are counted once); the
    registered rewards keep their rule outcome, and other functions pass unchanged."""
    outcome = JudgeOutcome(judge)
    judged = []
    for function in functions:
        if isinstance(function, LongTraceReward):
            function = copy.copy(function)
            function.judge = outcome
        judged.append(function)
    return judged
