import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from posttrain.models.tiny import SIZES, build_tiny_model, count_parameters, tiny_config
from posttrain.models.tokenizer import IM_END, PAD

CORPUS = [f"What is {a} + {b}? {a + b}" for a in range(40) for b in range(0, 40, 7)]


def test_digits_are_single_tokens_and_chat_template_masks_the_assistant(tmp_path):
    path = build_tiny_model(tmp_path / "m", CORPUS, size="nano", vocab_size=300)
    tok = AutoTokenizer.from_pretrained(path)
    pieces = tok.convert_ids_to_tokens(tok("12345 + 678")["input_ids"])
    assert [p for p in pieces if p.strip("Ġ").isdigit()] == list("12345678")
    assert tok.pad_token == PAD and tok.eos_token == IM_END and tok.padding_side == "left"
    encoded = tok.apply_chat_template(
        [{"role": "user", "content": "What is 1 + 2?"}, {"role": "assistant", "content": "3"}],
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    pairs = zip(encoded["input_ids"], encoded["assistant_masks"], strict=True)
    trained_on = [token for token, mask in pairs if mask]
    assert tok.decode(trained_on) == "3" + IM_END


def test_causal_lm_roundtrip_through_save_and_load(tmp_path):
    path = build_tiny_model(tmp_path / "m", CORPUS, size="nano", vocab_size=300, seed=3)
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    ids = torch.tensor([tok("What is 3 + 4?")["input_ids"]])
    logits = model(ids).logits
    model.save_pretrained(tmp_path / "again")
    tok.save_pretrained(tmp_path / "again")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "again")
    assert torch.equal(logits, reloaded(ids).logits)
    assert (
        AutoTokenizer.from_pretrained(tmp_path / "again")("3 + 4")["input_ids"]
        == tok("3 + 4")["input_ids"]
    )
    assert model.config.model_type == "qwen2"
    assert model.generation_config.eos_token_id == tok.eos_token_id


def test_sizes_span_the_promised_range(tmp_path):
    path = build_tiny_model(tmp_path / "m", CORPUS, size="nano", vocab_size=300)
    tok = AutoTokenizer.from_pretrained(path)
    counts = {
        name: count_parameters(AutoModelForCausalLM.from_config(tiny_config(tok, name)))
        for name in SIZES
    }
    assert 5e4 < counts["nano"] < 2e5
    assert 5e6 < counts["small"] < 1.2e7
    assert sorted(counts.values()) == [counts[n] for n in SIZES]


def test_sequence_classifier_gives_one_score_per_sequence(tmp_path):
    path = build_tiny_model(tmp_path / "rm", CORPUS, size="nano", vocab_size=300, kind="seq-cls")
    model = AutoModelForSequenceClassification.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    batch = tok(["1 + 1 = 2", "a much longer text: 2 + 2 = 4"], padding=True, return_tensors="pt")
    assert model(**batch).logits.shape == (2, 1)


def test_long_context_models_read_prompts_past_512_tokens(tmp_path):
    import pytest

    from posttrain.models.chat.base import GenerationParams
    from posttrain.models.generation import LocalGenerator

    path = build_tiny_model(tmp_path / "m", CORPUS, size="nano", vocab_size=300, max_positions=1024)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.max_position_embeddings == 1024 and tok.model_max_length == 1024
    prompt = tok(" ".join(["7"] * 350))["input_ids"]
    assert 600 < len(prompt) < 1000
    [[choice]] = LocalGenerator(model, tok).generate([prompt], GenerationParams(max_tokens=3))
    assert len(choice.token_ids) >= 1
    with pytest.raises(ValueError, match="max_positions"):
        build_tiny_model(tmp_path / "bad", CORPUS, size="nano", max_positions=4)
