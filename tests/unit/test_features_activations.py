"""Pooled activations (posttrain.features.activations) against a plain transformers forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

from posttrain.errors import InputError
from posttrain.features import activations
from posttrain.features.activations import pooled_activations, pooled_from_model, render_texts

PROMPTS = [
    "What is 12 + 7?",
    "Compute 3 + 4 + 5 and give only the number.",
    "1+1",
    "What is 905 + 118? Think about the carries first, then answer.",
    "Add 44 and 56.",
]


@pytest.fixture(scope="module")
def qwen(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def reference(model, tokenizer, texts, layer, pooling):
    """One prompt at a time (no padding at all), read from `output_hidden_states`."""
    rows = []
    for text in texts:
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            states = model(ids, output_hidden_states=True).hidden_states
        hidden = states[layer % model.config.num_hidden_layers + 1][0]
        if pooling == "mean":
            rows.append(hidden.mean(0))
        elif pooling == "last":
            rows.append(hidden[-1])
        else:
            rows.append(hidden.max(0).values)
    return torch.stack(rows).float().numpy()


@pytest.mark.parametrize("pooling", ["mean", "last", "max"])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_batched_pooling_equals_one_prompt_at_a_time(qwen, pooling, padding_side):
    model, tokenizer = qwen
    got = pooled_from_model(
        model, tokenizer, PROMPTS, layer=1, pooling=pooling, batch_size=3, padding_side=padding_side
    )
    assert got.dtype == np.float32 and got.shape == (len(PROMPTS), model.config.hidden_size)
    np.testing.assert_allclose(got, reference(model, tokenizer, PROMPTS, 1, pooling), atol=1e-5)


def test_poolings_differ_and_negative_layers_count_from_the_end(qwen):
    model, tokenizer = qwen
    by_pooling = {p: pooled_from_model(model, tokenizer, PROMPTS, 2, p) for p in ("mean", "last")}
    assert not np.allclose(by_pooling["mean"], by_pooling["last"])
    count = model.config.num_hidden_layers
    np.testing.assert_array_equal(
        pooled_from_model(model, tokenizer, PROMPTS, -2, "mean"),
        pooled_from_model(model, tokenizer, PROMPTS, count - 2, "mean"),
    )


def test_the_last_block_is_read_before_the_final_norm(qwen):
    model, tokenizer = qwen
    got = pooled_from_model(model, tokenizer, PROMPTS[:1], -1, "last")
    ids = torch.tensor([tokenizer(PROMPTS[0], add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        normed = model(ids, output_hidden_states=True).hidden_states[-1][0, -1]
        renormed = model.model.norm(torch.from_numpy(got))[0]
    assert not np.allclose(got[0], normed.numpy(), atol=1e-3)
    np.testing.assert_allclose(renormed, normed, atol=1e-5)


@pytest.mark.parametrize("layer", [4, -5, 100])
def test_a_layer_out_of_range_names_layer_and_the_count(qwen, layer):
    model, tokenizer = qwen
    with pytest.raises(InputError, match=r"layer: layer .* the model has 4 layers"):
        pooled_from_model(model, tokenizer, PROMPTS, layer)


def test_chat_rows_go_through_the_chat_template(qwen):
    _, tokenizer = qwen
    chat = [{"role": "user", "content": "What is 2 + 2?"}]
    texts = render_texts(tokenizer, ["plain", chat, {"prompt": "What is 2 + 2?"}])
    assert texts[0] == "plain"
    expected = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert texts[1] == texts[2] == expected and "<|im_start|>assistant" in expected
    with pytest.raises(InputError, match="row 0 has no 'question' column"):
        render_texts(tokenizer, [{"prompt": "x"}], prompt_key="question")


def test_the_disk_cache_answers_a_rerun_without_a_forward(tiny_model_dir, tmp_path, monkeypatch):
    forwards = []
    real = activations.pooled_from_model

    def counted(*args, **kwargs):
        forwards.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(activations, "pooled_from_model", counted)
    first = pooled_activations(tiny_model_dir, PROMPTS, layer=1, cache_dir=tmp_path)
    again = pooled_activations(tiny_model_dir, PROMPTS, layer=1, cache_dir=tmp_path, batch_size=2)
    assert len(forwards) == 1
    np.testing.assert_array_equal(first, again)
    pooled_activations(tiny_model_dir, PROMPTS, layer=1, pooling="max", cache_dir=tmp_path)
    pooled_activations(tiny_model_dir, PROMPTS[:4], layer=1, cache_dir=tmp_path)
    assert len(forwards) == 3  # another pooling or other data is another key
    model, tokenizer = activations.load_causal_lm(tiny_model_dir, device="cpu")
    np.testing.assert_allclose(first, reference(model, tokenizer, PROMPTS, 1, "mean"), atol=1e-5)


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_a_second_architecture_works_unchanged(tiny_model_dir, tmp_path, padding_side):
    # GPT-2's positions are absolute (not rotary), so left padding needs the mask's positions.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=3, n_head=2,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    got = pooled_activations(
        tmp_path, PROMPTS, layer=-2, pooling="mean", batch_size=3, padding_side=padding_side
    )
    model = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    np.testing.assert_allclose(got, reference(model, tokenizer, PROMPTS, 1, "mean"), atol=1e-5)
    # The default layer comes from GPT-2's own field name (n_layer = 3): the middle block.
    assert activations.middle_layer(tmp_path) == 1


def test_the_model_runs_in_its_own_dtype_and_the_result_is_float32(tiny_model_dir):
    full = pooled_activations(tiny_model_dir, PROMPTS, layer=1)
    half = pooled_activations(tiny_model_dir, PROMPTS, layer=1, dtype=torch.bfloat16)
    assert half.dtype == np.float32 and not np.array_equal(half, full)
    np.testing.assert_allclose(half, full, atol=0.1 * float(np.abs(full).max()))
