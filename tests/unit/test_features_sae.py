"""SAEs through SAELens (posttrain.features.sae) on a small matrix of known sparse structure."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from posttrain.errors import InputError
from posttrain.features.sae import encode, load_sae, sae_metrics, save_sae, train_sae

# Checked without importing: SAELens (with TransformerLens) takes seconds to import, paid
# only by the worker that runs these tests, not by every worker's collection.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sae_lens") is None,
    reason="the `sae` extra (sae-lens) is not installed",
)

D_IN, D_SAE, K = 32, 64, 4


@pytest.fixture(scope="module")
def activations() -> np.ndarray:
    """400 rows, each an offset plus 3 of 48 random directions with positive weights (the
    shape SAEs are made for), plus a little noise."""
    rng = np.random.default_rng(0)
    atoms = rng.normal(size=(48, D_IN))
    codes = np.zeros((400, 48))
    for row in codes:
        row[rng.choice(48, 3, replace=False)] = rng.uniform(1, 3, 3)
    return (codes @ atoms + 5.0 + 0.05 * rng.normal(size=(400, D_IN))).astype(np.float32)


@pytest.fixture(scope="module")
def topk(activations):
    return train_sae(
        activations, architecture="topk", d_sae=D_SAE, k=K, steps=150, batch_size=64, lr=4e-3
    )


@pytest.fixture(scope="module")
def standard(activations):
    return train_sae(
        activations, architecture="standard", d_sae=D_SAE, l1_coefficient=1.0, steps=150,
        batch_size=64, lr=4e-3,
    )  # fmt: skip


def test_topk_has_exactly_k_active_features_per_sample(topk, activations):
    features = encode(topk, activations)
    assert features.shape == (len(activations), D_SAE) and features.dtype == np.float32
    assert ((features != 0).sum(1) == K).all()
    assert sae_metrics(topk, activations).mean_l0 == K


@pytest.mark.parametrize("name", ["topk", "standard"])
def test_training_reconstructs_far_better_than_nothing(name, request, activations):
    sae = request.getfixturevalue(name)
    metrics = sae_metrics(sae, activations)
    zero_sae_mse = float((activations.astype(np.float64) ** 2).mean())  # decodes to 0
    mean_mse = float(((activations - activations.mean(0)) ** 2).mean())
    assert metrics.mse < 0.1 * zero_sae_mse and metrics.mse < 0.5 * mean_mse
    assert 0 < metrics.explained_variance <= 1
    # Explained variance, independently: 1 - MSE / variance per element about the mean.
    assert metrics.explained_variance == pytest.approx(1 - metrics.mse / mean_mse, rel=1e-6)
    untrained = train_sae(activations, architecture=name, d_sae=D_SAE, k=K, steps=1, lr=1e-9)
    assert metrics.mse < 0.5 * sae_metrics(untrained, activations).mse


def test_standard_sae_is_sparse_and_the_l1_coefficient_matters(standard, activations):
    sparse = sae_metrics(standard, activations).mean_l0
    assert 0 < sparse < D_SAE / 2
    loose = train_sae(
        activations, architecture="standard", d_sae=D_SAE, l1_coefficient=0.0, steps=150,
        batch_size=64, lr=4e-3,
    )  # fmt: skip
    assert sae_metrics(loose, activations).mean_l0 > sparse


def test_dead_and_dense_features_match_a_count_on_the_encodings(standard, activations):
    features = encode(standard, activations)
    share = (features > 0).mean(0)
    for threshold in (0.05, 0.5):
        metrics = sae_metrics(standard, activations, dense_threshold=threshold)
        assert metrics.dead_features == sum(1 for s in share if s == 0)
        assert metrics.dense_features == sum(1 for s in share if s > threshold)
    # An input that switches on no feature: a SAE run on rows equal to its decoder bias.
    quiet = np.repeat(standard.b_dec.detach().numpy()[None], 8, axis=0)
    assert sae_metrics(standard, quiet).dead_features == int(
        (encode(standard, quiet) == 0).all(0).sum()
    )


def test_save_and_load_round_trip_in_saelens_format(topk, activations, tmp_path):
    metrics = sae_metrics(topk, activations)
    out = save_sae(topk, tmp_path / "sae", metrics)
    assert json.loads((out / "cfg.json").read_text())["architecture"] == "topk"
    loaded = load_sae(out, d_in=D_IN)
    np.testing.assert_array_equal(encode(loaded, activations), encode(topk, activations))
    assert json.loads((out / "posttrain_metrics.json").read_text())["mean_l0"] == K


def test_a_width_mismatch_names_both_widths_and_the_path(topk, tmp_path):
    out = save_sae(topk, tmp_path / "sae")
    with pytest.raises(InputError, match=rf"{out}: d_in: .*d_in={D_IN} .*width 48"):
        load_sae(out, d_in=48)
    with pytest.raises(InputError, match=rf"d_in={D_IN} .*width 16"):
        encode(load_sae(out), np.zeros((3, 16), np.float32))
    with pytest.raises(InputError, match="no such SAE directory"):
        load_sae(tmp_path / "missing")


def test_bad_settings_are_input_errors(activations):
    with pytest.raises(InputError, match="architecture"):
        train_sae(activations, architecture="gated")
    with pytest.raises(InputError, match="k must be in 1..d_sae"):
        train_sae(activations, d_sae=8, k=9)
    with pytest.raises(InputError, match="NaN"):
        train_sae(np.full((4, 3), np.nan))
