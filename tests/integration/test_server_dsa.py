"""`posttrain serve --attn-implementation posttrain_sparse` on a tiny GLM-5 DSA model
(transformers' GlmMoeDsaForCausalLM, cross-layer top-k sharing through `indexer_types`), as a
real subprocess driven by the `openai` client, against in-process generation under SDPA."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from openai import OpenAI
from transformers import GlmMoeDsaConfig, GlmMoeDsaForCausalLM

from posttrain.data.arithmetic import ArithmeticTask, tokenizer_corpus
from posttrain.models.chat.base import GenerationParams
from posttrain.models.chat.hf import HFChat
from posttrain.models.server_process import ServerProcess, serve_model
from posttrain.models.tokenizer import train_tokenizer

PATTERN = ["full", "shared", "full", "shared"]
TOPK = 16
CONTEXT = 1024
MAX_TOKENS = 12
# A long prompt: several hundred tokens, so every late query picks 16 of hundreds of keys.
PROMPT = [
    {
        "role": "user",
        "content": " ".join(f"{a}+{a * 7 % 13}={a + a * 7 % 13}." for a in range(60))
        + " What is 12+7?",
    }
]


@pytest.fixture(scope="module")
def dsa_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-glm-dsa")
    tokenizer = train_tokenizer(tokenizer_corpus(ArithmeticTask()), model_max_length=CONTEXT)
    config = GlmMoeDsaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        moe_intermediate_size=32,
        num_hidden_layers=len(PATTERN),
        num_attention_heads=4,
        num_key_value_heads=4,
        n_routed_experts=4,
        num_experts_per_tok=2,
        n_group=1,
        topk_group=1,
        kv_lora_rank=16,
        q_lora_rank=24,
        qk_rope_head_dim=8,
        qk_nope_head_dim=8,
        v_head_dim=8,
        index_topk=TOPK,
        index_head_dim=16,
        index_n_heads=8,
        first_k_dense_replace=1,
        max_position_embeddings=CONTEXT,
        initializer_range=0.3,  # peaked logits: greedy argmax far from float ties
        indexer_types=PATTERN,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    model = GlmMoeDsaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def server(
    dsa_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("dsa-server") / "server.log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        proc = serve_model(
            dsa_model_dir, "--attn-implementation", "posttrain_sparse", log_path=log
        ).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_sparse_server_matches_local_sdpa_generation(
    server: ServerProcess, dsa_model_dir: Path
) -> None:
    saved = json.loads((dsa_model_dir / "config.json").read_text())
    assert saved["indexer_types"] == PATTERN
    local_chat = HFChat(dsa_model_dir, attn_implementation="sdpa")
    assert local_chat.model.config.indexer_types == PATTERN
    prompt_ids = local_chat.encode(PROMPT)
    assert len(prompt_ids) > 300 > TOPK
    params = GenerationParams(temperature=0.0, max_tokens=MAX_TOKENS)
    [local] = local_chat.chat([PROMPT], params)[0].choices
    assert local.token_ids  # a non-trivial answer to compare

    with OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120) as api:
        response = api.chat.completions.create(
            model=dsa_model_dir.name, messages=PROMPT, temperature=0, max_tokens=MAX_TOKENS
        )
    served = response.choices[0]
    assert response.usage.prompt_tokens == len(prompt_ids)
    assert served.token_ids == local.token_ids
    assert served.message.content == local.text

    # The selection matters for this prompt: dense attention (top-k covering every key)
    # answers otherwise, so the equal answer above came through sparse attention.
    dense_model = GlmMoeDsaForCausalLM.from_pretrained(
        dsa_model_dir, attn_implementation="sdpa", index_topk=CONTEXT
    )
    [dense] = (
        HFChat.from_model(dense_model, local_chat.tokenizer, name="dense")
        .chat([PROMPT], params)[0]
        .choices
    )
    assert dense.token_ids != local.token_ids


@pytest.mark.parametrize("flag", [None, "posttrain_sparse"])
def test_serve_command_loads_with_the_named_implementation(
    flag: str | None, dsa_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import posttrain.models.server
    from posttrain.cli import app

    calls: list[dict] = []
    monkeypatch.setattr(
        posttrain.models.server, "serve", lambda *args, **kwargs: calls.append(kwargs)
    )
    extra = ["--attn-implementation", flag] if flag else []
    done = CliRunner().invoke(app, ["serve", str(dsa_model_dir), *extra])
    assert done.exit_code == 0, done.output
    assert [call["attn_implementation"] for call in calls] == [flag]
    if flag:  # the name the CLI registered loads the model with the gathered kernel
        chat = HFChat(dsa_model_dir, attn_implementation=flag)
        assert chat.model.config._attn_implementation == flag
        assert chat.model.config.indexer_types == PATTERN
