"""The LLM step judge of MM-THEBench: per-step labels with a category, through any ChatModel.

A judge sees what MM-THEBench's judge sees: the image, the question, the reference answer and
gold steps, and the model's steps numbered. It replies with one JSON entry per step,
`{"step": 1, "label": "correct" | "hallucinated", "category": ..., "subcategory": ...}`, with
the taxonomy of `posttrain.eval.mmthe.taxonomy` spelled out in the prompt. Replies are read
with the project's JSON helpers (`json_candidates`); an item whose reply lacks a valid label
for some step, or names a category or sub-category outside the taxonomy, is re-asked
(`ask_until_parsed`, one batched `chat` call per attempt) and after the retries recorded as
a failure naming the item (`JudgeResult.error`); the batch never crashes on a reply.

Images: an item's `image_url` field (a data URL) is used when present; otherwise its `image`
(a path relative to the data file's directory) goes through the `resolve_image` callable
(`image_resolver(data_dir)` builds the usual one); an `image` that is already a data URL is
used as is. An image that cannot be read is a recorded failure naming the item.

`vote` combines several judges' labels of one item step by step (majority; see its rules).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.eval.mmthe.taxonomy import CATEGORIES, LABELS, SUBCATEGORIES, StepLabel
from posttrain.models.chat.base import ChatModel, GenerationParams
from posttrain.models.chat.images import image_part, text_part
from posttrain.models.chat.replies import JudgeStats, ask_until_parsed, json_candidates

__all__ = [
    "SUBCATEGORY_HINTS",
    "JudgeResult",
    "StepJudge",
    "image_resolver",
    "judge_prompt",
    "parse_step_labels",
    "vote",
    "vote_items",
]

SUBCATEGORY_HINTS: dict[str, str] = {
    "object": "names an object, bar, row or label the image does not have",
    "attribute": "a present object with the wrong colour, shape or size",
    "count": "the wrong number of objects of a kind",
    "spatial": "the wrong position of an object or relation between two",
    "text_value": "a misread label, chart value or table cell",
    "fact": "a property of a named thing that contradicts common knowledge",
    "fabricated": "a property invented for a named thing",
    "arithmetic": "a wrong calculation",
    "comparison": "a wrong comparison or ordering of two stated quantities",
    "inconsistency": "contradicts an earlier step of the same chain",
    "conclusion": "a conclusion that does not follow from the earlier steps",
}
"""One line per sub-category for the prompt (the taxonomy module documents them in full)."""

ImageResolver = Callable[[dict[str, Any]], Any]


def image_resolver(data_dir: str | Path) -> ImageResolver:
    """A `resolve_image` for items whose `image` is a path relative to `data_dir` (the
    directory of their JSONL file)."""
    root = Path(data_dir)

    def resolve(item: dict[str, Any]) -> Path:
        return root / str(item["image"])

    return resolve


# --- the prompt ---------------------------------------------------------------------------------


def _taxonomy_text() -> str:
    lines = []
    for category, subs in CATEGORIES.items():
        lines.append(f"- {category}:")
        lines.extend(f"    - {sub}: {SUBCATEGORY_HINTS.get(sub, '')}" for sub in subs)
    return "\n".join(lines)


_INSTRUCTIONS = """\
You check a model's chain of thought about the image above, step by step, for hallucinations.

A step is "hallucinated" when it states something false about the image, states false or \
invented knowledge, or reasons wrongly; otherwise it is "correct". Judge each step on its own \
against the image, the reference and the earlier steps; a step that repeats an earlier error \
is hallucinated too. Give every hallucinated step a category and a sub-category from this \
taxonomy:
{taxonomy}
"""

_REPLY_FORMAT = """\
Reply with only a JSON list with one entry per step of the model, for example:
[{"step": 1, "label": "correct", "category": null, "subcategory": null},
 {"step": 2, "label": "hallucinated", "category": "perception", "subcategory": "count"}]
"""


def _gold_steps(item: dict[str, Any]) -> list[str]:
    steps = item.get("steps") or []
    return [s.get("text", "") if isinstance(s, dict) else str(s) for s in steps]


def judge_prompt(item: dict[str, Any], steps: Sequence[str]) -> str:
    """The text of the judge's message for one item and the model's steps."""
    item_id = item.get("id", "?")
    if not isinstance(item.get("question"), str):
        raise ValueError(f"item {item_id!r}: the judge needs a 'question' string")
    parts = [_INSTRUCTIONS.format(taxonomy=_taxonomy_text()), f"Question: {item['question']}"]
    if item.get("choices"):
        parts.append("Choices: " + "; ".join(str(c) for c in item["choices"]))
    if item.get("answer") is not None:
        parts.append(f"Reference answer: {item['answer']}")
    gold = _gold_steps(item)
    if gold:
        parts.append("Reference reasoning:\n" + "\n".join(f"- {s}" for s in gold))
    numbered = "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, 1))
    parts.append(f"The model's steps ({len(steps)}):\n{numbered}")
    parts.append(_REPLY_FORMAT)
    return "\n\n".join(parts)


def _image_url_part(item: dict[str, Any], resolve: ImageResolver | None) -> dict[str, Any]:
    item_id = item.get("id", "?")
    if isinstance(item.get("image_url"), str):
        return image_part(item["image_url"])
    image = item.get("image")
    if isinstance(image, str) and image.startswith("data:"):
        return image_part(image)
    if image is None:
        raise ValueError(f"item {item_id!r} has neither 'image_url' nor 'image'")
    if resolve is None and Path(image).is_absolute():
        return image_part(image)  # `load_items` resolves paths against the data file
    if resolve is None:
        raise ValueError(
            f"item {item_id!r}: 'image' is a path ({image!r}); give StepJudge a resolve_image"
            " (e.g. image_resolver(data_dir)) or an 'image_url' data URL"
        )
    return image_part(resolve(item))


# --- reading a reply ----------------------------------------------------------------------------


def _name(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().lower().replace(" ", "_").replace("-", "_")
    return None if text in ("", "none", "null", "n/a") else text


def _label_of(entry: dict[str, Any], index: int) -> StepLabel | None:
    """One entry as a StepLabel (index from 0), or None when its label, category or
    sub-category is not in the taxonomy."""
    label = _name(entry.get("label"))
    if label not in LABELS:
        return None
    reason = str(entry.get("reason") or entry.get("explanation") or "")
    if label != "hallucinated":
        return StepLabel(index, label, reason=reason)
    category, sub = _name(entry.get("category")), _name(entry.get("subcategory"))
    if category is None and sub in SUBCATEGORIES:
        category = SUBCATEGORIES[sub]
    if category not in CATEGORIES or (sub is not None and SUBCATEGORIES.get(sub) != category):
        return None
    return StepLabel(index, label, category, sub, reason)


def _verdict(label: StepLabel) -> tuple[str, str | None, str | None]:
    return label.label, label.category, label.subcategory


def _entries(value: Any) -> list[Any] | None:
    if isinstance(value, dict):
        for key in ("steps", "labels", "results"):
            if isinstance(value.get(key), list):
                return value[key]
        return None
    return value if isinstance(value, list) else None


def _read_entries(entries: list[Any], n_steps: int) -> list[StepLabel] | None:
    if not entries or not all(isinstance(e, dict) for e in entries):
        return None
    numbered = all("step" in e for e in entries)
    if not numbered and len(entries) != n_steps:
        return None
    labels: dict[int, StepLabel] = {}
    for position, entry in enumerate(entries):
        try:
            index = int(entry["step"]) - 1 if numbered else position
        except (TypeError, ValueError):
            return None
        if not 0 <= index < n_steps:
            continue  # a step the model does not have: ignored
        label = _label_of(entry, index)
        if label is None or (index in labels and _verdict(labels[index]) != _verdict(label)):
            return None  # invalid, or two entries for one step that disagree
        labels[index] = label
    if len(labels) != n_steps:
        return None
    return [labels[i] for i in range(n_steps)]


def parse_step_labels(reply: str, n_steps: int) -> list[StepLabel] | None:
    """One valid StepLabel per step from a judge's reply (a JSON list of step entries, or an
    object holding one under `steps` / `labels`), or None when no JSON value in the reply
    labels every step with names from the taxonomy."""
    for value in json_candidates(reply):
        entries = _entries(value)
        if entries is not None:
            labels = _read_entries(entries, n_steps)
            if labels is not None:
                return labels
    return None


# --- the judge ----------------------------------------------------------------------------------


@dataclass
class JudgeResult:
    """One judge's verdict on one item: a label per step, or `error` naming the item."""

    item_id: str
    labels: list[StepLabel]
    judge: str
    attempts: int = 0
    error: str | None = None
    reply: str = ""
    """The last reply read (kept for failures, to see what the judge wrote)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "labels": [label.to_dict() for label in self.labels],
            "judge": self.judge,
            "attempts": self.attempts,
            "error": self.error,
            "reply": self.reply,
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> JudgeResult:
        return cls(
            item_id=str(record["item_id"]),
            labels=[StepLabel.from_dict(x) for x in record.get("labels", [])],
            judge=record.get("judge", ""),
            attempts=int(record.get("attempts", 0)),
            error=record.get("error"),
            reply=record.get("reply", ""),
        )


@dataclass
class StepJudge:
    """Labels every step of model chains through `model` (one batched `chat` per attempt).

    `resolve_image(item)` turns an item's relative `image` path into something `image_part`
    takes (a path, bytes or PIL image); items carrying an `image_url` data URL need none.
    """

    model: ChatModel
    retries: int = 2
    params: GenerationParams = field(default_factory=lambda: GenerationParams(max_tokens=1024))
    resolve_image: ImageResolver | None = None
    stats: JudgeStats = field(default_factory=JudgeStats)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")

    @property
    def name(self) -> str:
        return self.model.name

    def judge_steps(
        self, items: Sequence[dict[str, Any]], chains: Sequence[Sequence[str]]
    ) -> list[JudgeResult]:
        """One JudgeResult per item, in order: `chains[i]` are the model's steps for
        `items[i]` (a `Chain` is taken too, by its `steps`)."""
        if len(items) != len(chains):
            raise ValueError(f"{len(items)} items but {len(chains)} chains to judge")
        step_lists = [list(getattr(c, "steps", c)) for c in chains]
        results: list[JudgeResult] = []
        conversations = {}
        for i, (item, steps) in enumerate(zip(items, step_lists, strict=True)):
            item_id = str(item.get("id", f"#{i}"))
            result = JudgeResult(item_id, [], self.name)
            results.append(result)
            if not steps:
                continue  # nothing to label: no call
            text = judge_prompt(item, steps)
            try:
                image = _image_url_part(item, self.resolve_image)
            except (OSError, ValueError) as error:
                result.error = f"item {item_id!r}: image unusable: {error}"
                continue
            conversations[i] = [{"role": "user", "content": [image, text_part(text)]}]

        def accept(index: int, reply: str) -> bool:
            result = results[index]
            result.attempts += 1
            result.reply = reply
            labels = parse_step_labels(reply, len(step_lists[index]))
            if labels is not None:
                result.labels = labels
            return labels is not None

        failed = ask_until_parsed(
            self.model, conversations, accept, self.params, self.retries, self.stats, self.name
        )
        for index in failed:
            result = results[index]
            result.error = (
                f"item {result.item_id!r}: {self.name} gave no valid label for every step in"
                f" {result.attempts} replies ({self.retries + 1} attempts)"
            )
        self.stats.responses += len(items)
        self.stats.items += sum(len(r.labels) for r in results)
        self.stats.unparsed += len(failed)
        return results


# --- several judges -----------------------------------------------------------------------------


def _majority(names: Sequence[str], order: Sequence[str]) -> str | None:
    """The most common name; a tie goes to the one earliest in `order` (taxonomy order)."""
    if not names:
        return None
    counts = Counter(names)
    top = max(counts.values())
    return min((n for n in counts if counts[n] == top), key=lambda n: order.index(n))


def vote(results: Sequence[JudgeResult], n_steps: int | None = None) -> list[StepLabel]:
    """Several judges' labels of ONE item, combined per step.

    Rules: failed results abstain, as do "unverifiable" votes. A step's label is the
    majority of the correct / hallucinated votes; a tie (or no vote) gives "unverifiable",
    since the judges did not settle it. A hallucinated step's category is the majority among
    the hallucinated votes, its sub-category the majority among those votes of that category
    that name one; ties go to the earliest in the taxonomy's order. The reason records the
    vote counts. `n_steps` is needed only when every judge failed.
    """
    usable = [r for r in results if r.ok and r.labels]
    sizes = {len(r.labels) for r in usable}
    if len(sizes) > 1:
        names = [(r.judge, len(r.labels)) for r in usable]
        raise ValueError(f"judges labelled different numbers of steps: {names}")
    n = sizes.pop() if sizes else (n_steps or 0)
    if n_steps is not None and n != n_steps:
        raise ValueError(f"judges labelled {n} steps, expected {n_steps}")
    categories, subcategories = list(CATEGORIES), list(SUBCATEGORIES)
    voted = []
    for index in range(n):
        votes = [r.labels[index] for r in usable if r.labels[index].label != "unverifiable"]
        bad = [v for v in votes if v.label == "hallucinated"]
        good = len(votes) - len(bad)
        reason = f"{len(bad)} hallucinated, {good} correct of {len(results)} judges"
        if len(bad) == good:
            voted.append(StepLabel(index, "unverifiable", reason=reason))
        elif good > len(bad):
            voted.append(StepLabel(index, "correct", reason=reason))
        else:
            category = _majority([v.category for v in bad if v.category], categories)
            subs = [v.subcategory for v in bad if v.category == category and v.subcategory]
            voted.append(
                StepLabel(index, "hallucinated", category, _majority(subs, subcategories), reason)
            )
    return voted


def vote_items(per_judge: Sequence[Sequence[JudgeResult]]) -> list[JudgeResult]:
    """`vote` over several judges' results of the same items (aligned by item id): one
    JudgeResult per item, judge "vote(a,b,...)", an error only when every judge failed."""
    if not per_judge:
        raise ValueError("no judges to vote")
    first = per_judge[0]
    for results in per_judge[1:]:
        if [r.item_id for r in results] != [r.item_id for r in first]:
            raise ValueError("the judges' results are not of the same items in the same order")
    name = "vote(" + ",".join(results[0].judge if results else "?" for results in per_judge) + ")"
    voted = []
    for column in zip(*per_judge, strict=True):
        item_id = column[0].item_id
        if all(not r.ok for r in column):
            errors = "; ".join(str(r.error) for r in column)
            voted.append(JudgeResult(item_id, [], name, error=f"every judge failed: {errors}"))
        else:
            voted.append(JudgeResult(item_id, vote(column), name))
    return voted
