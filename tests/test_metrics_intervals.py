"""Intervals: Wilson, Clopper–Pearson, Newcombe and the cluster bootstrap against references."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from trustramp.metrics import (
    ClusterBootstrap,
    Proportion,
    clopper_pearson_bound,
    clopper_pearson_interval,
    cluster_bootstrap_interval,
    newcombe_interval,
    proportion,
    wilson_interval,
)

CONFIDENCES = [0.8, 0.9, 0.95, 0.99]


def _grid() -> tuple[np.ndarray, np.ndarray]:
    ns = np.array([1, 2, 5, 10, 37, 200, 1000, 25_000])
    k = np.concatenate([np.unique(np.linspace(0, n, 12).round()) for n in ns])
    n = np.concatenate([np.full(np.unique(np.linspace(0, m, 12).round()).size, m) for m in ns])
    return k, n


@pytest.mark.parametrize("confidence", CONFIDENCES)
def test_wilson_matches_statsmodels(confidence: float) -> None:
    k, n = _grid()
    low, high = wilson_interval(k, n, confidence=confidence)
    ref_low, ref_high = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    np.testing.assert_allclose(low, ref_low, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(high, ref_high, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("confidence", CONFIDENCES)
def test_clopper_pearson_matches_statsmodels_beta(confidence: float) -> None:
    k, n = _grid()
    low, high = clopper_pearson_interval(k, n, confidence=confidence)
    ref_low, ref_high = proportion_confint(k, n, alpha=1 - confidence, method="beta")
    np.testing.assert_allclose(low, ref_low, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(high, ref_high, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("confidence", CONFIDENCES)
@pytest.mark.parametrize("side", ["lower", "upper"])
def test_one_sided_bound_is_two_sided_at_double_alpha(confidence: float, side: str) -> None:
    k, n = _grid()
    bound = clopper_pearson_bound(k, n, confidence=confidence, side=side)
    ref_low, ref_high = proportion_confint(k, n, alpha=2 * (1 - confidence), method="beta")
    np.testing.assert_allclose(bound, ref_low if side == "lower" else ref_high, atol=1e-12)


@pytest.mark.parametrize(
    ("k", "n", "expect_low", "expect_high"),
    [(0, 20, 0.0, None), (20, 20, None, 1.0), (0, 1, 0.0, None), (1, 1, None, 1.0)],
)
@pytest.mark.parametrize("interval", [wilson_interval, clopper_pearson_interval])
def test_extremes_are_exact_zero_and_one(interval, k, n, expect_low, expect_high) -> None:
    low, high = interval(k, n)
    if expect_low is not None:
        assert low == expect_low
        assert high > 0
    if expect_high is not None:
        assert high == expect_high
        assert low < 1


@pytest.mark.parametrize(
    "call",
    [
        lambda: wilson_interval(0, 0),
        lambda: clopper_pearson_interval(0, 0),
        lambda: (clopper_pearson_bound(0, 0), clopper_pearson_bound(0, 0, side="upper")),
        lambda: newcombe_interval(1, 2, 0, 0),
    ],
)
def test_n_zero_gives_nan_not_an_error(call) -> None:
    assert all(math.isnan(x) for x in np.ravel(call()))


def test_scalar_in_float_out_array_in_array_out() -> None:
    low, high = wilson_interval(3, 10)
    assert type(low) is float and type(high) is float
    low, high = wilson_interval([3, 0], [10, 0])
    assert isinstance(low, np.ndarray) and low.shape == (2,)
    assert math.isnan(low[1])
    assert isinstance(clopper_pearson_bound(3, 10), float)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: wilson_interval(5, 4), r"k must not exceed n.*k=\[5.0\]"),
        (lambda: wilson_interval(-1, 4), r"k must be finite and >= 0, got \[-1.0\]"),
        (lambda: wilson_interval(1, float("nan")), r"n must be finite"),
        (lambda: wilson_interval(1, 4, confidence=1.0), r"confidence must be in \(0, 1\), got 1.0"),
        (lambda: wilson_interval(1, 4, confidence=95), r"confidence must be in \(0, 1\), got 95"),
        (lambda: clopper_pearson_bound(1, 4, side="both"), r"side must be one of"),
        (lambda: wilson_interval([1, 2], [3, 4, 5]), r"broadcastable shapes"),
        (lambda: wilson_interval("a", 3), r"k must be numeric"),
        (lambda: cluster_bootstrap_interval([1, 2], [3]), r"same length, got 2 and 1"),
        (lambda: cluster_bootstrap_interval([1, 2], [3, 4], reps=0), r"reps must be an integer"),
        (lambda: proportion(1, 2, method="wald"), r"method must be one of"),
    ],
)
def test_errors_name_the_argument(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def _exact_coverage(p: float, n: int, low: np.ndarray, high: np.ndarray) -> float:
    k = np.arange(n + 1)
    return float(stats.binom.pmf(k, n, p)[(low <= p) & (p <= high)].sum())


@pytest.mark.parametrize("n", [10, 50, 200])
def test_clopper_pearson_exact_coverage_never_below_nominal(n: int) -> None:
    k = np.arange(n + 1)
    low, high = clopper_pearson_interval(k, np.full(n + 1, n), confidence=0.95)
    lower = clopper_pearson_bound(k, np.full(n + 1, n), confidence=0.95)
    for p in np.linspace(0.005, 0.995, 199):
        assert _exact_coverage(p, n, low, high) >= 0.95 - 1e-9
        assert _exact_coverage(p, n, lower, np.ones(n + 1)) >= 0.95 - 1e-9


@pytest.mark.parametrize("n", [50, 200, 1000])
def test_coverage_in_simulation(n: int) -> None:
    # 2000 seeded draws at each of several true rates typical of accuracy.
    rng = np.random.default_rng(n)
    reps = 2000
    wilson_cov, cp_cov, cp_lower_cov = [], [], []
    for p in (0.5, 0.7, 0.85, 0.9, 0.95, 0.98):
        k = rng.binomial(n, p, size=reps)
        nn = np.full(reps, n)
        w_low, w_high = wilson_interval(k, nn)
        c_low, c_high = clopper_pearson_interval(k, nn)
        wilson_cov.append(np.mean((w_low <= p) & (p <= w_high)))
        cp_cov.append(np.mean((c_low <= p) & (p <= c_high)))
        cp_lower_cov.append(np.mean(clopper_pearson_bound(k, nn) <= p))
    # Monte Carlo SE of one coverage estimate is ~0.005; Wilson oscillates around nominal.
    assert abs(np.mean(wilson_cov) - 0.95) < 0.01
    assert min(wilson_cov) > 0.92
    assert min(cp_cov) >= 0.95 - 0.012  # exact: never below nominal up to MC noise
    assert np.mean(cp_cov) >= 0.95
    assert min(cp_lower_cov) >= 0.95 - 0.012


@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_newcombe_matches_statsmodels(confidence: float) -> None:
    rng = np.random.default_rng(1)
    n1 = rng.integers(1, 500, 50)
    n2 = rng.integers(1, 500, 50)
    k1 = rng.binomial(n1, 0.8)
    k2 = rng.binomial(n2, 0.7)
    k1[:3], k2[3:6] = 0, n2[3:6]  # extremes
    low, high = newcombe_interval(k1, n1, k2, n2, confidence=confidence)
    ref_low, ref_high = confint_proportions_2indep(
        k1, n1, k2, n2, method="newcomb", compare="diff", alpha=1 - confidence
    )
    np.testing.assert_allclose(low, ref_low, atol=1e-12)
    np.testing.assert_allclose(high, ref_high, atol=1e-12)


def test_proportion_carries_value_and_interval() -> None:
    r = proportion([9, 0], [10, 0])
    assert isinstance(r, Proportion)
    np.testing.assert_allclose(r.value[0], 0.9)
    assert math.isnan(r.value[1])
    frame = r.to_frame()
    assert list(frame.columns) == ["value", "ci_low", "ci_high", "k", "n"]
    assert len(frame) == 2
    exact = proportion(9, 10, method="clopper_pearson")
    assert (exact.ci_low, exact.ci_high) == clopper_pearson_interval(9, 10)
    assert "<table" in exact._repr_html_()
    with pytest.raises(AttributeError):
        exact.value = 0.5  # type: ignore[misc]


# --- cluster bootstrap ------------------------------------------------------------------------


def test_cluster_bootstrap_is_seeded_and_reproducible() -> None:
    rng = np.random.default_rng(3)
    n = rng.integers(5, 50, 80)
    k = rng.binomial(n, 0.8)
    a = cluster_bootstrap_interval(k, n, seed=11)
    b = cluster_bootstrap_interval(k, n, seed=11)
    c = cluster_bootstrap_interval(k, n, seed=12)
    assert isinstance(a, ClusterBootstrap)
    assert a == b
    assert a != c
    assert a.estimate == k.sum() / n.sum()
    assert a.low < a.estimate < a.high


def test_cluster_bootstrap_is_fast_at_1000_clusters_by_1000_reps() -> None:
    rng = np.random.default_rng(4)
    n = rng.integers(1, 100, 1000)
    k = rng.binomial(n, 0.9)
    start = time.perf_counter()
    result = cluster_bootstrap_interval(k, n, reps=1000)
    assert time.perf_counter() - start < 2.0
    assert result.low < result.estimate < result.high


def test_cluster_bootstrap_with_singleton_clusters_is_the_item_bootstrap() -> None:
    # One item per cluster: no clustering, so the interval must agree with Wilson's.
    rng = np.random.default_rng(5)
    k = rng.binomial(1, 0.9, 4000)
    result = cluster_bootstrap_interval(k, np.ones_like(k), reps=4000, seed=5)
    low, high = wilson_interval(k.sum(), k.size)
    assert result.low == pytest.approx(low, abs=0.004)
    assert result.high == pytest.approx(high, abs=0.004)


@pytest.mark.parametrize(
    ("k", "n"),
    [([3], [10]), ([3, 0], [10, 0]), ([], []), ([0, 0], [0, 0])],
)
def test_cluster_bootstrap_needs_two_nonempty_clusters(k: list[int], n: list[int]) -> None:
    result = cluster_bootstrap_interval(k, n)
    assert math.isnan(result.low) and math.isnan(result.high)
    if sum(n):
        assert result.estimate == sum(k) / sum(n)
    else:
        assert math.isnan(result.estimate)


def test_cluster_bootstrap_ignores_empty_clusters() -> None:
    k, n = np.array([5, 7, 9, 3]), np.array([10, 10, 10, 10])
    with_empty = cluster_bootstrap_interval(
        np.concatenate([k, [0, 0]]), np.concatenate([n, [0, 0]]), seed=2
    )
    assert with_empty == cluster_bootstrap_interval(k, n, seed=2)


def test_cluster_bootstrap_keeps_coverage_where_pooled_wilson_fails() -> None:
    """Customers differ in accuracy (beta-distributed); items within a customer correlate.

    The cluster bootstrap stays near its nominal 95 %; a Wilson interval on the pooled items,
    which treats them as independent, covers the true rate only about half the time.
    """
    rng = np.random.default_rng(2026)
    truth, concentration, clusters, sims = 0.85, 6.0, 150, 1000
    boot_hits = wilson_hits = 0
    for s in range(sims):
        p = rng.beta(truth * concentration, (1 - truth) * concentration, clusters)
        n = rng.integers(10, 60, clusters)
        k = rng.binomial(n, p)
        _, low, high = cluster_bootstrap_interval(k, n, reps=400, seed=s)
        boot_hits += low <= truth <= high
        w_low, w_high = wilson_interval(k.sum(), n.sum())
        wilson_hits += w_low <= truth <= w_high
    assert 0.925 <= boot_hits / sims <= 0.97
    assert wilson_hits / sims < 0.75


# --- properties -------------------------------------------------------------------------------


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=10**7),
    frac=st.floats(min_value=0, max_value=1),
    confidence=st.floats(min_value=0.5, max_value=0.999),
)
def test_wilson_contains_the_estimate_and_stays_in_unit_interval(
    n: int, frac: float, confidence: float
) -> None:
    k = round(frac * n)
    low, high = wilson_interval(k, n, confidence=confidence)
    assert 0.0 <= low <= k / n <= high <= 1.0
    c_low, c_high = clopper_pearson_interval(k, n, confidence=confidence)
    assert 0.0 <= c_low <= k / n <= c_high <= 1.0
