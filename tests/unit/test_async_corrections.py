"""The asynchronous-RL corrections compared in benchmarks/async_quality.py: the weights and
masks each applies and the fractions it reports, on fixed tensors against hand-computed
values; and the study's own arithmetic (wall-clock reward, intervals, the selection rule).

What tests/unit/test_losses.py and test_offpolicy_losses.py already pin (tis_weights'
cap, icepop_weights' band, direct_is on one row, decoupled_ppo with one uniform weight,
every correction = GRPO without drift) is not repeated here.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from benchmark_scripts import loaded

from posttrain.rl import objectives
from posttrain.rl.config import LossConfig
from posttrain.rl.loss_inputs import LossInputs
from posttrain.rl.losses import (
    decoupled_ppo_loss,
    direct_is_loss,
    icepop_masked_frac,
    icepop_weights,
    tis_truncated_frac,
    tis_weights,
)

INF = float("inf")


def logs(*ratios: float) -> torch.Tensor:
    return torch.tensor([[math.log(r) for r in ratios]])


# --- the fractions each correction reports --------------------------------------------------


def test_tis_truncated_frac_counts_ratios_above_the_cap_among_counted_tokens():
    # Ratios [0.5, 1, 3, 2.5, garbage]; the last position is padding (inf there must not count).
    old = torch.tensor([[math.log(0.5), 0.0, math.log(3.0), math.log(2.5), INF]])
    rollout = torch.zeros(1, 5)
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    assert tis_truncated_frac(old, rollout, mask, cap=2.0) == pytest.approx(2 / 4)
    assert tis_truncated_frac(old, rollout, mask, cap=2.8) == pytest.approx(1 / 4)
    assert tis_truncated_frac(old, rollout, mask, cap=5.0) == 0.0
    # The same tokens tis_weights truncates.
    weights = tis_weights(old[:, :4], rollout[:, :4], cap=2.0)
    assert (weights < torch.exp(old[:, :4])).float().mean().item() == pytest.approx(0.5)


def test_icepop_masked_frac_counts_both_sides_of_the_band_among_counted_tokens():
    # Ratios [2, 1/2, 2.002, 0.4995, 1, 1.5, 0.8] against [1/2, 2] (bounds kept): 2 dropped.
    ln2 = math.log(2)
    old = torch.tensor([[ln2, -ln2, ln2 + 1e-3, -ln2 - 1e-3, 0.0, math.log(1.5), math.log(0.8)]])
    rollout = torch.zeros(1, 7)
    assert icepop_masked_frac(old, rollout, torch.ones(1, 7), beta=2.0) == pytest.approx(2 / 7)
    # Masking the 2.002 token out, and NaN padding beside it, leaves 1 dropped of 6 counted.
    mask = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0]])
    padded_old = torch.cat([old, torch.tensor([[float("nan")]])], dim=1)
    padded_rollout = torch.zeros(1, 8)
    frac = icepop_masked_frac(padded_old, padded_rollout, mask, beta=2.0)
    assert frac == pytest.approx(1 / 6)
    # The tokens it counts are the ones icepop_weights zeroes.
    assert (icepop_weights(old, rollout, beta=2.0) == 0).float().mean().item() == pytest.approx(
        2 / 7
    )
    # An explicit alpha moves the lower bound: [0.4, 2] keeps 0.4995, drops only 2.002.
    assert icepop_masked_frac(old, rollout, torch.ones(1, 7), 2.0, alpha=0.4) == pytest.approx(
        1 / 7
    )


# --- the registered ppo loss: TIS, IcePop and both, with their metrics -----------------------


def ppo_with(config: LossConfig) -> tuple[float, dict[str, float], torch.Tensor]:
    """pi_theta = pi_old (one mini-batch: ratio 1, no clipping), A = 1, and train/rollout
    ratios [0.5, 1.5, 3, 0.25]: the loss is minus the token-mean of the weights."""
    old = torch.full((1, 4), -1.0)
    logp = old.clone().requires_grad_()
    rollout = old - logs(0.5, 1.5, 3.0, 0.25)
    inputs = LossInputs(
        logp=logp,
        old_logp=old,
        rollout_logp=rollout,
        ref_logp=None,
        advantages=torch.tensor([1.0]),
        mask=torch.ones(1, 4),
        config=config,
        max_tokens=4,
    )
    loss, metrics = objectives.policy_loss("ppo").fn(inputs)
    loss.backward()
    return loss.item(), metrics, logp.grad


def test_ppo_with_tis_weights_by_the_capped_ratio():
    loss, metrics, grad = ppo_with(LossConfig(tis_cap=2.0))
    # Weights [0.5, 1.5, 2 (3 capped), 0.25].
    assert loss == pytest.approx(-(0.5 + 1.5 + 2.0 + 0.25) / 4)
    assert metrics["tis_truncated_frac"] == pytest.approx(0.25)
    assert "icepop_masked_frac" not in metrics
    assert torch.allclose(grad, -torch.tensor([[0.5, 1.5, 2.0, 0.25]]) / 4)


def test_ppo_with_icepop_keeps_the_ratio_inside_the_band_and_drops_both_sides():
    loss, metrics, grad = ppo_with(LossConfig(icepop_beta=2.0))
    # Weights [0.5, 1.5, 0 (3 > 2), 0 (0.25 < 1/2)].
    assert loss == pytest.approx(-(0.5 + 1.5) / 4)
    assert metrics["icepop_masked_frac"] == pytest.approx(0.5)
    assert "tis_truncated_frac" not in metrics
    assert torch.allclose(grad, -torch.tensor([[0.5, 1.5, 0.0, 0.0]]) / 4)


def test_ppo_with_tis_and_icepop_multiplies_the_two_weights():
    # TIS [0.5, 1.5, 2, 0.25] x IcePop [0.5, 1.5, 0, 0] = [0.25, 2.25, 0, 0].
    loss, metrics, _ = ppo_with(LossConfig(tis_cap=2.0, icepop_beta=2.0))
    assert loss == pytest.approx(-(0.25 + 2.25) / 4)
    assert metrics["tis_truncated_frac"] == pytest.approx(0.25)
    assert metrics["icepop_masked_frac"] == pytest.approx(0.5)


def test_ppo_without_a_correction_ignores_the_rollout_logprobs():
    loss, metrics, _ = ppo_with(LossConfig())
    assert loss == pytest.approx(-1.0)
    assert not {"tis_truncated_frac", "icepop_masked_frac"} & set(metrics)


# --- direct_is on a padded batch with both advantage signs ----------------------------------


def test_direct_is_masks_both_sides_and_ignores_padding():
    # Row 0 (A = 1): r = [1.1 kept, 0.7 < 0.8 masked, padding]; row 1 (A = -2):
    # r = [1.3 > 1.28 masked, 0.9 kept, 1.0 kept]. Five counted tokens.
    logp = torch.tensor(
        [[math.log(1.1), math.log(0.7), INF], [math.log(1.3), math.log(0.9), 0.0]],
        requires_grad=True,
    )
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    loss, metrics = direct_is_loss(
        logp, torch.zeros(2, 3), torch.tensor([1.0, -2.0]), mask, eps_low=0.2, eps_high=0.28
    )
    # Per token -r A where kept: -1.1, 0 | 0, +1.8, +2.0 -> token-mean 2.7 / 5.
    assert loss.item() == pytest.approx(0.54)
    assert metrics["is_masked_frac"] == pytest.approx(2 / 5)
    assert metrics["ratio_mean"] == pytest.approx((1.1 + 0.7 + 1.3 + 0.9 + 1.0) / 5)
    loss.backward()
    expected = torch.tensor([[-1.1, 0.0, 0.0], [0.0, 1.8, 2.0]]) / 5
    assert torch.allclose(logp.grad, expected)


# --- decoupled PPO: per-token behaviour weights, the cap and its fraction -------------------


def test_decoupled_ppo_caps_each_token_weight_and_reports_the_capped_fraction():
    # pi_prox / pi_behav = [3, 0.5, padding inf]; pi_theta / pi_prox = [1, 1.5]; A = 1.
    prox = torch.tensor([[-1.0, -1.0, -1.0]])
    rollout = prox - torch.tensor([[math.log(3.0), math.log(0.5), INF]])
    logp = (prox + torch.tensor([[0.0, math.log(1.5), 0.0]])).requires_grad_()
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    adv = torch.tensor([1.0])
    loss, metrics = decoupled_ppo_loss(
        logp, prox, rollout, adv, mask, eps_low=0.2, eps_high=0.28, behaviour_cap=2.0
    )
    # Weights [2 (3 capped), 0.5]; token 1 is clipped at 1.28: -(1 x 2 + 1.28 x 0.5) / 2.
    assert loss.item() == pytest.approx(-(2.0 + 0.64) / 2)
    assert metrics["behaviour_capped_frac"] == pytest.approx(0.5)
    assert metrics["behaviour_weight_mean"] == pytest.approx((2.0 + 0.5) / 2)
    assert metrics["clip_ratio/high_mean"] == pytest.approx(0.5)
    loss.backward()
    # d(-r A w)/d logp = -r w on the unclipped token, over 2 tokens; the clipped one gets 0.
    assert torch.allclose(logp.grad, torch.tensor([[-1.0, 0.0, 0.0]]))

    uncapped, metrics = decoupled_ppo_loss(
        logp, prox, rollout, adv, mask, eps_low=0.2, eps_high=0.28
    )
    assert uncapped.item() == pytest.approx(-(3.0 + 0.64) / 2)
    assert metrics["behaviour_capped_frac"] == 0.0
    assert metrics["behaviour_weight_mean"] == pytest.approx((3.0 + 0.5) / 2)


# --- the study's arithmetic -----------------------------------------------------------------


@pytest.fixture(scope="module")
def study():
    with loaded("async_quality.py") as module:
        yield module


def test_reward_at_a_wall_clock_time_is_the_recent_steps_mean(study):
    run = {"reward": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "time_s": [1, 2, 3, 4, 5, 6, 7]}
    assert study.reward_at(run, 0.5) == pytest.approx(0.1)  # before step 1: the warm start
    assert study.reward_at(run, 3.0) == pytest.approx(0.2)  # steps 1-3
    assert study.reward_at(run, 7.0) == pytest.approx(0.5)  # the last 5: 0.3 .. 0.7


def test_t_interval(study):
    stat = study.t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2 df) x sd 1 / sqrt 3
    assert (stat["mean"], stat["n"]) == (2.0, 3)
    assert stat["lo"] == pytest.approx(2.0 - half) and stat["hi"] == pytest.approx(2.0 + half)
    assert study.t_interval([0.5]) == {"mean": 0.5, "lo": None, "hi": None, "n": 1}


def row(variant, eta, speed, step_ci, at_half_ci, heldout_ci=(-0.02, 0.03), seeds=5):
    def stat(lo, hi):
        return {"mean": (lo + hi) / 2, "lo": lo, "hi": hi, "n": seeds}

    return {
        "variant": variant,
        "eta": eta,
        "samples_per_s": speed,
        "speedup_vs_sync": speed / 10,
        "reward_step_diff": stat(*step_ci),
        "wallclock": {"0.5": {"diff": stat(*at_half_ci)}},
        "heldout_diff": stat(*heldout_ci),
    }


def test_selection_takes_the_fastest_variant_meeting_both_conditions(study):
    rows = [
        row("none", 0, 10.0, (0.0, 0.0), (0.0, 0.0)),  # the synchronous reference itself
        row("fast_but_worse", 4, 30.0, (-0.05, -0.01), (0.01, 0.05)),  # per step worse
        row("not_faster_enough", 2, 25.0, (-0.02, 0.01), (-0.01, 0.04)),  # interval reaches 0
        row("slow_ok", 1, 15.0, (-0.03, 0.02), (0.01, 0.03)),
        row("fast_ok", 2, 20.0, (-0.01, 0.03), (0.005, 0.02)),
        row("worse_held_out", 2, 22.0, (-0.01, 0.03), (0.005, 0.02), (-0.09, -0.01)),
        row("two_seeds_only", 4, 40.0, (0.01, 0.01), (0.08, 0.08), seeds=2),  # too few to trust
    ]
    choice = study.choose_default(rows)
    assert (choice["variant"], choice["eta"]) == ("fast_ok", 2)
    assert choice["qualifying"] == ["slow_ok at eta 1", "fast_ok at eta 2"]
    # The rule alone (no held-out guard) takes the faster one worse on held-out rows.
    assert study.choose_default(rows, heldout_guard=False)["variant"] == "worse_held_out"


def test_selection_says_when_none_qualifies_and_names_the_trade_off(study):
    rows = [
        row("worse_per_step", 2, 20.0, (-0.05, -0.01), (0.02, 0.06)),
        row("slow_in_time", 1, 12.0, (-0.01, 0.02), (-0.03, 0.01)),
    ]
    choice = study.choose_default(rows)
    assert choice["chosen"] is None
    assert choice["reason"].startswith("none qualifies")
    assert "best per step is slow_in_time at eta 1" in choice["reason"]
    assert "sync time is worse_per_step at eta 2" in choice["reason"]


def test_run_order_rotates_with_the_seed_and_runs_sync_once_per_seed(study):
    order = study.plan_runs(["single"], {"tis2": [2], "icepop2": [2]}, [0, 1], with_sync=True)
    assert order == [
        ("single", "none", 0, 0),
        ("single", "tis2", 2, 0),
        ("single", "icepop2", 2, 0),
        ("single", "tis2", 2, 1),
        ("single", "icepop2", 2, 1),
        ("single", "none", 0, 1),
    ]


def test_finished_runs_are_read_back_and_a_torn_line_is_skipped(study, tmp_path):
    path = tmp_path / "runs.jsonl"
    key = study.run_key("single", "tis2", 2, 0, 30, 200)
    assert key != study.run_key("single", "tis2", 2, 1, 30, 200)
    study.append_run(path, {"key": key, "reward": [0.1]})
    path.write_text(path.read_text() + json.dumps({"key": "torn"})[:7])
    assert list(study.read_runs(path)) == [key]


def test_the_make_bench_and_full_sizes(study):
    quick = study.resolve_grid(study.parse_args([]))
    assert quick["plan"] == {"none": [2], "tis2": [2]} and quick["with_sync"]
    assert (quick["tasks"], quick["seeds"]) == (["single"], [0, 1, 2])
    full = study.resolve_grid(study.parse_args(["--full"]))
    assert full["plan"] == study.FULL["plan"] and len(full["seeds"]) >= 5
    assert sum(map(len, full["plan"].values())) == 21  # the 220 runs the docstring times
    # Flags replace their part: the full plan's variants at the etas asked for.
    narrowed = study.resolve_grid(study.parse_args(["--full", "--etas", "2", "--seeds", "0"]))
    assert all(etas == [2] for etas in narrowed["plan"].values())
    assert not narrowed["with_sync"] and narrowed["seeds"] == [0]
