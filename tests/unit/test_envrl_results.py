"""The EnvRL recipe's bookkeeping on hand-made records: behaviour-cloning rows, episode
outcomes, success per checkpoint, final success over seeds and steps to the baseline."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from posttrain.recipes.envrl import (
    action_rows,
    final_success,
    outcome,
    steps_to_baseline,
    success_table,
)


def test_each_expert_action_is_one_row_with_the_conversation_before_it():
    chat = [
        {"role": "user", "content": "s0"},
        {"role": "assistant", "content": "a0"},
        {"role": "user", "content": "s1"},
        {"role": "assistant", "content": "a1"},
    ]
    rows = action_rows(chat)
    assert rows == [
        {"prompt": chat[:1], "completion": [chat[1]]},
        {"prompt": chat[:3], "completion": [chat[3]]},
    ]


def _sample(info, reward=0.0):
    turns = [SimpleNamespace(action="go east")]
    return SimpleNamespace(
        metadata={"info": info, "turns": 1}, reward=reward, status="completed", turn_records=turns
    )


@pytest.mark.parametrize(
    ("info", "won"),
    [
        ([{"won": True}], True),  # textworld
        ([{"success": True, "reward_parts": {}}], True),  # webshop
        ([{"won": False}, {"won": False, "truncated": True}], False),
        ([{"success": False}], False),  # a purchase scoring below 1
        ([], False),  # the reply was cut before any step
    ],
)
def test_success_is_the_won_game_or_the_perfect_purchase(info, won):
    record = outcome("p", "textworld", 3, "heldout", "train-0001", _sample(info, 0.5))
    assert record["success"] is won
    assert record["key"] == "p|textworld|3|heldout|train-0001"
    assert record["actions"] == ["go east"] and record["reward"] == 0.5


def _records(policy, env, step, split, outcomes):
    return [
        {"policy": policy, "env": env, "step": step, "split": split, "success": s} for s in outcomes
    ]


def test_final_success_is_averaged_over_seeds_with_its_spread():
    records = []
    for seed, rate in ((0, [True, False]), (1, [True, True])):
        for split in ("train", "heldout"):
            records += _records(f"webshop-grpo-seed{seed}", "webshop", 10, split, rate)
    table = success_table(records)
    assert table[("webshop-grpo-seed0", "webshop", 10, "train")] == 0.5
    final = final_success(table, [("webshop", "grpo", 0), ("webshop", "grpo", 1)], 10)
    cell = final["webshop"]["grpo"]["heldout"]
    assert cell["mean"] == pytest.approx(0.75) and cell["per_seed"] == [0.5, 1.0]
    assert cell["std"] == pytest.approx(0.353553, rel=1e-5)  # sample std of 0.5 and 1.0


def test_steps_to_baseline_is_the_first_step_reaching_the_baselines_final_success():
    success = {}
    curves = {
        # seed 0: the baseline ends at 0.5; EnvRL reaches it at step 4 of 10.
        ("grpo", 0): {2: 0.0, 4: 0.25, 6: 0.5, 8: 0.5, 10: 0.5},
        ("grpo_sp_id", 0): {2: 0.25, 4: 0.5, 6: 0.75, 8: 0.5, 10: 0.75},
        # seed 1: the baseline ends at 1.0; EnvRL never gets there.
        ("grpo", 1): {2: 0.5, 4: 0.5, 6: 1.0, 8: 1.0, 10: 1.0},
        ("grpo_sp_id", 1): {2: 0.25, 4: 0.5, 6: 0.75, 8: 0.75, 10: 0.75},
    }
    for (variant, seed), curve in curves.items():
        for step, rate in curve.items():
            for split in ("train", "heldout"):
                success[(f"textworld-{variant}-seed{seed}", "textworld", step, split)] = rate
    for seed, start in ((0, 0.0), (1, 0.25), (2, 0.5)):
        for split in ("train", "heldout"):
            success[(f"warm-start-seed{seed}", "textworld", 0, split)] = start
    # seed 2: the baseline ends where its warm start began; there is nothing to reach.
    for variant in ("grpo", "grpo_sp_id"):
        for step in (2, 4, 6, 8, 10):
            for split in ("train", "heldout"):
                success[(f"textworld-{variant}-seed2", "textworld", step, split)] = 0.5
    runs = [("textworld", v, s) for v in ("grpo", "grpo_sp_id") for s in (0, 1, 2)]
    starts = {s: f"warm-start-seed{s}" for s in (0, 1, 2)}
    found = {r["split"]: r for r in steps_to_baseline(success, runs, 10, starts)}
    result = found["train"]
    assert (result["treatment"], result["baseline"]) == ("grpo_sp_id", "grpo")
    assert result["per_seed"][0] == {
        "baseline_final": 0.5,
        "warm_start": 0.0,
        "step": 4,
        "fraction": 0.4,
        "defined": True,
    }
    assert result["per_seed"][1]["step"] is None and result["per_seed"][1]["defined"]
    assert not result["per_seed"][2]["defined"] and result["per_seed"][2]["step"] is None
    assert result["reached"] == "1/2" and result["mean_fraction"] == pytest.approx(0.4)
