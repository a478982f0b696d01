"""Image content parts through every ChatModel backend, and the tiny LLaVA built here."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from posttrain.models.chat.base import ChatResult, Choice, GenerationParams
from posttrain.models.chat.cache import ResponseCache
from posttrain.models.chat.hf import HFChat
from posttrain.models.chat.hf_vision import HFVisionChat, hf_messages, is_vision_model_dir
from posttrain.models.chat.images import image_part, text_part
from posttrain.models.chat.openai_chat import OpenAIChat
from posttrain.models.chat.scripted import ScriptedChat
from posttrain.models.chat.spec import load_chat
from posttrain.models.tiny_vlm import IMAGE_TOKEN, build_tiny_vlm

CORPUS = ["Step 1: There are 3 red circles.", "Step 2: 3 + 2 = 5.", "Answer: 5"] * 4


def picture(colour: str, size: tuple[int, int] = (64, 64)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    image.paste(Image.new("RGB", (size[0] // 2, size[1] // 2), colour), (4, 4))
    return image


def ask(colour: str, question: str = "How many circles?") -> list[dict]:
    content = [image_part(picture(colour)), text_part(question)]
    return [{"role": "user", "content": content}]


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"), CORPUS, seed=0)


@pytest.fixture(scope="module")
def vlm(vlm_dir: Path) -> HFVisionChat:
    chat = load_chat(str(vlm_dir), device="cpu")
    assert isinstance(chat, HFVisionChat)
    return chat


def test_the_tiny_vlm_loads_as_a_real_checkpoint_would(vlm_dir: Path) -> None:
    processor = AutoProcessor.from_pretrained(vlm_dir)
    model = AutoModelForImageTextToText.from_pretrained(vlm_dir)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert 0.5e6 < sum(p.numel() for p in model.parameters()) < 1.5e6
    assert is_vision_model_dir(vlm_dir)
    messages, urls = hf_messages(ask("red", "Count."))
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == f"<|im_start|>user\n{IMAGE_TOKEN}Count.<|im_end|>\n<|im_start|>assistant\n"
    # Any size is resized to 64x64: 16 patches of 16 pixels, one image token each, placed
    # where the message had its image.
    encoded = processor(text=[text], images=[picture("red", (50, 90))], return_tensors="pt")
    assert tuple(encoded["pixel_values"].shape) == (1, 3, 64, 64)
    tokens = processor.tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    assert tokens[:3] == ["<|im_start|>", "user", "Ċ"]
    assert tokens[3:19] == [IMAGE_TOKEN] * 16 and IMAGE_TOKEN not in tokens[19:]
    assert model.config.image_token_id == processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)


def test_forward_backward_of_8_images_is_fast_and_reaches_the_vision_tower(vlm_dir: Path) -> None:
    processor = AutoProcessor.from_pretrained(vlm_dir)
    model = AutoModelForImageTextToText.from_pretrained(vlm_dir).train()
    messages, _ = hf_messages(ask("red"))
    text = processor.apply_chat_template(messages, tokenize=False) + "Answer: 5"
    colours = ["red", "blue", "green", "black"] * 2
    batch = processor(
        text=[text] * 8, images=[picture(c) for c in colours], return_tensors="pt", padding=True
    )
    started = time.perf_counter()
    loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    elapsed = time.perf_counter() - started
    assert torch.isfinite(loss)
    patches = dict(model.named_parameters())["model.vision_tower.embeddings.patch_embedding.weight"]
    assert patches.grad is not None and patches.grad.abs().sum() > 0
    assert elapsed < 2.0, f"forward+backward took {elapsed:.2f} s"


def test_greedy_generation_equals_transformers_own_and_is_batch_independent(
    vlm: HFVisionChat, vlm_dir: Path
) -> None:
    conversations = [ask("red"), ask("blue", "A longer question, so the other row is padded?")]
    params = GenerationParams(max_tokens=6)
    together = vlm.chat(conversations, params)
    alone = [vlm.chat([c], params)[0] for c in conversations]
    assert [r.choices[0].token_ids for r in together] == [r.choices[0].token_ids for r in alone]
    # The reference: transformers' processor and generate, called directly.
    processor = AutoProcessor.from_pretrained(vlm_dir)
    model = AutoModelForImageTextToText.from_pretrained(vlm_dir)
    messages, _ = hf_messages(conversations[0])
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[picture("red")], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=6, do_sample=False, eos_token_id=[])
    expected = out[0, inputs["input_ids"].shape[1] :].tolist()
    eos = processor.tokenizer.eos_token_id
    got = together[0].choices[0].token_ids
    assert got == expected[: len(got)] and (len(got) == 6 or got[-1] == eos)
    assert together[0].model == vlm_dir.name


def test_the_image_changes_the_answer_and_sampling_follows_the_params(vlm: HFVisionChat) -> None:
    greedy = GenerationParams(max_tokens=3, logprobs=True)
    red, blue = vlm.chat([ask("red"), ask("blue")], greedy)
    assert red.choices[0].logprobs != blue.choices[0].logprobs  # same text, other image
    sampled = GenerationParams(n=3, temperature=1.0, top_p=0.9, max_tokens=5, seed=4)
    first, second = (vlm.chat([ask("red")], sampled)[0] for _ in range(2))
    assert [c.token_ids for c in first.choices] == [c.token_ids for c in second.choices]
    assert len({tuple(c.token_ids) for c in first.choices}) > 1
    assert all(c.finish_reason in ("stop", "length") for c in first.choices)
    # A stop string (a readable token the seeded sample wrote) ends the text before it.
    decode = vlm.tokenizer.decode
    choice, token = next(
        (c, decode([t]))
        for c in first.choices
        for t in c.token_ids[1:]
        if len(decode([t]).strip()) >= 2 and "\ufffd" not in decode([t])
    )
    again = vlm.chat([ask("red")], replace(sampled, stop=(token,)))[0]
    cut = again.choices[first.choices.index(choice)]
    assert cut.finish_reason == "stop" and cut.text == choice.text[: choice.text.find(token)]


def test_text_only_conversations_work_on_the_vlm(vlm: HFVisionChat) -> None:
    result = vlm.chat([[{"role": "user", "content": "What is 3 + 2?"}]], GenerationParams())[0]
    assert result.choices[0].token_ids


def test_a_text_model_refuses_image_parts_by_name_and_reads_text_parts(tiny_model_dir) -> None:
    chat = load_chat(str(tiny_model_dir))
    assert type(chat) is HFChat
    with pytest.raises(ValueError, match=f"{tiny_model_dir}.*text-only.*image"):
        chat.chat([ask("red")])
    parts = [{"role": "user", "content": [text_part("What is"), text_part("3 + 4?")]}]
    plain = [{"role": "user", "content": "What is\n3 + 4?"}]
    assert chat.encode(parts) == chat.encode(plain)


def test_scripted_rules_match_the_text_of_parts() -> None:
    seen = []
    script = ScriptedChat(
        "parts", [(r"How many (\w+)", lambda m, conv: seen.append(conv) or m.group(1))]
    )
    conversation = ask("red", "How many circles?")
    assert script.chat([conversation])[0].text == "circles"
    assert seen == [conversation]  # the callable gets the whole conversation, images too


def test_the_response_cache_keys_on_the_images(tmp_path: Path) -> None:
    chat = OpenAIChat("vlm", base_url="http://127.0.0.1:9/v1", cache=tmp_path / "cache.db")
    params = GenerationParams(max_tokens=4)
    red, blue = (chat.request(ask(c), params) for c in ("red", "blue"))
    assert red["messages"] == ask("red")  # the parts go out as they are
    cache = chat.cache
    assert isinstance(cache, ResponseCache)
    cache.put(red, ChatResult("vlm", [Choice("red answer")]))
    assert cache.get(blue) is None
    cache.put(blue, ChatResult("vlm", [Choice("blue answer")]))
    assert len(cache) == 2
    assert cache.get(chat.request(ask("red"), params)).text == "red answer"
    chat.close()


def test_a_text_model_server_answers_image_parts_with_a_400(tiny_model_dir) -> None:
    from posttrain.models.server.app import create_app

    app = create_app(HFChat(tiny_model_dir, device="cpu"))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.post(
            "/v1/chat/completions", json={"messages": ask("red"), "max_tokens": 2}
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert "text-only" in error["message"] and error["code"] == "image_input_not_supported"
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
        assert "ImagePart" not in schemas  # its document offers text parts only


def test_a_second_family_idefics3_generates_through_the_same_code(tmp_path: Path) -> None:
    out = build_tiny_vlm(tmp_path / "idefics3", CORPUS, size="nano", family="idefics3")
    chat = load_chat(str(out), device="cpu")
    assert isinstance(chat, HFVisionChat)
    assert type(chat.model).__name__ == "Idefics3ForConditionalGeneration"
    plain = [{"role": "user", "content": "What is 3 + 2?"}]
    conversations = [ask("red"), plain, ask("blue", "Longer, so that the rows are padded?")]
    params = GenerationParams(max_tokens=3, logprobs=True)
    together = chat.chat(conversations, params)  # per-row pixel values, one row without
    alone = [chat.chat([c], params)[0] for c in conversations]
    for mixed, single in zip(together, alone, strict=True):
        assert mixed.choices[0].token_ids == single.choices[0].token_ids
        assert mixed.choices[0].logprobs == pytest.approx(single.choices[0].logprobs, abs=1e-4)
    # The first log-prob against a forward pass of the processor's own inputs.
    processor = AutoProcessor.from_pretrained(out)
    messages, _ = hf_messages(conversations[0])
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[[picture("red")]], return_tensors="pt")
    with torch.no_grad():
        logits = chat.model(**inputs).logits[0, -1].log_softmax(-1)
    first = together[0].choices[0]
    assert first.logprobs[0] == pytest.approx(logits[first.token_ids[0]].item(), abs=1e-4)
    assert together[0].choices[0].logprobs != together[2].choices[0].logprobs
