"""k-means and purity, the difficulty regressor and the quality probe on synthetic features
whose truth is known (tests/unit/selection_synthetic.py)."""

from __future__ import annotations

import numpy as np
import pytest
from selection_synthetic import make_synthetic

from posttrain.data.selection.clusters import cluster, purity
from posttrain.data.selection.difficulty import fit_difficulty, minimum_labelled
from posttrain.data.selection.inputs import check_features, labelled_values
from posttrain.data.selection.quality import fit_quality, keep_mask
from posttrain.errors import InputError


@pytest.fixture(scope="module")
def data():
    return make_synthetic()


def test_purity_by_hand():
    ids = [0, 0, 1, 1, 1, 2]
    labels = ["a", "a", "a", "b", "b", "c"]
    # cluster 0: a, a -> 2; cluster 1: a, b, b -> 2; cluster 2: c -> 1; (2 + 2 + 1) / 6.
    assert purity(ids, labels) == pytest.approx(5 / 6)
    assert purity([0, 0, 0], ["x", "y", "x"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="one true label per row"):
        purity([0, 1], ["a"])


def test_kmeans_finds_the_blobs(data):
    found = cluster(data.features, 4, seed=0)
    assert sorted(found.sizes) == [50, 50, 50, 50]
    assert purity(found.ids, data.topic.tolist()) == 1.0
    assert found.silhouette > 0.5
    # Shuffled features carry no topic: purity falls to near chance (0.25 for 4 topics).
    noise = np.random.default_rng(1).permuted(data.features, axis=0)
    assert purity(cluster(noise, 4).ids, data.topic.tolist()) < 0.5


@pytest.mark.parametrize("k", [1, 201, 2.5, True])
def test_a_bad_k_names_the_option(data, k):
    with pytest.raises(InputError, match="clusters"):
        cluster(data.features, k)


def test_difficulty_regressor_recovers_a_linear_difficulty(data):
    labelled, labels = labelled_values(data.rows, "difficulty")
    fitted = fit_difficulty(data.features, labelled, labels, folds=3, seed=0)
    assert fitted.report["heldout_rows"] == 20 and fitted.report["fit_rows"] == 60
    assert fitted.report["r2"] > 0.9 and fitted.report["spearman"] > 0.9
    # Independent check on every row, labelled or not, against the generator's truth.
    unlabelled = np.setdiff1d(np.arange(len(data.rows)), labelled)
    rho = np.corrcoef(fitted.predicted[unlabelled], data.difficulty[unlabelled])[0, 1]
    assert rho > 0.95


def test_too_few_difficulty_labels_name_the_column_and_counts(data):
    needed = minimum_labelled(5, 0.25)
    assert needed == 13  # 10 to fit (2 x 5 folds) + 3 held out (a quarter of 13, rounded)
    labelled, labels = labelled_values(data.rows, "difficulty")
    with pytest.raises(InputError, match=r"difficulty: 12 labelled rows; .* at least 13"):
        fit_difficulty(data.features, labelled[:12], labels[:12], folds=5)
    fit_difficulty(data.features, labelled[:13], labels[:13], folds=5)  # enough
    with pytest.raises(InputError, match="nothing to regress"):
        fit_difficulty(data.features, labelled, np.ones(len(labelled)), folds=3)
    with pytest.raises(InputError, match="difficulty_cv_folds"):
        fit_difficulty(data.features, labelled, labels, folds=1)


def test_quality_probe_separates_the_flag(data):
    labelled, good = labelled_values(data.rows, "quality_ok")
    fitted = fit_quality(data.features, labelled, good, seed=0)
    assert fitted.report["auc"] > 0.95
    from sklearn.metrics import roc_auc_score

    unlabelled = np.setdiff1d(np.arange(len(data.rows)), labelled)
    assert roc_auc_score(~data.bad[unlabelled], fitted.scores[unlabelled]) > 0.95


def test_too_few_of_a_quality_class_names_the_column(data):
    labelled, good = labelled_values(data.rows, "quality_ok")
    mostly_good = np.concatenate([labelled[good == 1], labelled[good == 0][:3]])
    flags = np.concatenate([np.ones(int((good == 1).sum())), np.zeros(3)])
    with pytest.raises(InputError, match=r"quality: \d+ good and 3 low-quality"):
        fit_quality(data.features, mostly_good, flags)
    with pytest.raises(InputError, match="0/1"):
        fit_quality(data.features, labelled, good * 2)


def test_keep_mask_by_threshold_or_share():
    scores = np.array([0.9, 0.1, 0.5, 0.5, 0.3, 0.8])
    assert keep_mask(scores, threshold=0.5).tolist() == [True, False, True, True, False, True]
    # The lowest third: 0.1 and 0.3; a half: ties at 0.5 broken by row index (row 2 first).
    assert keep_mask(scores, drop_share=1 / 3).tolist() == [True, False, True, True, False, True]
    assert keep_mask(scores, drop_share=0.5).tolist() == [True, False, False, True, False, True]
    with pytest.raises(InputError, match="exactly one"):
        keep_mask(scores, threshold=0.5, drop_share=0.1)
    with pytest.raises(InputError, match="quality_drop_share"):
        keep_mask(scores, drop_share=1.0)


def test_inputs_are_checked():
    with pytest.raises(InputError, match="features: has 3 rows but the data has 4"):
        check_features(np.zeros((3, 2)), 4)
    with pytest.raises(InputError, match="features: must be a 2-D"):
        check_features(np.zeros(3))
    with pytest.raises(InputError, match="features: row 1 has non-finite"):
        check_features(np.array([[0.0], [np.nan]]))
    with pytest.raises(InputError, match=r"difficulty: row 1: 'hard' is not a finite number"):
        labelled_values([{"difficulty": 1}, {"difficulty": "hard"}], "difficulty")
    indices, values = labelled_values([{"q": True}, {}, {"q": None}, {"q": 0.5}], "q")
    assert indices.tolist() == [0, 3] and values.tolist() == [1.0, 0.5]
