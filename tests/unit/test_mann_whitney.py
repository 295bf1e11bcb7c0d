"""The Mann-Whitney U test against published and hand-worked values (normal approximation, tie and continuity
corrections), as the baseline comparison uses it."""

import math

import pytest

from releasegate.domain.mann_whitney import mann_whitney_u


def test_the_published_example_without_ties():
    """SciPy's documentation: males [19, 22, 16, 29, 24] against females [20, 11, 17, 12], asymptotic two-sided
    test: U = 17, p = 0.11134688653314041."""
    result = mann_whitney_u([19, 22, 16, 29, 24], [20, 11, 17, 12])
    assert result.u == 17
    assert result.p_value == pytest.approx(0.11134688653314041, rel=1e-9)


def test_complete_separation_one_and_two_sided():
    low, high = [1, 2, 3, 4, 5], [6, 7, 8, 9, 10]
    # U = 0 or 25 around a mean of 12.5, sd sqrt(25 * 11 / 12) = 4.787136; z = 12 / sd = 2.506718
    assert mann_whitney_u(low, high).p_value == pytest.approx(math.erfc(12 / math.sqrt(25 * 11 / 12) / math.sqrt(2)))
    assert mann_whitney_u(low, high).p_value == pytest.approx(0.0121858, rel=1e-4)
    greater = mann_whitney_u(high, low, "greater")
    assert (greater.u, round(greater.z, 5)) == (25, 2.50672)
    assert greater.p_value == pytest.approx(0.0060925, rel=1e-4)
    assert mann_whitney_u(low, high, "greater").p_value > 0.99  # the other direction: no evidence at all


def test_ties_share_their_average_rank_and_shrink_the_variance():
    """By hand: ranks 1 | 3 3 3 | 6 6 6 | 8, R1 = 13, U = 3; variance 16/12 * (9 - 48/56) = 10.857143,
    z = (|3 - 8| - 0.5) / 3.295018 = 1.365696, two-sided p = 0.172036."""
    result = mann_whitney_u([1, 2, 2, 3], [2, 3, 3, 4])
    assert result.u == 3
    assert result.z == pytest.approx(1.365696, rel=1e-5)
    assert result.p_value == pytest.approx(0.172036, rel=1e-4)


def test_all_values_tied_tell_nothing():
    result = mann_whitney_u([5, 5, 5], [5, 5])
    assert (result.u, result.z, result.p_value) == (3, 0.0, 1.0)


def test_an_empty_sample_is_refused():
    with pytest.raises(ValueError, match="at least one value"):
        mann_whitney_u([], [1.0])
