"""`posttrain indexcache run --config configs/indexcache/glm5_tiny.yaml` end to end on a tiny
GLM-5 architecture model (transformers' glm_moe_dsa), shrunk to run in seconds: the search's
patterns, the pattern directories reloaded by transformers, what distillation may change, the
indexer calls per variant, and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from posttrain.attention import hf_train
from posttrain.attention.hf_dsa import count_indexer_calls, pattern_of, using_pattern
from posttrain.cli import app
from posttrain.config import load_config
from posttrain.data.io import read_jsonl
from posttrain.recipes.indexcache import IndexCacheRecipe, IndexCacheRunConfig, load

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "indexcache" / "glm5_tiny.yaml"
SMALL = [
    "model_size=nano",  # 4 layers, top-64: blocks of 96 tokens are sparse
    "vocab_size=256",
    "max_positions=256",
    "corpus.n_files=12",
    "corpus.max_chars=4000",
    "corpus.seq_tokens=96",
    "corpus.n_recall_heldout=2",
    "train.pretrain_steps=4",
    "train.warmup_steps=2",
    "train.block_size=96",
    "train.batch_size=2",
    "train.eval_every=2",
    "train.progress=false",
    "heldout_blocks=2",
    "calibration_blocks=2",
    "distill_steps=2",
    "keep=[0.5]",  # two patterns: uniform and greedy, 2 of 4 indexers
    "lengths=[96]",
    "repeats=1",
    "decode_tokens=2",
    "threads=1",
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("indexcache-glm5")
    overrides = [*SMALL, f"runs_root={root}"]
    # In-process (the CLI's own entry point): a subprocess would pay the imports again.
    result = CliRunner().invoke(
        app,
        ["indexcache", "run", "--config", str(CONFIG)]
        + [arg for item in overrides for arg in ("--set", item)],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "IndexCache: held-out loss and speed" in result.output
    return root / "indexcache-glm5"


def test_the_search_and_its_patterns_are_in_the_results(finished: Path):
    results = json.loads((finished / "results.json").read_text())
    search = results["search"]
    assert [row["kept"] for row in search] == [4, 3, 2, 1]
    assert search[0]["pattern"] == "FFFF"
    for before, after in zip(search, search[1:], strict=False):
        turned = [i for i in range(4) if before["pattern"][i] != after["pattern"][i]]
        assert len(turned) == 1 and after["pattern"][turned[0]] == "S" and turned[0] > 0
    summary = json.loads((finished / "summary.json").read_text())
    assert summary["patterns"] == {"uniform-1/2": "FSFS", "greedy-1/2": search[2]["pattern"]}
    assert search[3]["pattern"] == "FSSS"
    assert (finished / "overlap.png").exists()
    overlap = json.loads((finished / "overlap.json").read_text())["matrix"]
    assert len(overlap) == 4 and all(overlap[i][i] == 1.0 for i in range(4))


def test_pattern_directories_reload_with_their_indexer_types(finished: Path):
    trained, _ = load(finished / "dsa-model")
    assert pattern_of(trained) == "FFFF"
    quality = json.loads((finished / "quality.json").read_text())
    ids = torch.randint(3, 200, (1, 80), generator=torch.Generator().manual_seed(0))
    for name in ("uniform-1/2", "greedy-1/2"):
        pattern = quality[name]["pattern"]
        model = AutoModelForCausalLM.from_pretrained(finished / "patterns" / name).eval()
        assert model.config.indexer_types == ["full" if c == "F" else "shared" for c in pattern]
        assert pattern_of(model) == pattern
        with count_indexer_calls(model) as calls, torch.no_grad():
            logits = model(input_ids=ids, use_cache=False).logits
        assert sorted(calls.per_layer) == [i for i, c in enumerate(pattern) if c == "F"]
        with using_pattern(trained, pattern), torch.no_grad():
            torch.testing.assert_close(logits, trained(input_ids=ids, use_cache=False).logits)
        held = quality[name]["training_free"]["heldout_loss"]
        data = IndexCacheRecipe(_config(finished)).data(load(finished / "dsa-model")[1])
        assert hf_train.heldout_loss(model, data["heldout"]) == pytest.approx(held, rel=1e-5)


def test_distillation_trains_only_the_kept_indexers(finished: Path):
    trained = dict(load(finished / "dsa-model")[0].named_parameters())
    tuned, _ = load(finished / "distilled" / "uniform-1/2")
    assert pattern_of(tuned) == "FSFS" and tuned.config.indexer_types[1] == "shared"
    params = dict(tuned.named_parameters())
    indexer = {k for k in params if ".indexer." in k}
    assert {k.split(".")[2] for k in indexer} == {"0", "2"}
    assert all(torch.equal(v, trained[k]) for k, v in params.items() if k not in indexer)
    assert any(not torch.equal(params[k], trained[k]) for k in indexer)


def test_speed_rows_count_indexer_calls_per_variant(finished: Path):
    rows = {r["name"]: r for r in read_jsonl(finished / "speed.jsonl")}
    assert set(rows) == {"dense", "dsa", "uniform-1/2", "greedy-1/2"}
    assert rows["dense"]["indexer_calls_per_prefill"] == 0
    for name in ("dsa", "uniform-1/2", "greedy-1/2"):
        assert rows[name]["indexer_calls_per_prefill"] == rows[name]["pattern"].count("F")


def test_a_second_run_reuses_every_stage_and_bad_settings_are_refused(finished: Path):
    before = (finished / "dsa-model" / "model.safetensors").stat().st_mtime_ns
    first = json.loads((finished / "summary.json").read_text())
    summary = IndexCacheRecipe(_config(finished))()
    assert summary["patterns"] == first["patterns"] and summary["search"] == first["search"]
    assert (finished / "dsa-model" / "model.safetensors").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="sparse_steps"):
        IndexCacheRecipe(IndexCacheRunConfig(arch="glm_moe_dsa"))
    with pytest.raises(ValueError, match="arch"):
        IndexCacheRecipe(IndexCacheRunConfig(arch="llama"))


def _config(finished: Path) -> IndexCacheRunConfig:
    return load_config(IndexCacheRunConfig, CONFIG, [*SMALL, f"runs_root={finished.parent}"])
