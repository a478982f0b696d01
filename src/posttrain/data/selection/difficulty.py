"""Difficulty predicted from features: ElasticNet with cross-validated alpha, fitted on a
small labelled subset and applied to every row.

SAERL (Tsinghua, 2026; issue 24) regresses difficulty on SAE activations with an ElasticNet
fitted on a few labelled samples (the policy's pass rate). We use scikit-learn's ElasticNetCV
(alpha and the L1 share chosen by k-fold cross-validation) behind a StandardScaler, so that
features on different scales (SAE codes, raw activations, TF-IDF) are penalised alike.

Part of the labelled rows is held out first and never seen by the fit: R^2 and Spearman's rho
on it are the report. The predictions for all rows then come from a refit on every labelled
row (with the alpha and L1 share cross-validation chose), since the subset is small by
design.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from posttrain.data.correlation import spearman
from posttrain.errors import InputError

L1_RATIOS = (0.1, 0.5, 0.9, 1.0)
"""L1 shares ElasticNetCV tries (scikit-learn's documentation suggests more near 1)."""
MIN_HELDOUT = 3
"""Held-out labelled rows at least: fewer make R^2 and a rank correlation meaningless."""


@dataclass
class DifficultyFit:
    predicted: np.ndarray
    """Predicted difficulty of every row (higher is harder)."""
    report: dict


def split_labelled(count: int, heldout_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions 0..count-1 split into (fit, held out), seeded; at least MIN_HELDOUT held out."""
    if not 0 < heldout_share < 1:
        raise InputError(
            f"{heldout_share!r}: a share strictly between 0 and 1", key="heldout_share"
        )
    order = np.random.default_rng(seed).permutation(count)
    heldout = max(MIN_HELDOUT, int(round(heldout_share * count)))
    return np.sort(order[heldout:]), np.sort(order[:heldout])


def minimum_labelled(folds: int, heldout_share: float) -> int:
    """The fewest labelled rows that leave 2 x folds rows to fit (every CV fold then validates
    on at least 2) after the held-out part."""
    count = 2 * folds + MIN_HELDOUT
    while count - max(MIN_HELDOUT, int(round(heldout_share * count))) < 2 * folds:
        count += 1
    return count


@contextlib.contextmanager
def _quiet_convergence() -> Iterator[None]:
    """Coordinate descent may stop short of sklearn's tolerance on a few hundred labelled
    rows (a ConvergenceWarning per fold and penalty): the fit is still the one used, and
    the report's held-out R^2 / Spearman say how good it is."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        yield


def _model(folds: int, seed: int):
    from sklearn.linear_model import ElasticNetCV  # slow import; only callers pay
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    regressor = ElasticNetCV(
        l1_ratio=list(L1_RATIOS),
        cv=folds,
        alphas=50,
        max_iter=5000,
        random_state=seed,
        selection="random",
    )
    return make_pipeline(StandardScaler(), regressor)


def _refit(alpha: float, l1_ratio: float, seed: int):
    from sklearn.linear_model import ElasticNet
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    regressor = ElasticNet(
        alpha=alpha, l1_ratio=l1_ratio, max_iter=5000, random_state=seed, selection="random"
    )
    return make_pipeline(StandardScaler(), regressor)


def fit_difficulty(
    features: np.ndarray,
    labelled: np.ndarray,
    labels: np.ndarray,
    *,
    folds: int = 5,
    heldout_share: float = 0.25,
    seed: int = 0,
    option: str = "difficulty",
) -> DifficultyFit:
    """Fit on the rows `labelled` (indices into `features`) with their `labels` (higher is
    harder), report R^2 / Spearman on a held-out part, predict every row. Too few labelled
    rows is an InputError naming `option` and the counts."""
    from sklearn.metrics import r2_score

    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise InputError(f"{folds!r}: an integer >= 2", key="difficulty_cv_folds")
    labelled, labels = np.asarray(labelled), np.asarray(labels, dtype=np.float64)
    needed = minimum_labelled(folds, heldout_share)
    if len(labelled) < needed:
        raise InputError(
            f"{len(labelled)} labelled rows; the difficulty regressor needs at least {needed} "
            f"({2 * folds} to fit with {folds}-fold CV, the rest held out): label more rows or "
            "lower difficulty_cv_folds",
            key=option,
        )
    if np.all(labels == labels[0]):
        raise InputError(
            f"all {len(labels)} labels are {labels[0]}: nothing to regress", key=option
        )
    fit, heldout = split_labelled(len(labelled), heldout_share, seed)
    with _quiet_convergence():
        model = _model(folds, seed).fit(features[labelled[fit]], labels[fit])
    guess = model.predict(features[labelled[heldout]])
    truth = labels[heldout]
    regressor = model[-1]
    report = {
        "labelled": int(len(labelled)),
        "fit_rows": int(len(fit)),
        "heldout_rows": int(len(heldout)),
        "r2": float(r2_score(truth, guess)),
        "spearman": spearman(truth, guess),
        "alpha": float(regressor.alpha_),
        "l1_ratio": float(regressor.l1_ratio_),
    }
    # The refit keeps the cross-validated alpha and L1 share: one fit, not another search.
    with _quiet_convergence():
        final = _refit(regressor.alpha_, regressor.l1_ratio_, seed)
        final.fit(features[labelled], labels)
    return DifficultyFit(predicted=final.predict(features), report=report)
