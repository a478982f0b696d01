"""SFT rows of scene items: the question with its image as the prompt, the gold chain as the
completion, in TRL's vision prompt-completion layout.

`scene_prompt` is the one prompt both training and evaluation use, so a model fine-tuned on
these rows is asked at test time exactly as it was taught (`image_url` data-URL parts, the
`ChatModel` contract). The training rows write the same message with HF's `{"type": "image"}`
placeholder and the image itself in the row's `images` column, which is what TRL's
vision collator fills its placeholders from (`hf_messages` maps one form onto the other).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from posttrain.data.io import DataError
from posttrain.data.scenes.steps import format_chain
from posttrain.models.chat.hf_vision import hf_messages
from posttrain.models.chat.images import image_part, load_image, text_part

INSTRUCTION = "Think step by step, one step per line as 'Step N: ...', then 'Answer: X'."

Message = dict[str, Any]


def _image_part(item: dict[str, Any], data_dir: str | Path | None) -> dict[str, Any]:
    """The item's image as a data-URL part: a data URL as is (user items), else a file path
    relative to `data_dir` (the JSONL's directory)."""
    image = item.get("image")
    if not isinstance(image, str) or not image:
        raise DataError(f"item {item.get('id')!r} has no 'image'", key="image")
    if image.startswith("data:"):
        return image_part(image)
    if data_dir is None and not Path(image).is_absolute():  # `load_items` gives absolute ones
        raise ValueError(f"item {item.get('id')!r}: image path {image!r} needs the data_dir")
    path = Path(data_dir or "/") / image
    if not path.is_file():
        raise DataError(f"item {item.get('id')!r}: image file not found", path, key="image")
    return image_part(path)


def question_text(item: dict[str, Any]) -> str:
    """The question, its choices (when it has any) and the chain-format instruction."""
    lines = [f"Question: {item['question']}"]
    if item.get("choices"):
        lines.append("Choices: " + ", ".join(item["choices"]))
    return "\n".join([*lines, INSTRUCTION])


def scene_prompt(item: dict[str, Any], data_dir: str | Path | None = None) -> list[Message]:
    """The user message asking `item` (common contract 3): its image as a data-URL part,
    then the question as a text part. `data_dir` resolves a relative image path."""
    content = [_image_part(item, data_dir), text_part(question_text(item))]
    return [{"role": "user", "content": content}]


def blank_image_prompt(item: dict[str, Any], data_dir: str | Path | None = None) -> list[Message]:
    """`scene_prompt` with the image replaced by a white one of the same size: what a model
    answers without seeing the scene (its accuracy then comes from the question alone)."""
    url = _image_part(item, data_dir)["image_url"]["url"]
    blank = Image.new("RGB", load_image(url).size, "white")
    return [{"role": "user", "content": [image_part(blank), text_part(question_text(item))]}]


def gold_completion(item: dict[str, Any]) -> list[Message]:
    """The assistant message: the item's gold steps and answer in the chain format."""
    steps = item.get("steps") or []
    texts = [s["text"] if isinstance(s, dict) else s for s in steps]
    if not all(isinstance(t, str) and t.strip() for t in texts):
        raise DataError(f"item {item.get('id')!r} has a step without text", key="steps")
    return [{"role": "assistant", "content": format_chain(texts, str(item["answer"]))}]


def scene_sft_rows(
    items: Iterable[dict[str, Any]], data_dir: str | Path | None = None
) -> list[dict[str, Any]]:
    """One TRL vision row per item: `images` ([the RGB image]), `prompt` (`scene_prompt` with
    an image placeholder) and `completion` (`gold_completion`). Items without gold steps
    teach only the answer line."""
    rows = []
    for item in items:
        for key in ("id", "question", "answer"):
            if key not in item:
                raise DataError(f"item {item.get('id', '?')!r} has no {key!r}", key=key)
        prompt, urls = hf_messages(scene_prompt(item, data_dir))
        images: list[Image.Image] = [load_image(url) for url in urls]
        rows.append({"images": images, "prompt": prompt, "completion": gold_completion(item)})
    return rows


DESCRIBE = "Describe the image."


def description_rows(
    items: Iterable[dict[str, Any]], data_dir: str | Path | None = None
) -> list[dict[str, Any]]:
    """One row per scene asking `DESCRIBE`, answered by every perception step its items'
    gold chains hold, one per line: an image-grounding signal like LLaVA's caption
    pre-training. Without it a tiny VLM trained on the questions alone learned to answer
    from the question's wording and ignored the image (its accuracy with a blank image was
    the same, task by task)."""
    scenes: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for item in items:
        first, facts = scenes.setdefault(str(item.get("scene_id", item["id"])), (item, []))
        for step in item.get("steps") or []:
            if step.get("needs") == "perception" and step["text"] not in facts:
                facts.append(step["text"])
    rows = []
    for item, facts in scenes.values():
        if not facts:
            continue
        prompt, urls = hf_messages(
            [{"role": "user", "content": [_image_part(item, data_dir), text_part(DESCRIBE)]}]
        )
        rows.append(
            {
                "images": [load_image(url) for url in urls],
                "prompt": prompt,
                "completion": [{"role": "assistant", "content": "\n".join(facts)}],
            }
        )
    return rows
