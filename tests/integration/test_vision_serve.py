"""`posttrain serve` of a vision-language model directory, as a real subprocess: image
content parts through the official `openai` client and through OpenAIChat."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from PIL import Image

from posttrain.models.chat.base import GenerationParams
from posttrain.models.chat.images import image_part, png_bytes, text_part
from posttrain.models.chat.openai_chat import OpenAIChat
from posttrain.models.chat.spec import load_chat
from posttrain.models.server_process import ServerProcess, serve_model
from posttrain.models.tiny_vlm import build_tiny_vlm

CORPUS = ["Step 1: There are 3 red circles.", "Step 2: 3 + 2 = 5.", "Answer: 5"] * 4


def conversation(colour: str) -> list[dict]:
    image = Image.new("RGB", (64, 64), "white")
    image.paste(Image.new("RGB", (24, 24), colour), (8, 8))
    # Real PNG bytes with a text chunk, as the MM-THEBench renderer writes them.
    png = png_bytes(image, {"posttrain-scene": '{"objects": []}'})
    return [{"role": "user", "content": [image_part(png), text_part("How many squares?")]}]


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"), CORPUS, seed=1)


@pytest.fixture(scope="module")
def server(vlm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("vision-server") / "server.log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")  # as test_server: one thread for a micro model
        proc = serve_model(vlm_dir, "--device", "cpu", log_path=log).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_served_vlm_answers_a_png_as_in_process_generation(
    server: ServerProcess, vlm_dir: Path
) -> None:
    local = load_chat(str(vlm_dir), device="cpu")
    messages = [conversation("red"), conversation("blue")]
    expected = local.chat(messages, GenerationParams(max_tokens=8, logprobs=True))
    assert expected[0].choices[0].logprobs != expected[1].choices[0].logprobs
    with OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=60) as api:
        for message, reference in zip(messages, expected, strict=True):
            response = api.chat.completions.create(
                model=vlm_dir.name,
                messages=message,
                max_tokens=8,
                temperature=0,
                logprobs=True,
                top_logprobs=2,
            )
            [choice] = response.choices
            assert choice.message.content == reference.text
            assert choice.token_ids == reference.choices[0].token_ids
            served = [entry.logprob for entry in choice.logprobs.content]
            assert served == pytest.approx(reference.choices[0].logprobs, abs=1e-4)
            # Greedy: the likeliest alternative (a forward pass with the image) is the token.
            for entry in choice.logprobs.content:
                assert len(entry.top_logprobs) == 2
                assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob, abs=1e-4)
    schemas = httpx.get(f"{server.url}/openapi.json").json()["components"]["schemas"]
    assert {"ImagePart", "ImageURL"} <= set(schemas)


def test_openai_chat_sends_parts_and_caches_per_image(
    server: ServerProcess, vlm_dir: Path, tmp_path: Path
) -> None:
    params = GenerationParams(max_tokens=4)
    local = load_chat(str(vlm_dir), device="cpu").chat([conversation("green")], params)[0]

    def served_requests() -> int:
        return httpx.get(f"{server.url}/stats").json()["requests"]

    with OpenAIChat(vlm_dir.name, base_url=server.base_url, cache=tmp_path / "c.db") as chat:
        before = served_requests()
        green, black = chat.chat([conversation("green"), conversation("black")], params)
        assert green.choices[0].token_ids == local.choices[0].token_ids
        assert served_requests() == before + 2 and len(chat.cache) == 2
        again = chat.chat([conversation("black")], params)[0]
        assert served_requests() == before + 2  # answered from the cache
        assert again.choices[0].token_ids == black.choices[0].token_ids


def test_a_bad_image_is_a_400_naming_it(server: ServerProcess) -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        json={"messages": [{"role": "user", "content": [part]}], "max_tokens": 2},
    )
    assert response.status_code == 400
    assert "no readable image" in response.json()["error"]["message"]
