"""`posttrain saerl run` end to end at the smallest size (a nano policy, a few hundred
problems, two RL steps of vanilla GRPO and SAERL), in-process; and `posttrain saerl select`
on a user's file in DeepMath-103K's columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("sae_lens")

from posttrain.config import load_config  # noqa: E402
from posttrain.data.io import read_jsonl  # noqa: E402
from posttrain.recipes.saerl import SAERLRecipe, SAERLRunConfig, SelectConfig  # noqa: E402

SMALL = [
    "data.problems.n_train=360",
    "data.problems.n_test=40",
    "data.problems.topics=[addition, subtraction]",
    "data.problems.defect_rate=0.1",  # enough low-quality rows among 40 labelled ones
    "data.warm_start_rows=160",
    "data.validation_rows=20",
    "model_size=nano",
    "vocab_size=256",
    "warm_start.steps=20",
    "warm_start.stop_at_accuracy=null",
    "labels.budget=40",
    "labels.samples=2",
    "labels.difficulty=column",  # the 20-step nano policy passes nothing: no pass-rate signal
    "sae.steps=30",
    "sae.d_sae=64",
    "sae.k=4",
    "selection.clusters=2",
    "rl.steps=2",
    "rl.prompts_per_step=8",
    "rl.rollout.n=2",
    "rl.eval_every=1",
    "seeds=[0]",
    "variants=[vanilla, saerl]",
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("saerl")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POSTTRAIN_CACHE", str(root / "cache"))
        config = load_config(SAERLRunConfig, None, [*SMALL, f"runs_root={root / 'runs'}"])
        summary = SAERLRecipe(config)()
    return summary, root / "runs" / "saerl"


def test_the_saerl_prompts_are_the_pool_filtered_ordered_and_in_whole_batches(finished):
    _, run = finished
    pool = read_jsonl(run / "data" / "pool.jsonl")
    chosen = read_jsonl(run / "selection" / "saerl-seed0.jsonl")
    report = read_jsonl(run / "selection" / "saerl-seed0.report.jsonl")[0]
    ids = [r["id"] for r in chosen]
    assert len(ids) == len(set(ids)) and set(ids) <= {r["id"] for r in pool}
    # A tenth dropped by the probe, the rest trimmed to whole batches of prompts_per_step.
    assert report["quality_dropped"] == round(0.1 * len(pool))
    assert len(chosen) % 8 == 0 and len(pool) - len(chosen) < round(0.1 * len(pool)) + 8
    assert ids != [r["id"] for r in pool if r["id"] in set(ids)]  # reordered
    # The labels the selection was fitted on stay out of the prompt file.
    assert not any(k.startswith("label_") for r in chosen for k in r)


def test_the_run_reports_accuracy_ground_truth_and_cost(finished):
    summary, run = finished
    results = json.loads((run / "results.json").read_text())
    assert set(results["final_accuracy"]) == {"vanilla", "saerl"}
    # Final accuracy is the final checkpoint's greedy score on every held-out question.
    scores = json.loads((run / "rl-saerl-seed0" / "final_scores.json").read_text())
    assert len(scores) == 40
    assert results["final_accuracy"]["saerl"]["per_seed"] == [np.mean(list(scores.values()))]
    truth = results["ground_truth"]["0"]
    assert set(truth) == {"sae", "raw", "tfidf"}
    assert truth["sae"]["dims"] == 64 and truth["raw"]["dims"] == 64  # nano's width, d_sae
    assert all(-1 <= truth[k]["difficulty_spearman"] <= 1 for k in truth)
    assert results["sae"]["0"]["mean_l0"] == pytest.approx(4)
    assert results["cost"]["features_s_per_seed"]["mean"] > 0
    assert (run / "curves.png").stat().st_size > 0
    assert Path(summary["curves"]) == run / "curves.png"


def test_vanilla_reads_the_whole_pool_shuffled_and_saerl_its_file_as_written(finished):
    _, run = finished
    vanilla = yaml.safe_load((run / "rl-vanilla-seed0" / "config.yaml").read_text())
    saerl = yaml.safe_load((run / "rl-saerl-seed0" / "config.yaml").read_text())
    assert vanilla["data"]["order"] == "shuffle"
    assert vanilla["data"]["train"].endswith("pool.jsonl")
    assert saerl["data"]["order"] == "as_written"
    assert saerl["data"]["train"].endswith("saerl-seed0.jsonl")


def test_select_orders_a_deepmath_file_and_switches_off_what_it_has_no_labels_for(
    finished, tmp_path
):
    from posttrain.features.sae import save_sae, train_sae
    from posttrain.recipes.saerl import select_data

    _, run = finished
    pool = read_jsonl(run / "data" / "pool.jsonl")[:96]
    data = tmp_path / "deepmath.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "question": r["prompt"][-1]["content"],
                    "final_answer": r["answer"],
                    "difficulty": float(r["difficulty"]),
                    "topic": r["topic"],
                }
            )
            + "\n"
            for r in pool
        )
    )
    model = run / "warm-start-seed0" / "checkpoints" / "final"
    config = load_config(
        SelectConfig, None, ["sae.steps=20", "sae.d_sae=32", "sae.k=4", "selection.batch_size=8"]
    )
    report = select_data(str(model), str(data), str(tmp_path / "out"), config)
    assert report["switched_off"] == ["quality filter (no row has 'quality_ok')"]
    chosen = read_jsonl(tmp_path / "out" / "selected.jsonl")
    assert len(chosen) == 96 and report["batches"] == 12
    assert {r["answer"] for r in chosen} == {r["answer"] for r in pool}
    # A given SAE of another width is refused, naming both widths.
    other = train_sae(np.random.default_rng(0).normal(size=(64, 16)), steps=5, d_sae=8, k=2)
    save_sae(other, tmp_path / "narrow-sae")
    wrong = load_config(SelectConfig, None, [f"sae_dir={tmp_path / 'narrow-sae'}"])
    with pytest.raises(ValueError, match=r"16[\s\S]*64|64[\s\S]*16"):
        select_data(str(model), str(data), str(tmp_path / "again"), wrong)


def test_a_policy_without_difficulty_signal_is_refused_naming_the_labels(finished, tmp_path):
    from posttrain.errors import InputError

    _, run = finished
    config = load_config(
        SAERLRunConfig,
        None,
        [*SMALL, "labels.difficulty=pass_rate", f"runs_root={tmp_path}", "run_name=again"],
    )
    recipe = SAERLRecipe(config)
    recipe.data()
    policy = run / "warm-start-seed0" / "checkpoints" / "final"
    with pytest.raises(InputError, match="labels.difficulty") as caught:
        recipe.pass_rates(0, str(policy))
    assert "passes 0% of every one of the 40 labelled rows" in str(caught.value)
