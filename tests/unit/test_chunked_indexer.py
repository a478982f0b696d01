"""The lightning indexer run over query chunks: the same keys, so the same logits.

Each check compares a model with `chunked_indexers` against the same model without it, under
the gathered kernel (which reads the indices) and under transformers' SDPA path (which turns
them into a mask). Chunks of 5 are smaller than the top-8, so the first chunk's padding of the
picks is exercised; the top-k matters on these weights (`test_sparse_kernel` shows it).
"""

from __future__ import annotations

import pytest
import torch
from nano_dsa import FIELDS, VOCAB
from transformers import (
    DeepseekV32Config,
    DeepseekV32ForCausalLM,
    DynamicCache,
    GlmMoeDsaConfig,
    GlmMoeDsaForCausalLM,
)

from posttrain.attention import sparse_kernel
from posttrain.attention.chunked_indexer import chunked_indexers

SMALL = {**FIELDS, "n_group": 1}
ARCHITECTURES = {
    "glm_moe_dsa": lambda: GlmMoeDsaForCausalLM(
        GlmMoeDsaConfig(**SMALL, indexer_types=["full", "shared", "full", "shared"])
    ),
    "deepseek_v32": lambda: DeepseekV32ForCausalLM(DeepseekV32Config(**SMALL)),
}
ATOL = 1e-5


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def model(request: pytest.FixtureRequest) -> torch.nn.Module:
    torch.manual_seed(0)
    return ARCHITECTURES[request.param]().eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def forward(model, chunk: int | None, **inputs) -> torch.Tensor:
    if chunk is None:
        return model(**inputs).logits
    with chunked_indexers(model, chunk):
        return model(**inputs).logits


@pytest.mark.parametrize("attn", [sparse_kernel.NAME, "sdpa"])
def test_chunked_prefill_gives_the_same_logits(model, attn: str) -> None:
    model.set_attn_implementation(attn)
    ids = tokens(2, 45)
    mask = torch.ones_like(ids)
    mask[1, :7] = 0  # left padding
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    # No cache: the chunks' keys are gathered by the module's own stand-in.
    inputs = dict(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
    whole = forward(model, None, **inputs)
    real = mask.bool()
    for chunk in (5, 16):
        chunked = forward(model, chunk, **inputs)
        torch.testing.assert_close(chunked[real], whole[real], atol=ATOL, rtol=0)


def test_prefill_after_a_cache_and_the_next_decode_step(model) -> None:
    model.set_attn_implementation(sparse_kernel.NAME)
    ids = tokens(1, 50, seed=2)
    caches = [DynamicCache(config=model.config) for _ in range(2)]
    outputs = []
    for cache, chunk in zip(caches, (None, 7), strict=True):
        forward(model, None, input_ids=ids[:, :12], cache=cache, use_cache=True)
        prefill = forward(model, chunk, input_ids=ids[:, 12:], cache=cache, use_cache=True)
        step = forward(model, chunk, input_ids=ids[:, -1:], cache=cache, use_cache=True)
        outputs.append((prefill, step))
    (whole, whole_step), (chunked, chunked_step) = outputs
    torch.testing.assert_close(chunked, whole, atol=ATOL, rtol=0)
    # The real cache was appended to chunk by chunk and holds what one call leaves.
    torch.testing.assert_close(chunked_step, whole_step, atol=ATOL, rtol=0)


def test_the_indexer_runs_once_a_chunk_and_is_restored(model) -> None:
    model.set_attn_implementation(sparse_kernel.NAME)
    indexer = next(
        layer.self_attn.indexer for layer in model.model.layers if layer.self_attn.indexer
    )
    seen: list[int] = []
    original = type(indexer).forward

    def counting(self, hidden_states, *args, **kwargs):
        if self is indexer:
            seen.append(hidden_states.shape[1])
        return original(self, hidden_states, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(indexer), "forward", counting)
        forward(model, 16, input_ids=tokens(1, 45))
        assert seen == [16, 16, 13]
        seen.clear()
        forward(model, None, input_ids=tokens(1, 45))
        assert seen == [45]  # given back: one call over every query
    with pytest.raises(ValueError, match="chunk"), chunked_indexers(model, 0):
        pass
