"""Tiny models of transformers' real DSA architectures, and configs in the published shape.

Where `tests/data/dsa/*.json` come from: the field lists of `zai-org/GLM-5` and
`deepseek-ai/DeepSeek-V3.2-Exp` config.json as quoted by other projects (xLLM's GLM-5 model
arguments; test fixtures of Megatron-Lite, vLLM-based and Rust/Swift ports quoting the
published files), checked against transformers' own `GlmMoeDsaConfig` / `DeepseekV32Config`.
Only sizes are shrunk (hidden, ranks, head dims, experts, layers, vocabulary, index_topk/heads);
names, value types, RoPE (GLM-5: `rope_parameters` default, theta 1e6; DeepSeek: the legacy
`rope_scaling` YaRN block with factor 40 over 4096 and `rope_theta` 1e4) and routing rules are
the published ones. Not confirmed: whether `zai-org/GLM-5` itself carries the IndexCache fields
(`index_topk_freq` 4, `index_skip_topk_offset` 3, `index_share_for_mtp_iteration`): they are
quoted from GLM-5.x (GLM-5.2) configs, and transformers reads the first two; GLM-5's exact
`rope_theta` (1e6 here; 8e6 in GLM-5.2 quotes) and `head_dim` (ignored by transformers). The
DeepSeek `quantization_config` (FP8 weights) is left out: it would need a GPU quantizer.
"""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from posttrain.attention.hf_dsa import count_indexer_calls, pattern_of
from posttrain.models.tiny_dsa import DSA_SIZES, build_tiny_dsa_model, tiny_dsa_config
from posttrain.models.tokenizer import IM_END, train_tokenizer

CORPUS = [f"What is {a} + {b}? {a + b}" for a in range(30) for b in range(0, 30, 7)]
DATA = Path(__file__).resolve().parents[1] / "data" / "dsa"


@pytest.mark.parametrize("arch", ["glm_moe_dsa", "deepseek_v32"])
def test_builder_output_loads_and_generates_like_a_cacheless_greedy_loop(tmp_path, arch):
    path = build_tiny_dsa_model(tmp_path / arch, CORPUS, arch=arch, size="nano", vocab_size=300)
    config = AutoConfig.from_pretrained(path)
    assert (config.n_routed_experts, config.n_shared_experts, config.num_experts_per_tok) == (
        4,
        1,
        2,
    )
    assert config.mlp_layer_types[0] == "dense" and "sparse" in config.mlp_layer_types
    assert config.qk_rope_head_dim <= config.index_head_dim == 32
    assert config.index_n_heads == 4 and config.index_topk == 64
    assert config.max_position_embeddings >= 8192
    rope = config.rope_parameters
    if arch == "glm_moe_dsa":
        assert rope["rope_type"] == "default" and pattern_of(config) == "FFFF"
    else:
        assert rope["rope_type"] == "yarn" and rope["factor"] == 40.0
        assert config.max_position_embeddings == 40 * rope["original_max_position_embeddings"]
    # A top-4 copy of the same model, so that the prompt below is really attended sparsely.
    sparse = replace(DSA_SIZES["nano"], index_topk=4)
    path = build_tiny_dsa_model(tmp_path / "k4", CORPUS, arch=arch, size=sparse, vocab_size=300)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    assert model.config.index_topk == 4 and tok.eos_token == IM_END
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is 3 + 4?"}],
        add_generation_prompt=True,
        return_dict=True,
        return_tensors="pt",
    )["input_ids"]
    generated = model.generate(ids, max_new_tokens=6, do_sample=False, min_new_tokens=6)
    # Reference: the same greedy choice recomputed from scratch each step (no KV or index cache).
    expected = ids
    with torch.no_grad():
        for _ in range(6):
            nxt = model(expected, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            expected = torch.cat([expected, nxt], dim=-1)
    assert ids.shape[1] > 4 and torch.equal(generated, expected)


def test_sizes_grow_and_patterns_need_sharing(tmp_path):
    tok = train_tokenizer(CORPUS, vocab_size=300)
    counts = [
        sum(
            p.numel()
            for p in AutoModelForCausalLM.from_config(
                tiny_dsa_config(tok, "glm_moe_dsa", s)
            ).parameters()
        )
        for s in DSA_SIZES
    ]
    assert counts == sorted(counts) and counts[0] < 5e5
    config = tiny_dsa_config(tok, "glm_moe_dsa", "nano", indexer_pattern="FSFS")
    assert config.indexer_types == ["full", "shared", "full", "shared"]
    with pytest.raises(ValueError, match="starting with F"):
        tiny_dsa_config(tok, "glm_moe_dsa", "nano", indexer_pattern="SFFF")
    with pytest.raises(ValueError, match="no cross-layer"):
        tiny_dsa_config(tok, "deepseek_v32", "nano", indexer_pattern="FSFS")


def test_cli_builds_a_dsa_model_and_keeps_qwen2_the_default(tmp_path):
    from typer.testing import CliRunner

    from posttrain.cli import app

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS))
    base = ["tiny-model", "--corpus", str(corpus), "--size", "nano", "--vocab-size", "300"]
    done = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "d"), "--arch", "deepseek_v32"])
    assert done.exit_code == 0, done.output
    assert "deepseek_v32" in done.output
    assert json.loads((tmp_path / "d" / "config.json").read_text())["model_type"] == "deepseek_v32"
    done = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "q")])
    assert done.exit_code == 0, done.output
    assert AutoConfig.from_pretrained(tmp_path / "q").model_type == "qwen2"
    done = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "x"), "--arch", "llama"])
    assert done.exit_code != 0


@pytest.mark.parametrize(
    ("name", "model_type", "pattern"),
    [("glm5", "glm_moe_dsa", "FFFSSSFS"), ("deepseek_v32", "deepseek_v32", "FFFFF")],
)
def test_real_shape_configs_load_unedited_and_run(tmp_path, name, model_type, pattern):
    shutil.copy(DATA / f"{name}_config.json", tmp_path / "config.json")
    published = json.loads((tmp_path / "config.json").read_text())
    config = AutoConfig.from_pretrained(tmp_path)
    assert config.model_type == model_type
    for key in ("index_topk", "index_n_heads", "index_head_dim", "q_lora_rank", "kv_lora_rank"):
        assert getattr(config, key) == published[key]
    # GLM's IndexCache schedule (freq 4 after offset 3) as transformers derives it.
    assert pattern_of(config) == pattern
    rope = config.rope_parameters
    if model_type == "deepseek_v32":
        assert rope["rope_type"] == "yarn" and rope["factor"] == 40
        assert rope["original_max_position_embeddings"] == 4096
    else:
        assert rope == published["rope_parameters"]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    ids = torch.randint(0, config.vocab_size, (2, 12))
    with torch.no_grad(), count_indexer_calls(model) as calls:
        logits = model(ids).logits
    assert logits.shape == (2, 12, config.vocab_size) and torch.isfinite(logits).all()
    assert calls.total == pattern.count("F")
    # The eager path is an independent implementation of the same attention.
    model.set_attn_implementation("eager")
    with torch.no_grad():
        eager = model(ids).logits
    torch.testing.assert_close(eager, logits, rtol=1e-4, atol=1e-4)
