"""The `posttrain_sparse` attention implementation on transformers' own DSA models.

Every check compares against transformers' SDPA path on the same weights: there the indexer's
top-k becomes a full L x L mask over dense attention, an implementation independent of the
gathered kernel under test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from nano_dsa import FIELDS, LENGTH, VOCAB
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import (
    AutoModelForCausalLM,
    DeepseekV32Config,
    DeepseekV32ForCausalLM,
    GlmMoeDsaConfig,
    GlmMoeDsaForCausalLM,
)

from posttrain.attention import sparse_kernel
from posttrain.attention.sparse_kernel import NAME, sparse_attention_forward

ATOL = 5e-5  # float32 round-off on logits of magnitude ~7 (summation order differs)
SMALL = {**FIELDS, "n_group": 1}


ARCHITECTURES = {
    "glm_moe_dsa": (
        GlmMoeDsaForCausalLM,
        GlmMoeDsaConfig(**SMALL, indexer_types=["full", "shared", "full", "shared"]),
    ),
    "deepseek_v32": (DeepseekV32ForCausalLM, DeepseekV32Config(**SMALL)),
}


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cls, config = ARCHITECTURES[request.param]
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp(request.param)
    cls(config).eval().save_pretrained(out)
    return out


def load(model_dir: Path, attn: str, **overrides: object) -> torch.nn.Module:
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, attn_implementation=attn, dtype=torch.float32, **overrides
    )
    assert model.config._attn_implementation == attn
    return model.eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (batch, length), generator=generator)


@torch.no_grad()
def logits(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor | None = None):
    if mask is None:
        return model(input_ids=ids).logits
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return model(input_ids=ids, attention_mask=mask, position_ids=positions).logits


def test_sparse_logits_equal_sdpa_with_the_same_top_k(model_dir: Path) -> None:
    ids = tokens(2, LENGTH)
    sparse = logits(load(model_dir, NAME), ids)
    sdpa = logits(load(model_dir, "sdpa"), ids)
    torch.testing.assert_close(sparse, sdpa, atol=ATOL, rtol=0)
    # The top-k matters here: dense attention over every key gives other logits.
    dense = logits(load(model_dir, "sdpa", index_topk=LENGTH), ids)
    assert (dense - sdpa).abs().max() > 1000 * ATOL


def test_top_k_covering_every_key_is_dense_attention(model_dir: Path) -> None:
    # With index_topk >= L the indexer returns all L positions (topk = min(k, L)), so its
    # scattered mask hides nothing and SDPA's path is plain causal attention; on ours every
    # key is gathered and only the causal mask removes the future ones.
    ids = tokens(2, LENGTH)
    sparse = logits(load(model_dir, NAME, index_topk=LENGTH + 5), ids)
    dense = logits(load(model_dir, "sdpa", index_topk=LENGTH + 5), ids)
    torch.testing.assert_close(sparse, dense, atol=ATOL, rtol=0)


def test_left_padded_batch_equals_each_row_alone(model_dir: Path) -> None:
    model = load(model_dir, NAME)
    lengths = [LENGTH, LENGTH - 13, 5]  # the last sees fewer keys than TOPK everywhere
    ids = tokens(len(lengths), LENGTH)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, : LENGTH - n] = 0
        mask[row, LENGTH - n :] = 1
    padded = logits(model, ids, mask)
    assert torch.isfinite(padded[mask.bool()]).all()
    for row, n in enumerate(lengths):
        alone = logits(model, ids[row : row + 1, LENGTH - n :])
        torch.testing.assert_close(padded[row, LENGTH - n :], alone[0], atol=1e-4, rtol=0)
    sdpa = logits(load(model_dir, "sdpa"), ids, mask)
    real = mask.bool()
    torch.testing.assert_close(padded[real], sdpa[real], atol=1e-4, rtol=0)


def test_cached_greedy_decoding_matches_sdpa(model_dir: Path) -> None:
    ids = tokens(2, 24, seed=3)
    mask = torch.ones_like(ids)
    mask[1, :6] = 0  # left padding, as the server batches prompts
    runs = {}
    for attn in (NAME, "sdpa"):
        with torch.no_grad():
            runs[attn] = load(model_dir, attn).generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=8,
                min_new_tokens=8,
                do_sample=False,
                return_dict_in_generate=True,
                output_logits=True,
                pad_token_id=0,
            )
    sparse, sdpa = runs[NAME], runs["sdpa"]
    assert sparse.sequences.shape[1] == ids.shape[1] + 8
    assert torch.equal(sparse.sequences, sdpa.sequences)
    for step_sparse, step_sdpa in zip(sparse.logits, sdpa.logits, strict=True):
        torch.testing.assert_close(step_sparse, step_sdpa, atol=1e-4, rtol=0)


def test_dense_models_fall_back_to_sdpa(tmp_path: Path) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # GQA through SDPA's own handling
    )
    Qwen2ForCausalLM(config).save_pretrained(tmp_path)
    ids = tokens(2, 16)
    ours = Qwen2ForCausalLM.from_pretrained(tmp_path, attn_implementation=NAME).eval()
    sdpa = Qwen2ForCausalLM.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    torch.testing.assert_close(logits(ours, ids), logits(sdpa, ids), atol=ATOL, rtol=0)


class _Module(torch.nn.Module):
    num_key_value_groups = 2


def _reference(query, key, value, mask, indices, scaling):
    """Dense attention with everything outside each query's gathered set masked."""
    group = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(group, 1), value.repeat_interleave(group, 1)
    picked = torch.zeros(mask.shape[0], mask.shape[2], mask.shape[3], dtype=torch.bool)
    picked.scatter_(-1, indices.long(), True)
    allowed = (mask[:, 0] & picked)[:, None]
    scores = (query @ key.transpose(-1, -2) * scaling).masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, -1).nan_to_num(0.0)
    return (weights @ value).transpose(1, 2)


@pytest.mark.parametrize("chunk", [3, 256])
def test_kernel_equals_masked_dense_attention_with_gqa(chunk: int) -> None:
    torch.manual_seed(0)
    batch, heads, kv_heads, q_len, k_len, dim = 2, 4, 2, 7, 12, 8
    query = torch.randn(batch, heads, q_len, dim)
    key, value = torch.randn(2, batch, kv_heads, k_len, dim).unbind(0)
    causal = torch.ones(q_len, k_len, dtype=torch.bool).tril(k_len - q_len)
    mask = causal.expand(batch, 1, q_len, k_len).clone()
    mask[1, ..., :4] = False  # left padding: row 1's first queries see no key at all
    indices = torch.stack([torch.randperm(k_len)[:5] for _ in range(batch * q_len)])
    indices = indices.view(batch, q_len, 5).int()
    out, weights = sparse_attention_forward(
        _Module(), query, key, value, mask, scaling=0.3, indices=indices, query_chunk=chunk
    )
    assert weights is None
    expected = _reference(query, key, value, mask, indices, 0.3)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    # The same mask as an additive float mask (what eager-style callers pass).
    additive = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    out_float, _ = sparse_attention_forward(
        _Module(), query, key, value, additive, scaling=0.3, indices=indices, query_chunk=chunk
    )
    torch.testing.assert_close(out_float, expected, atol=1e-5, rtol=0)


class _LargestNewTensor(TorchDispatchMode):
    """Records the largest tensor storage the traced code allocates (views of its inputs
    share their storage and are not counted)."""

    def __init__(self, inputs: list[torch.Tensor]) -> None:
        super().__init__()
        self.inputs = {t.untyped_storage().data_ptr() for t in inputs}
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                if storage.data_ptr() not in self.inputs:
                    self.largest = max(self.largest, storage.nbytes() // tensor.element_size())
        return out


def _largest_tensor(query_chunk: int) -> tuple[int, int]:
    batch, heads, length, dim, k = 1, 2, 2048, 16, 32
    torch.manual_seed(0)
    query = torch.randn(batch, heads, length, dim)
    key, value = torch.randn(2, batch, heads, length, dim).unbind(0)
    mask = torch.ones(length, length, dtype=torch.bool).tril()[None, None]
    rows = torch.arange(length)[:, None]
    indices = ((rows - torch.arange(k)[None]) % length)[None].int()  # the k latest keys
    inputs = [query, key, value, mask, indices]
    with _LargestNewTensor(inputs) as mode:
        sparse_attention_forward(
            _Module(), query, key, value, mask, indices=indices, query_chunk=query_chunk
        )
    return mode.largest, batch * heads * length * length


def test_no_query_by_key_tensor_is_built() -> None:
    largest, full = _largest_tensor(sparse_kernel.QUERY_CHUNK)
    # One chunk's gathered keys: B * 256 * k * H * d = 262144 elements, an eighth of what an
    # unchunked gather builds and a thirty-second of one L x L score tensor per head.
    bound = full // 16
    assert largest <= bound
    unchunked, _ = _largest_tensor(2048)
    assert unchunked > bound  # the bound does see a whole-sequence gather
