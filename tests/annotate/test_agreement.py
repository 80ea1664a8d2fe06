"""Fleiss' kappa against hand-computed values."""

import pytest

from ipo_ray.annotate.agreement import fleiss_kappa


def test_hand_computed_example() -> None:
    # 3 items, 3 raters, 2 categories. P_i = 1, 1, 1/3 → P̄ = 7/9; p = 5/9, 4/9 → P̄e = 41/81;
    # κ = (63/81 − 41/81) / (40/81) = 22/40.
    assert fleiss_kappa([[3, 0], [0, 3], [2, 1]]) == pytest.approx(0.55)


def test_systematic_disagreement_is_minus_one() -> None:
    # Every item split 1–1 by 2 raters: P̄ = 0, P̄e = 1/2 → κ = −1.
    assert fleiss_kappa([[1, 1], [1, 1]]) == pytest.approx(-1.0)


def test_full_agreement_is_one() -> None:
    assert fleiss_kappa([[3, 0, 0], [0, 0, 3]]) == pytest.approx(1.0)
    assert fleiss_kappa([[3, 0, 0], [3, 0, 0]]) == 1.0  # one category only: chance agreement is 1


@pytest.mark.parametrize("counts", [[], [[1, 0]], [[3, 0], [2, 0]], [[3, 0], [3, 0, 0]], [[4, -1]]], ids=str)
def test_bad_counts_are_refused(counts: list[list[int]]) -> None:
    with pytest.raises(ValueError):
        fleiss_kappa(counts)
