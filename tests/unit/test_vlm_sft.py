"""SFT of a tiny VLM on rendered scenes: the rows, the completion-only label mask, a few
steps that lower the loss, and a saved directory that answers with an image."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from posttrain.data.io import DataError
from posttrain.data.scenes.sft import question_text, scene_prompt, scene_sft_rows
from posttrain.data.scenes.splits import SceneConfig, write_scene_data
from posttrain.data.scenes.user_data import load_items
from posttrain.eval.mmthe.segment import segment_chain
from posttrain.models.chat.base import GenerationParams
from posttrain.models.chat.hf_vision import HFVisionChat, hf_messages
from posttrain.models.chat.images import data_url, load_image, png_bytes
from posttrain.models.chat.spec import load_chat
from posttrain.models.tiny_vlm import build_tiny_vlm
from posttrain.sft.trainer import SFTStageConfig, fine_tune, score_stop, sft_rows, sft_trainer


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """Three 64-pixel scenes (one of each kind) with two questions each."""
    out = tmp_path_factory.mktemp("scenes")
    config = SceneConfig(
        train_scenes=3, test_scenes=0, ood_scenes=0, questions_per_scene=2, image_size=64
    )
    paths = write_scene_data(config, out)
    return out, load_items(paths["train"])


@pytest.fixture(scope="module")
def vlm_dir(scenes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir, items = scenes
    corpus = [question_text(i) for i in items] + [s["text"] for i in items for s in i["steps"]]
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"), corpus, seed=0)


@pytest.fixture(scope="module")
def rows(scenes) -> list[dict]:
    return scene_sft_rows(scenes[1], scenes[0])


def test_rows_hold_the_image_the_question_and_the_gold_chain(scenes, rows) -> None:
    data_dir, items = scenes
    assert len(rows) == len(items) == 6
    for item, row in zip(items, rows, strict=True):
        assert set(row) == {"images", "prompt", "completion"}
        (image,) = row["images"]
        on_disk = Image.open(data_dir / item["image"]).convert("RGB")
        assert image.mode == "RGB" and image.tobytes() == on_disk.tobytes()
        (user,) = row["prompt"]
        assert user["role"] == "user"
        assert [p["type"] for p in user["content"]] == ["image", "text"]
        assert item["question"] in user["content"][1]["text"]
        (assistant,) = row["completion"]
        assert assistant["role"] == "assistant"
        chain = segment_chain(assistant["content"])  # the evaluation's reading of the chain
        assert chain.markers == "step" and chain.format_ok
        assert chain.steps == [s["text"] for s in item["steps"]]
        assert chain.answer == item["answer"]


def test_the_evaluation_prompt_carries_the_same_image_as_a_data_url(scenes, rows) -> None:
    data_dir, items = scenes
    prompt = scene_prompt(items[0], data_dir)
    messages, urls = hf_messages(prompt)
    assert messages == rows[0]["prompt"]
    assert load_image(urls[0]).tobytes() == rows[0]["images"][0].tobytes()
    # An item holding a data URL (user data) needs no data_dir.
    assert scene_prompt({**items[0], "image": urls[0]}) == prompt


def test_bad_items_and_rows_name_what_is_wrong(scenes) -> None:
    data_dir, items = scenes
    with pytest.raises(DataError, match="image file not found"):
        scene_sft_rows([{**items[0], "image": "images/missing.png"}], data_dir)
    with pytest.raises(DataError, match="has no 'answer'"):
        scene_sft_rows([{k: v for k, v in items[0].items() if k != "answer"}], data_dir)
    with pytest.raises(DataError, match="row 2: 'images' must be a list"):
        sft_rows([{"prompt": "a", "completion": "b", "images": []}] + [
            {"prompt": "a", "completion": "b", "images": "x.png"}
        ], "rows.jsonl")  # fmt: skip
    with pytest.raises(DataError, match="row 1: images: only base64 data URLs"):
        sft_rows([{"prompt": "a", "completion": "b", "images": ["http://x/y.png"]}], "f")


def test_sft_rows_keep_images_decoding_data_urls() -> None:
    picture = Image.new("RGB", (8, 8), "red")
    row = {"prompt": "p", "completion": "c", "images": [data_url(png_bytes(picture))], "x": 1}
    (kept,) = sft_rows([row], "rows")
    assert set(kept) == {"prompt", "completion", "images"}
    assert kept["images"][0].tobytes() == picture.tobytes()


def test_only_completion_tokens_carry_labels(vlm_dir, rows, tmp_path) -> None:
    config = SFTStageConfig(model=str(vlm_dir), steps=1, batch_size=4)
    trainer = sft_trainer(config, rows[:4], tmp_path)
    # The trainer's own collator on its own dataset (the data loader would shuffle the rows).
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    processor, tokenizer = trainer.processing_class, trainer.processing_class.tokenizer
    for i, row in enumerate(rows[:4]):
        # Independently: the prompt as the processor encodes it for generation (image tokens
        # expanded), and the completion as the chat template closes an assistant turn.
        text = processor.apply_chat_template(
            row["prompt"], add_generation_prompt=True, tokenize=False
        )
        prompt_ids = list(processor(text=[text], images=row["images"])["input_ids"][0])
        answer = row["completion"][0]["content"] + "<|im_end|>\n"
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        n, m = len(prompt_ids), len(answer_ids)
        ids, labels = batch["input_ids"][i].tolist(), batch["labels"][i].tolist()
        assert ids[:n] == prompt_ids and ids[n : n + m] == answer_ids
        assert labels[:n] == [-100] * n
        assert labels[n : n + m] == answer_ids
        assert set(labels[n + m :]) <= {-100}  # padding
    assert batch["pixel_values"].shape == (4, 3, 64, 64)


def test_a_few_steps_lower_the_loss_and_the_saved_vlm_answers(vlm_dir, scenes, rows, tmp_path):
    data_dir, items = scenes
    scores: list[dict] = []

    def replies(model) -> float:  # the scorer sees the VLM in training, as score_stop's do
        chat = HFVisionChat.from_model(model, processor, name="in-training")
        (result,) = chat.chat([scene_prompt(items[0], data_dir)], GenerationParams(max_tokens=4))
        return float(len(result.choices[0].token_ids))

    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(vlm_dir)
    config = SFTStageConfig(
        model=str(vlm_dir), steps=8, batch_size=6, learning_rate=3e-3, logging_steps=1,
        gradient_checkpointing=False,
    )  # fmt: skip
    torch.manual_seed(0)
    history = fine_tune(
        config, sft_rows(rows, "scenes"), tmp_path / "vlm", tmp_path / "trainer",
        callbacks=[score_stop(replies, every=4, target=100.0, scores=scores)],
    )  # fmt: skip
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 8 and losses[-1] < 0.8 * losses[0]
    assert [s["step"] for s in scores] == [4, 8] and all(s["score"] == 4 for s in scores)

    chat = load_chat(str(tmp_path / "vlm"), device="cpu")
    assert isinstance(chat, HFVisionChat)
    prompts = [scene_prompt(items[0], data_dir), scene_prompt(items[2], data_dir)]  # 2 scenes
    results = chat.chat(prompts, GenerationParams(max_tokens=12))
    assert all(len(r.choices[0].token_ids) > 0 for r in results)
    # The image reaches the model: the same question with another scene's image changes the
    # next-token distribution.
    ids, pixels = chat.encode_with_images(prompts[0])
    _, other = chat.encode_with_images(
        [{**prompts[0][0], "content": [prompts[1][0]["content"][0], prompts[0][0]["content"][1]]}]
    )
    model = chat.generator.model
    with torch.no_grad():
        first = model(input_ids=torch.tensor([ids]), **pixels).logits[0, -1]
        second = model(input_ids=torch.tensor([ids]), **other).logits[0, -1]
    assert not torch.allclose(first, second)


def test_images_for_a_text_model_are_an_error(tiny_model_dir, tmp_path) -> None:
    picture = Image.new("RGB", (8, 8), "red")
    rows = [{"prompt": "p", "completion": "c", "images": [picture]}]
    config = SFTStageConfig(model=str(tiny_model_dir), steps=1)
    with pytest.raises(DataError, match="text model"):
        sft_trainer(config, rows, tmp_path)
