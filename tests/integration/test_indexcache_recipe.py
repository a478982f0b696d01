"""`posttrain indexcache run` end to end at a size that runs in seconds: every stage's output,
indexer calls per variant, what distillation may change, resume, and config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from posttrain.config import load_config
from posttrain.data.io import read_jsonl
from posttrain.recipes.indexcache import IndexCacheRecipe, IndexCacheRunConfig, load

SMALL = [
    "model_size=nano",
    "vocab_size=256",
    "max_positions=256",
    "corpus.n_files=12",
    "corpus.max_chars=4000",
    "corpus.seq_tokens=64",
    "corpus.n_recall_heldout=4",
    "train.pretrain_steps=6",
    "train.warmup_steps=2",
    "train.sparse_steps=2",
    "train.block_size=64",
    "train.batch_size=2",
    "train.eval_every=3",
    "train.progress=false",
    "heldout_blocks=4",
    "calibration_blocks=2",
    "distill_steps=3",
    "lengths=[48,96]",
    "repeats=1",
    "decode_tokens=2",
    "threads=1",
]
VARIANTS = ["dense", "dsa", "uniform-1/2", "greedy-1/2", "uniform-1/4", "greedy-1/4"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("indexcache")
    result = subprocess.run(
        [sys.executable, "-m", "posttrain", "indexcache", "run"]
        + [arg for item in [*SMALL, f"runs_root={root}"] for arg in ("--set", item)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "IndexCache: held-out loss and speed" in result.stdout
    return root / "indexcache"


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
    for row in results["table"][2:]:
        assert "loss_distilled" in row and row["indexers"] == 1  # 2 layers: F then S
    assert set(results["goal"]) == {"uniform-1/4", "greedy-1/4"}
    assert all(goal["length"] == 96 for goal in results["goal"].values())
    overlap = json.loads((finished / "overlap.json").read_text())
    assert overlap["matrix"][0][0] == 1.0 and overlap["matrix"][0][1] == overlap["matrix"][1][0]
    assert 0.0 < overlap["random_selection_mean"] < 1.0 and overlap["queries_from"] == 8
    greedy = json.loads((finished / "greedy.json").read_text())
    assert [(r["kept"], r["pattern"]) for r in greedy] == [(2, "FF"), (1, "FS")]
    summary = json.loads((finished / "summary.json").read_text())
    assert summary["train_seconds"] > 0 and summary["patterns"]["uniform-1/2"] == "FS"


def test_speed_rows_count_indexer_calls_per_variant(finished: Path):
    rows = read_jsonl(finished / "speed.jsonl")
    assert {(r["name"], r["length"]) for r in rows} == {(v, n) for v in VARIANTS for n in (48, 96)}
    for row in rows:
        expected = {"dense": 0, "dsa": 2}.get(row["name"], 1)
        assert row["indexer_calls_per_prefill"] == expected, row
        assert row["prefill_seconds"] > 0 and row["decode_tokens_per_second"] > 0
        assert row["threads"] == 1
    flops = {(r["name"], r["length"]): r["indexer_flops_prefill"] for r in rows}
    assert flops[("dsa", 96)] == 2 * flops[("uniform-1/4", 96)] > 0 == flops[("dense", 96)]


def test_distillation_trains_only_the_kept_indexers(finished: Path):
    base, _ = load(finished / "dsa-model")
    # Every pattern here is "FS": it is distilled once, and each name points at that model.
    dirs = json.loads((finished / "results.json").read_text())["model_dirs"]
    assert len({dirs[f"{n} (distilled)"] for n in ("uniform-1/4", "greedy-1/4")}) == 1
    tuned, _ = load(dirs["uniform-1/4 (distilled)"])
    assert tuned.config.index_pattern == "FS"
    before, after = base.state_dict(), tuned.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "distillation changed nothing"
    assert all(k.startswith("model.layers.0.self_attn.indexer.") for k in changed), changed


def test_a_second_run_reuses_every_stage(finished: Path):
    speed = (finished / "speed.jsonl").read_text()
    model_time = (finished / "dsa-model" / "config.json").stat().st_mtime
    config = load_config(IndexCacheRunConfig, None, [*SMALL, f"runs_root={finished.parent}"])
    summary = IndexCacheRecipe(config)()
    assert (finished / "speed.jsonl").read_text() == speed
    assert (finished / "dsa-model" / "config.json").stat().st_mtime == model_time
    assert summary["patterns"]["greedy-1/4"] == "FS"


def test_other_timing_settings_remeasure_only_the_speed_rows(finished: Path):
    quality = (finished / "quality.json").read_text()
    overrides = [*SMALL, f"runs_root={finished.parent}", "repeats=2"]
    IndexCacheRecipe(load_config(IndexCacheRunConfig, None, overrides))()
    rows = read_jsonl(finished / "speed.jsonl")
    assert len(rows) == 2 * len(VARIANTS) * 2  # the first rows, then each measured again
    latest = {r["key"]: r for r in rows}
    assert len(latest) == len(VARIANTS) * 2 and all(r["repeats"] == 2 for r in latest.values())
    assert (finished / "quality.json").read_text() == quality


def test_changed_settings_and_bad_values_are_config_errors(finished: Path):
    root = f"runs_root={finished.parent}"
    with pytest.raises(ValueError, match="distill_steps"):
        IndexCacheRecipe(load_config(IndexCacheRunConfig, None, [*SMALL, root, "distill_steps=9"]))
    with pytest.raises(ValueError, match="keep"):
        IndexCacheRecipe(IndexCacheRunConfig(keep=[1.5]))
    with pytest.raises(ValueError, match="max_positions"):
        IndexCacheRecipe(IndexCacheRunConfig(lengths=[100_000]))
