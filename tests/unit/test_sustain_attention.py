"""Attention share on the constraint tokens: by hand, and on the tiny model."""

from __future__ import annotations

import pytest
import torch

from posttrain.eval.sustain.attention import (
    attention_share,
    compare,
    constraint_attention_share,
    load_eager,
    token_span,
)


def _uniform_causal(t: int, heads: int = 2) -> torch.Tensor:
    rows = torch.tril(torch.ones(t, t))
    return (rows / rows.sum(-1, keepdim=True)).expand(1, heads, t, t)


def test_share_by_hand_on_uniform_causal_attention() -> None:
    layers = [_uniform_causal(5), _uniform_causal(5)]
    # query 3 spreads 1/4 over keys 0..3, query 4 1/5 over 0..4: keys {1, 2} get 2/4 and 2/5.
    assert attention_share(layers, [1, 2], [3, 4]) == pytest.approx((2 / 4 + 2 / 5) / 2)
    with pytest.raises(ValueError):
        attention_share(layers, [], [3])


def test_token_span_uses_character_overlap() -> None:
    offsets = [(0, 3), (3, 7), (7, 7), (7, 12), (12, 15)]
    assert token_span(offsets, 4, 10) == [1, 3]
    assert token_span(offsets, 15, 20) == []


def test_share_on_tiny_model_matches_a_direct_recomputation(tiny_model_dir) -> None:
    model, tokenizer = load_eager(tiny_model_dir)
    constraint = "Also follow these instructions:\n- Answer with at most 5 words."
    prompt = f"What is 3 + 4?\n\n{constraint}"
    share = constraint_attention_share(model, tokenizer, prompt, constraint, "7 is it")
    assert share is not None and 0.0 < share < 1.0
    # Recompute directly: render, tokenise, forward, and loop over layers and heads.
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )
    enc = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    start = rendered.rfind(constraint)
    keys = [
        i
        for i, (s, e) in enumerate(enc["offset_mapping"])
        if e > s and s < start + len(constraint) and e > start
    ]
    answer = tokenizer("7 is it", add_special_tokens=False)["input_ids"]
    ids = enc["input_ids"] + answer
    with torch.no_grad():
        att = model(torch.tensor([ids]), output_attentions=True).attentions
    values = [
        float(layer[0, h, q, keys].sum())
        for layer in att
        for h in range(layer.shape[1])
        for q in range(len(enc["input_ids"]), len(ids))
    ]
    assert share == pytest.approx(sum(values) / len(values), abs=1e-5)
    # The prompt and answer together take all the attention of every answer token.
    prompt_keys = list(range(len(enc["input_ids"])))
    answer_keys = list(range(len(enc["input_ids"]), len(ids)))
    queries = answer_keys
    total = attention_share(att, prompt_keys, queries) + attention_share(att, answer_keys, queries)
    assert total == pytest.approx(1.0, abs=1e-5)
    assert constraint_attention_share(model, tokenizer, prompt, constraint, "") is None


def test_compare_groups_by_outcome() -> None:
    out = compare(
        [
            {"correct": True, "share": 0.2},
            {"correct": False, "share": 0.4},
            {"correct": False, "share": 0.6},
            {"correct": True, "share": None},
        ]
    )
    assert out["stayed_solved"] == {"n": 1, "mean_share": 0.2}
    assert out["failed"]["n"] == 2 and out["failed"]["mean_share"] == pytest.approx(0.5)


def test_pipeline_attention_stage_on_solved_variants(tmp_path) -> None:
    from posttrain.data.arithmetic import ArithmeticTask, tokenizer_corpus
    from posttrain.eval.core import ItemLog
    from posttrain.eval.sustain import scripted, tasks
    from posttrain.eval.sustain.pipeline import _attention, make_variants
    from posttrain.models.tiny import build_tiny_model

    # A context long enough for a word problem with its constraints and answer.
    model_dir = build_tiny_model(
        tmp_path / "model", tokenizer_corpus(ArithmeticTask()), size="micro", max_positions=2048
    )

    items = {it["key"]: it for it in tasks.make_items("math", 2, 0)}
    baseline = []
    for key, item in items.items():
        answer = scripted.respond([{"role": "user", "content": item["prompt"]}])
        baseline.append({"key": key, "correct": True, "answer": answer})
    variants, _ = make_variants(items, baseline, 2, seed=0)
    done = {
        v["key"]: {
            "answer": scripted.respond([{"role": "user", "content": v["prompt"]}]),
            "correct": v["k"] == 1,
        }
        for v in variants
    }
    records = _attention(model_dir, variants, done, ItemLog(tmp_path / "attention.jsonl"))
    assert [r["key"] for r in records] == [v["key"] for v in variants]
    shares = [r["share"] for r in records]
    assert all(s is not None and 0.0 < s < 1.0 for s in shares)
    summary = compare(records)
    assert summary["stayed_solved"]["n"] == 2 and summary["failed"]["n"] == 2
