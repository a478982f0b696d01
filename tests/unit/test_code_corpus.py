"""The code LM corpus: stdlib sources, long-range recall sequences, the file split, blocks."""

from __future__ import annotations

import re

import pytest
import torch

from posttrain.data.code_corpus import (
    CodeCorpusConfig,
    aligned_blocks,
    build_lm_corpus,
    recall_sequences,
    stdlib_root,
    stdlib_sources,
    token_blocks,
)
from posttrain.models.tokenizer import train_tokenizer


def test_stdlib_sources_are_deterministic_and_skip_tests():
    a = stdlib_sources(max_files=8, max_chars=1500, seed=3)
    b = stdlib_sources(max_files=8, max_chars=1500, seed=3)
    other = stdlib_sources(max_files=8, max_chars=1500, seed=4)
    assert a == b
    assert [f.name for f in a] != [f.name for f in other]
    assert [f.name for f in a] == sorted(f.name for f in a)
    assert 1 <= len(a) <= 8
    for f in a:
        parts = f.name.split("/")
        assert f.name.endswith(".py")
        assert not {"test", "tests", "site-packages"} & set(parts[:-1])
        assert 0 < len(f.text) <= 1500 and f.text.strip()
        assert (stdlib_root() / f.name).read_text(encoding="utf-8").startswith(f.text)


def test_recall_sequences_hold_their_answers_after_their_keys():
    items = recall_sequences(5, length_chars=600, seed=1, n_pairs=4)
    assert items[0].text == recall_sequences(5, 600, seed=1, n_pairs=4)[0].text
    for item in items:
        assert 500 <= len(item.text) <= 700
        assert len(item.answer_spans) == len(item.keys) == len(item.values) == 4
        for key, value, (start, end), (k0, k1) in zip(
            item.keys, item.values, item.answer_spans, item.key_spans, strict=True
        ):
            assert item.text[start:end] == value
            # the query repeats the assignment's line word for word
            line = f'{key} = "{value}"\n'
            assert item.text[start - len(key) - 4 : end + 2] == line
            assert item.text[k0:k1] == key and k1 < start
            assert item.text[k0 : k0 + len(line)] == line
            # the answer is far back: filler lies between the assignment and the query
            assert start - k1 > 300
        assert len(set(item.keys)) == len(item.keys)


def test_recall_queries_repeat_the_passage_in_order_unless_shuffled():
    (ordered,) = recall_sequences(1, 800, seed=2, n_pairs=6, value_chars=8)
    head, _, tail = ordered.text.partition("# recall\n")
    assert tail == head.removeprefix("# remember these\n")[: len(tail)]  # the passage again
    assert all(len(v) == 8 for v in ordered.values)
    shuffled = recall_sequences(8, 800, seed=2, n_pairs=6, in_order=False)
    assert any(
        item.keys != sorted(item.keys, key=lambda k: item.text.index(f"{k} =")) for item in shuffled
    )
    with pytest.raises(ValueError, match="value_chars"):
        recall_sequences(1, 800, value_chars=0)


def test_recall_filler_comes_from_the_given_sources():
    source = "def alpha():\n    return 1\n" * 40
    (item,) = recall_sequences(1, length_chars=800, seed=0, n_pairs=2, filler_sources=[source])
    assert "return 1" in item.text
    assert not re.search(r"\bfor \w+ in range\(", item.text)


@pytest.fixture(scope="module")
def corpus():
    cfg = CodeCorpusConfig(
        n_files=10,
        max_chars=1500,
        heldout_fraction=0.3,
        recall_mix=0.3,
        seq_tokens=48,
        n_recall_heldout=3,
        n_pairs=3,
        seed=5,
    )
    return cfg, build_lm_corpus(cfg)


def test_build_lm_corpus_splits_by_file_and_is_deterministic(corpus):
    cfg, data = corpus
    assert set(data) >= {"train", "heldout", "recall_heldout", "train_files", "heldout_files"}
    assert not set(data["train_files"]) & set(data["heldout_files"])
    assert len(data["heldout_files"]) == 3 and len(data["train_files"]) >= 1
    files = {f.name: f.text for f in stdlib_sources(cfg.n_files, cfg.max_chars, cfg.seed)}
    assert sorted(files) == sorted(data["train_files"] + data["heldout_files"])
    assert data["heldout"] == [files[n] for n in data["heldout_files"]]
    for name in data["heldout_files"]:
        assert files[name] not in data["train"]
    for name in data["train_files"]:
        assert files[name] in data["train"]
    recall_train = [t for t in data["train"] if t.startswith("# remember these\n")]
    assert recall_train and len(data["recall_heldout"]) == 3
    recall_chars = sum(map(len, recall_train))
    assert 0.2 < recall_chars / sum(map(len, data["train"])) < 0.45
    again = build_lm_corpus(cfg)
    assert again["train"] == data["train"] and again["heldout"] == data["heldout"]
    assert sorted(data["train_code"] + data["recall_train"]) == sorted(data["train"])
    assert sorted(data["recall_train"]) == sorted(recall_train)
    assert [r.text for r in again["recall_heldout"]] == [r.text for r in data["recall_heldout"]]


def test_token_blocks_concatenate_with_eos(corpus):
    _, data = corpus
    tok = train_tokenizer(data["train"][:6], vocab_size=300)
    texts = data["heldout"]
    blocks = token_blocks(tok, texts, block_size=16)
    ids = [i for t in texts for i in (*tok(t, add_special_tokens=False)["input_ids"], -1)]
    ids = [tok.eos_token_id if i == -1 else i for i in ids]
    assert blocks.dtype == torch.long and blocks.shape == (len(ids) // 16, 16)
    assert blocks.reshape(-1).tolist() == ids[: blocks.numel()]
    assert int((blocks == tok.eos_token_id).sum()) >= len(texts) - 1
    with pytest.raises(ValueError, match="do not fill"):
        token_blocks(tok, ["a"], block_size=64)


def test_aligned_blocks_start_each_text_and_fill_with_the_other_stream(corpus):
    _, data = corpus
    tok = train_tokenizer(data["train"][:6], vocab_size=300)
    eos = tok.eos_token_id
    encoded = [tok(t, add_special_tokens=False)["input_ids"] for t in data["recall_train"]]
    block = max(map(len, encoded)) - 1  # the longest recall text does not fit
    fill = [100 + i for i in range(37)]  # a short stream, so the fill wraps around
    blocks, skipped = aligned_blocks(tok, data["recall_train"], block, fill)
    fits = [ids for ids in encoded if len(ids) + 1 <= block]
    assert skipped == len(encoded) - len(fits) >= 1
    assert blocks.shape == (len(fits), block)
    at = 0
    for row, ids in zip(blocks.tolist(), fits, strict=True):
        assert row[: len(ids) + 1] == [*ids, eos]  # the whole text first, never cut
        rest = row[len(ids) + 1 :]
        assert rest == [fill[(at + i) % len(fill)] for i in range(len(rest))]
        at = (at + len(rest)) % len(fill)
    with pytest.raises(ValueError, match="recall_fill"):
        aligned_blocks(tok, data["recall_train"], 4, fill)
    with pytest.raises(ValueError, match="fill"):
        aligned_blocks(tok, data["recall_train"], block, [])
