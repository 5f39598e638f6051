"""Version comparison: McNemar against statsmodels, verdicts, false-regression rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar

from trustramp.metrics import ComparisonVerdict, VersionComparison, compare_versions, mcnemar_test

CASES = [
    (0, 0),
    (0, 5),
    (3, 12),
    (12, 3),
    (7, 7),
    (0, 24),
    (12, 12),
    (24, 0),
    (12, 13),
    (10, 15),
    (30, 60),
    (100, 101),
    (40, 10),
    (500, 450),
    (1, 30),
]


@pytest.mark.parametrize(("b", "c"), CASES)
def test_mcnemar_matches_statsmodels(b: int, c: int) -> None:
    got = mcnemar_test(b, c)
    exact = b + c < 25
    assert got.method == ("exact" if exact else "chi2")
    ref = mcnemar([[100, b], [c, 50]], exact=exact, correction=True)
    if not exact and b == c:
        # statsmodels' correction overshoots to (|0| - 1)^2 / (b + c) > 0; ours floors at 0.
        assert got.statistic == 0.0 and got.p_value == 1.0
        return
    assert got.statistic == pytest.approx(ref.statistic)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-12)


def test_mcnemar_switches_to_chi_square_at_25_discordant_pairs() -> None:
    assert mcnemar_test(4, 20).method == "exact"
    assert mcnemar_test(5, 20).method == "chi2"


@pytest.mark.parametrize(
    ("table", "verdict"),
    [
        ((800, 10, 40, 150), ComparisonVerdict.REGRESSION),
        ((800, 40, 10, 150), ComparisonVerdict.IMPROVEMENT),
        ((800, 20, 22, 158), ComparisonVerdict.NO_DIFFERENCE),
        ((1000, 0, 0, 0), ComparisonVerdict.NO_DIFFERENCE),  # identical versions
        ((0, 0, 0, 0), ComparisonVerdict.INSUFFICIENT),
    ],
)
def test_compare_versions_verdicts(
    table: tuple[int, int, int, int], verdict: ComparisonVerdict
) -> None:
    r = compare_versions(*table)
    assert isinstance(r, VersionComparison)
    assert r.verdict is verdict
    a, b, c, d = table
    n = a + b + c + d
    assert r.n == n
    if n:
        assert r.candidate_accuracy == pytest.approx((a + b) / n)
        assert r.previous_accuracy == pytest.approx((a + c) / n)
        assert r.difference == pytest.approx(r.candidate_accuracy - r.previous_accuracy)
        assert r.p_value == mcnemar_test(b, c).p_value
    else:
        assert math.isnan(r.candidate_accuracy) and math.isnan(r.difference)
    assert r.to_frame().loc[0, "verdict"] == verdict.value


def test_compare_versions_min_n_gives_insufficient() -> None:
    r = compare_versions(80, 0, 15, 5, min_n=200)
    assert r.verdict is ComparisonVerdict.INSUFFICIENT
    assert r.difference == pytest.approx(-0.15)


def test_false_regression_rate_under_equal_accuracy() -> None:
    # Both versions 90 % accurate, correlated errors; the two-sided test at 0.05 should call a
    # regression in at most ~2.5 % of runs.
    rng = np.random.default_rng(5)
    sims, regressions = 2000, 0
    probs = [0.85, 0.05, 0.05, 0.05]  # both right, only candidate, only previous, neither
    for table in rng.multinomial(600, probs, size=sims):
        regressions += compare_versions(*map(int, table)).verdict is ComparisonVerdict.REGRESSION
    assert regressions / sims <= 0.025 + 0.01


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((-1, 0), r"b must be a non-negative integer count, got -1"),
        ((1.5, 0), r"b must be a non-negative integer count, got 1.5"),
        ((0, float("nan")), r"c must be a non-negative integer count"),
        ((0, "3"), r"c must be a non-negative integer count, got '3'"),
    ],
)
def test_mcnemar_errors(args: tuple[object, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mcnemar_test(*args)  # type: ignore[arg-type]


def test_compare_versions_errors() -> None:
    with pytest.raises(ValueError, match="neither must be a non-negative integer count"):
        compare_versions(1, 2, 3, -4)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        compare_versions(1, 2, 3, 4, alpha=0)
