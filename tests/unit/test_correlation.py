"""The one Spearman: scipy's rho where defined, None where a rank correlation is not."""

from __future__ import annotations

import numpy as np
import pytest

from posttrain.data.correlation import spearman
from posttrain.data.feedback.agreement import agreement


def test_monotone_pairs_have_rho_plus_or_minus_one() -> None:
    assert spearman([0.1, 0.5, 0.9], [1, 2, 4]) == pytest.approx(1.0)
    assert spearman([3.0, 2.0, 1.0], [1, 2, 4]) == pytest.approx(-1.0)
    assert spearman(np.array([1.0, 5.0, 2.0]), np.array([10, 30, 20])) == pytest.approx(1.0)


def test_ties_get_average_ranks() -> None:
    # Ranks (1.5, 1.5, 3, 4) and (1, 2, 3, 4): Pearson of the ranks, worked out by hand.
    rx, ry = np.array([1.5, 1.5, 3, 4]), np.array([1, 2, 3, 4])
    dx, dy = rx - rx.mean(), ry - ry.mean()
    expected = (dx @ dy) / np.sqrt((dx @ dx) * (dy @ dy))
    assert spearman([2, 2, 5, 7], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("x", "y"),
    [([], []), ([1.0], [2.0]), ([1.0, 1.0, 1.0], [1, 2, 3]), ([1, 2, 3], [4, 4, 4])],
    ids=["empty", "one pair", "constant x", "constant y"],
)
def test_undefined_correlations_are_none(x: list[float], y: list[float]) -> None:
    assert spearman(x, y) is None


def test_bad_inputs_are_errors() -> None:
    with pytest.raises(ValueError, match="lengths differ: 3 and 2"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="y has non-finite values"):
        spearman([1, 2, 3], [1, float("nan"), 2])
    with pytest.raises(ValueError, match="x must be 1-dimensional"):
        spearman([[1, 2], [3, 4]], [1, 2])


def test_label_agreement_reports_the_same_rho_rounded() -> None:
    labels, qualities = [1, 2, 2, 3, 4, 4], [0.0, 0.3, 0.1, 0.6, 1.0, 0.6]
    assert agreement(labels, qualities)["spearman"] == round(spearman(labels, qualities), 4)
    assert agreement([2, 2], [0.1, 0.9])["spearman"] is None
