"""`posttrain indexcache run --config configs/indexcache/tiny.yaml` end to end on a tiny
GLM-5 architecture model (transformers' glm_moe_dsa), shrunk to run in seconds: every stage's
output and the report, the search's patterns, the pattern directories reloaded by
transformers, what distillation may change, the indexer calls and FLOPs per variant, resume,
re-measuring speed alone, and config errors."""

from __future__ import annotations

import importlib.util
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
from posttrain.runs import read_metrics

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "indexcache" / "tiny.yaml"
SMALL = [
    "model_size=nano",  # 4 layers, top-64: blocks of 96 tokens are sparse
    "vocab_size=256",
    "max_positions=256",
    "corpus.n_files=12",
    "corpus.max_chars=4000",
    "corpus.seq_tokens=96",
    "corpus.n_recall_heldout=2",
    "corpus.n_pairs=2",  # recall texts short enough for a 96-token block (this tokenizer)
    "corpus.recall_fill=0.3",
    "train.pretrain_steps=4",
    "train.warmup_steps=2",
    "train.sparse_steps=2",
    "train.block_size=96",
    "train.batch_size=2",
    "train.eval_every=2",
    "train.progress=false",
    "heldout_blocks=2",
    "calibration_blocks=2",
    "distill_steps=2",
    "keep=[0.5,0.25]",  # uniform and greedy patterns keeping 2 and 1 of 4 indexers
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
    return root / "indexcache"


VARIANTS = ["dense", "dsa", "uniform-1/2", "greedy-1/2", "uniform-1/4", "greedy-1/4"]


def test_every_stage_writes_its_result_and_the_report(finished: Path):
    for name in (
        "dsa-model/config.json",
        "training.json",
        "overlap.json",
        "overlap.png",
        "greedy.json",
        "quality.json",
        "speed.jsonl",
        "loss_vs_kept_indexers.png",
        "speed.png",
        "results.json",
        "report.html",
    ):
        assert (finished / name).exists(), name
    results = json.loads((finished / "results.json").read_text())
    assert [row["variant"] for row in results["table"]] == VARIANTS
    dsa = results["table"][1]
    assert dsa["loss_vs_dsa_%_training_free"] == 0.0 and dsa["prefill_x@96"] == 1.0
    assert all("loss_distilled" in row for row in results["table"][2:])
    assert set(results["goal"]) == {"uniform-1/4", "greedy-1/4"}
    assert all(goal["length"] == 96 for goal in results["goal"].values())
    # The three training stages ran, the sparse one last (its held-out loss is recorded).
    trained = json.loads((finished / "training.json").read_text())
    assert trained["train_seconds"] > 0 and "sparse_final_heldout_loss" in trained
    stages = [r["stage"] for r in read_metrics(finished / "training")]
    assert stages == ["pretrain"] * 4 + ["warmup"] * 2 + ["sparse"] * 2


def test_the_search_and_its_patterns_are_in_the_results(finished: Path):
    results = json.loads((finished / "results.json").read_text())
    search = results["search"]
    assert [row["kept"] for row in search] == [4, 3, 2, 1]
    assert search[0]["pattern"] == "FFFF"
    for before, after in zip(search, search[1:], strict=False):
        turned = [i for i in range(4) if before["pattern"][i] != after["pattern"][i]]
        assert len(turned) == 1 and after["pattern"][turned[0]] == "S" and turned[0] > 0
    summary = json.loads((finished / "summary.json").read_text())
    assert summary["patterns"] == {
        "uniform-1/2": "FSFS",
        "greedy-1/2": search[2]["pattern"],
        "uniform-1/4": "FSSS",
        "greedy-1/4": "FSSS",
    }
    assert search[3]["pattern"] == "FSSS"
    overlap = json.loads((finished / "overlap.json").read_text())
    matrix = overlap["matrix"]
    assert len(matrix) == 4 and all(matrix[i][i] == 1.0 for i in range(4))
    assert all(matrix[i][j] == matrix[j][i] for i in range(4) for j in range(4))
    assert 0.0 < overlap["random_selection_mean"] < 1.0 and overlap["queries_from"] == 64


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
    # One pattern under two names (uniform = greedy at 1/4) is distilled once.
    dirs = json.loads((finished / "results.json").read_text())["model_dirs"]
    assert dirs["uniform-1/4 (distilled)"] == dirs["greedy-1/4 (distilled)"]


def test_speed_rows_count_indexer_calls_per_variant(finished: Path):
    rows = {r["name"]: r for r in read_jsonl(finished / "speed.jsonl")}
    assert set(rows) == set(VARIANTS)
    assert rows["dense"]["indexer_calls_per_prefill"] == 0
    for name in VARIANTS[1:]:
        assert rows[name]["indexer_calls_per_prefill"] == rows[name]["pattern"].count("F")
    for row in rows.values():
        assert row["prefill_seconds"] > 0 and row["decode_tokens_per_second"] > 0
        assert row["threads"] == 1
    flops = {name: row["indexer_flops_prefill"] for name, row in rows.items()}
    assert flops["dsa"] == 2 * flops["uniform-1/2"] == 4 * flops["uniform-1/4"] > 0
    assert flops["dense"] == 0


def test_a_second_run_reuses_every_stage_and_new_timings_remeasure_only_speed(finished: Path):
    before = (finished / "dsa-model" / "model.safetensors").stat().st_mtime_ns
    speed = (finished / "speed.jsonl").read_text()
    quality = (finished / "quality.json").read_text()
    first = json.loads((finished / "summary.json").read_text())
    summary = IndexCacheRecipe(_config(finished))()
    assert summary["patterns"] == first["patterns"] and summary["search"] == first["search"]
    assert (finished / "dsa-model" / "model.safetensors").stat().st_mtime_ns == before
    assert (finished / "speed.jsonl").read_text() == speed
    # Timing settings may change between runs: only the speed rows are measured again.
    IndexCacheRecipe(_config(finished, "repeats=2"))()
    rows = read_jsonl(finished / "speed.jsonl")
    assert len(rows) == 2 * len(VARIANTS)  # the first rows, then each measured again
    latest = {r["key"]: r for r in rows}
    assert len(latest) == len(VARIANTS) and all(r["repeats"] == 2 for r in latest.values())
    assert (finished / "quality.json").read_text() == quality


def test_changed_settings_and_bad_values_are_config_errors(finished: Path):
    with pytest.raises(ValueError, match="distill_steps"):
        IndexCacheRecipe(_config(finished, "distill_steps=9"))
    with pytest.raises(ValueError, match="arch"):
        IndexCacheRecipe(IndexCacheRunConfig(arch="llama"))
    with pytest.raises(ValueError, match="keep"):
        IndexCacheRecipe(IndexCacheRunConfig(keep=[1.5]))
    with pytest.raises(ValueError, match="max_positions"):
        IndexCacheRecipe(IndexCacheRunConfig(lengths=[100_000]))


def _config(finished: Path, *overrides: str) -> IndexCacheRunConfig:
    settings = [*SMALL, f"runs_root={finished.parent}", *overrides]
    return load_config(IndexCacheRunConfig, CONFIG, settings)


def test_the_benchmark_measures_the_recipes_quality_table_again(finished: Path):
    # benchmarks/indexcache.py --run DIR rebuilds the run's held-out data from its config
    # and scores every variant itself: it must agree with the recipe's own quality.json.
    script = CONFIG.parents[2] / "benchmarks" / "indexcache.py"
    spec = importlib.util.spec_from_file_location("bench_indexcache", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model, tokenizer = load(finished / "dsa-model")
    variants = bench.variants_for(model.config.num_hidden_layers)
    table = bench.quality(finished, model, tokenizer, variants)["rows"]
    recipe = json.loads((finished / "quality.json").read_text())
    pairs = {
        "dense": recipe["dense"]["training_free"],
        "dsa_gathered": recipe["dsa"]["training_free"],
        "indexcache_1/2": recipe["uniform-1/2"]["training_free"],
        "indexcache_1/4": recipe["uniform-1/4"]["training_free"],
    }
    # Each distilled pattern by its directory (one per distinct pattern: names may share one).
    model_dirs = json.loads((finished / "results.json").read_text())["model_dirs"]
    for name in ("uniform-1/2", "greedy-1/2", "uniform-1/4", "greedy-1/4"):
        folder = Path(model_dirs[f"{name} (distilled)"]).relative_to(finished / "distilled")
        pairs[f"distilled/{folder.as_posix()}"] = recipe[name]["distilled"]
    assert "dsa_masked" not in table  # the same keys as gathered: not scored twice
    assert {n for n in table if n.startswith("distilled/")} == {
        n for n in pairs if n.startswith("distilled/")
    }
    for name, expected in pairs.items():
        for key in ("heldout_loss", "recall_token_accuracy", "recall_exact"):
            assert table[name][key] == pytest.approx(expected[key], abs=1e-5), (name, key)
    assert table["dsa_gathered"]["loss_vs_dsa_%"] == 0.0
