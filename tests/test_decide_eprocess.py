"""The anytime-valid test and the exact bounds: against numeric integration, statsmodels, exact
expectations, asymptotics, and a repeated-looks simulation."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.proportion import proportion_confint

from trustramp.decide import eprocess
from trustramp.decide.eprocess import (
    anytime_lower_bound,
    anytime_upper_bound,
    clopper_pearson_lower,
    clopper_pearson_upper,
    e_value,
    log_e_value,
)
from trustramp.decide.gates import Outcome, judge_proportion


def mixture_by_quadrature(k: int, n: int, p0: float, a: float, b: float) -> float:
    """The e-value's definition, integrated directly: the truncated-prior mixture of L(p)/L(p0)."""
    num, _ = integrate.quad(
        lambda p: stats.beta.pdf(p, a, b) * (p / p0) ** k * ((1 - p) / (1 - p0)) ** (n - k),
        p0,
        1,
        epsabs=0,
        epsrel=1e-10,
        limit=500,
    )
    return num / stats.beta.sf(p0, a, b)


@pytest.mark.parametrize(
    "k, n, p0",
    [
        (0, 0, 0.5),
        (1, 1, 0.9),
        (5, 5, 0.5),
        (9, 10, 0.9),
        (3, 10, 0.2),
        (0, 7, 0.3),
        (45, 50, 0.9),
        (50, 50, 0.95),
        (20, 40, 0.6),
        (38, 40, 0.8),
    ],
)
@pytest.mark.parametrize("prior", [(1.0, 1.0), (2.0, 0.5), (0.5, 0.5), (9.0, 1.0)])
def test_e_value_matches_direct_integration(
    k: int, n: int, p0: float, prior: tuple[float, float]
) -> None:
    expected = mixture_by_quadrature(k, n, p0, *prior)
    assert e_value(k, n, p0, prior=prior) == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("n, p0", [(1, 0.5), (10, 0.9), (50, 0.9), (200, 0.95), (120, 0.3)])
def test_e_value_has_expectation_one_at_the_null_boundary(n: int, p0: float) -> None:
    # A mixture of likelihood ratios is a martingale under p0: E_p0[E_n] = 1 exactly.
    ks = np.arange(n + 1)
    mean = float(np.sum(stats.binom.pmf(ks, n, p0) * e_value(ks, n, p0)))
    assert mean == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("n, p, p0", [(10, 0.5, 0.9), (50, 0.85, 0.9), (200, 0.2, 0.3)])
def test_e_value_is_a_supermartingale_inside_the_composite_null(
    n: int, p: float, p0: float
) -> None:
    ks = np.arange(n + 1)
    assert float(np.sum(stats.binom.pmf(ks, n, p) * e_value(ks, n, p0))) < 1.0


def test_e_value_grows_with_successes_and_vectorizes() -> None:
    ks = np.arange(0, 301)
    logs = log_e_value(ks, 300, 0.9)
    assert np.all(np.diff(logs) > 0)
    assert logs[270] == pytest.approx(log_e_value(270, 300, 0.9))


@pytest.mark.parametrize("rate", [0.5, 0.85, 0.89, 0.899, 0.9, 0.901, 0.91, 0.95, 0.999])
def test_log_e_value_is_finite_and_accurate_at_ten_million(rate: float) -> None:
    n, p0 = 10_000_000, 0.9
    k = round(rate * n)
    got = log_e_value(k, n, p0)
    assert math.isfinite(got)
    if k / n < p0 - 1e-3:
        # Far below p0 the uniform mixture over (p0, 1] is dominated by its edge: with
        # l(p) the log likelihood, E ≈ 1 / ((1 - p0) |l'(p0)|) (Laplace at the boundary).
        slope = n * (k / n - p0) / (p0 * (1 - p0))
        assert got == pytest.approx(-math.log((1 - p0) * abs(slope)), rel=1e-4)
    if k / n > p0 + 1e-3:
        # Far above, the truncation no longer matters: E ≈ B(k+1, n-k+1) / (L(p0) (1-p0)).
        from scipy.special import betaln

        full = betaln(k + 1, n - k + 1) - k * math.log(p0) - (n - k) * math.log1p(-p0)
        assert got == pytest.approx(full - math.log(1 - p0), rel=1e-9)


@pytest.mark.parametrize(
    "x, a, b",
    [(0.9, 800.0, 150.0), (0.9, 8000.0, 1500.0), (0.5, 30.0, 80.0), (0.95, 2000.0, 300.0)],
)
def test_tail_fallback_agrees_with_betaincc_where_both_work(x: float, a: float, b: float) -> None:
    from scipy.special import betaincc

    assert eprocess._log_tail_by_quadrature(x, a, b) == pytest.approx(
        math.log(betaincc(a, b, x)), rel=1e-9
    )


@pytest.mark.parametrize(
    "k, n",
    [(0, 10), (1, 10), (9, 10), (10, 10), (185, 200), (500, 500), (9_500, 10_000), (0, 1), (1, 1)],
)
@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
def test_clopper_pearson_matches_statsmodels(k: int, n: int, alpha: float) -> None:
    # A one-sided 1-alpha bound is one side of the two-sided 1-2*alpha exact interval.
    lo, hi = proportion_confint(k, n, alpha=2 * alpha, method="beta")
    assert clopper_pearson_lower(k, n, alpha=alpha) == pytest.approx(lo, abs=1e-12)
    assert clopper_pearson_upper(k, n, alpha=alpha) == pytest.approx(hi, abs=1e-12)


@pytest.mark.parametrize(
    "k, n", [(1, 1), (10, 10), (95, 100), (290, 300), (2_700, 3_000), (9_500_000, 10_000_000)]
)
@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_anytime_lower_bound_inverts_the_e_value(k: int, n: int, alpha: float) -> None:
    bound = anytime_lower_bound(k, n, alpha=alpha)
    assert 0 < bound < k / n or (k == n and bound < 1)
    assert log_e_value(k, n, bound) == pytest.approx(math.log(1 / alpha), abs=1e-6)
    assert e_value(k, n, bound * 0.999) > 1 / alpha  # just below: rejected
    assert e_value(k, n, min(bound * 1.001, 1 - 1e-9)) < 1 / alpha  # just above: not rejected
    # Anytime validity costs width: the sequence is wider than the fixed-n exact bound.
    assert bound < clopper_pearson_lower(k, n, alpha=alpha)


def test_anytime_bounds_edges_and_symmetry() -> None:
    assert anytime_lower_bound(0, 50, alpha=0.05) == 0.0
    assert anytime_upper_bound(0, 0, alpha=0.05) == 1.0
    assert anytime_lower_bound(1, 1, alpha=0.05) == pytest.approx(1 / 39)  # (1+p)/(2p) = 20
    assert anytime_upper_bound(3, 300, alpha=0.05) == pytest.approx(
        1 - anytime_lower_bound(297, 300, alpha=0.05)
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: e_value(5, 4, 0.5), "0 <= k <= n"),
        (lambda: e_value(-1, 4, 0.5), "0 <= k <= n"),
        (lambda: e_value(1.5, 4, 0.5), "whole numbers"),
        (lambda: e_value(1, 4, 1.0), r"p0 must be in \(0, 1\), got 1.0"),
        (lambda: e_value(1, 4, 0.0), r"p0 must be in \(0, 1\)"),
        (lambda: e_value(1, 4, 0.5, prior=(0.0, 1.0)), r"prior must be .*\(0.0, 1.0\)"),
        (lambda: anytime_lower_bound(1, 4, alpha=1.5), r"alpha must be in \(0, 1\), got 1.5"),
        (lambda: clopper_pearson_lower(1, 4, alpha=0.0), "alpha must be in"),
    ],
)
def test_errors_name_the_argument_and_value(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()


def test_doctests() -> None:
    assert doctest.testmod(eprocess, raise_on_error=False).failed == 0


# --------------------------------------------------------------------------- simulation

NIGHTS, PER_NIGHT, RUNS, ALPHA, TARGET = 30, 300, 2_000, 0.05, 0.90


def _false_go_rates(p_true: float, seed: int) -> tuple[float, float]:
    """Share of runs with a GO on any of 30 nightly looks: e-gate (as gates use it) vs naive CP."""
    rng = np.random.default_rng(seed)
    k = np.cumsum(rng.binomial(PER_NIGHT, p_true, size=(RUNS, NIGHTS)), axis=1)
    n = np.broadcast_to(PER_NIGHT * np.arange(1, NIGHTS + 1), k.shape)
    cp_low = stats.beta.ppf(ALPHA, k, n - k + 1)  # k > 0 throughout here
    naive = cp_low > TARGET
    gate = naive & (log_e_value(k, n, TARGET) >= math.log(1 / ALPHA))
    return float(gate.any(axis=1).mean()), float(naive.any(axis=1).mean())


def test_nightly_looks_keep_the_false_go_rate_at_alpha_unlike_naive_clopper_pearson() -> None:
    gate_rate, naive_rate = _false_go_rates(TARGET, seed=20261127)
    # Accuracy exactly at the target, 30 looks on growing counts, 2,000 seeded runs: the
    # e-process gate stays at or below alpha, the repeated fixed-n bound does not.
    assert gate_rate <= ALPHA
    assert naive_rate > 2 * ALPHA
    assert naive_rate > 4 * gate_rate
    # and a single look of the naive bound alone is (conservatively) at level
    rng = np.random.default_rng(7)
    k = rng.binomial(PER_NIGHT * NIGHTS, TARGET, size=RUNS)
    single = stats.beta.ppf(ALPHA, k, PER_NIGHT * NIGHTS - k + 1) > TARGET
    assert single.mean() <= ALPHA + 0.01


def test_the_e_gate_still_has_power_when_the_model_is_better() -> None:
    gate_rate, naive_rate = _false_go_rates(0.93, seed=11)
    assert gate_rate > 0.9
    assert naive_rate >= gate_rate


def test_the_vectorized_simulation_rule_is_the_gate_rule() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(200, 3_000))
        k = int(rng.binomial(n, rng.uniform(0.88, 0.96)))
        vector = (stats.beta.ppf(ALPHA, k, n - k + 1) > TARGET) and (
            log_e_value(k, n, TARGET) >= math.log(1 / ALPHA)
        )
        judged = judge_proportion(
            k, n, threshold=TARGET, comparator=">", confidence_level=1 - ALPHA, min_samples=200
        )
        assert (judged.outcome is Outcome.PASS) == vector


def test_anytime_bound_root_matches_scipy_brentq() -> None:
    """The bisection that replaced scipy.optimize.brentq finds the same crossing, never above."""
    import random

    from scipy import optimize

    from trustramp.decide import eprocess

    rng = random.Random(1)
    for _ in range(500):
        n = rng.choice([1, 2, 5, 30, 1000, 10**5, 10**7])
        k, alpha = rng.randint(1, n), rng.choice([0.001, 0.01, 0.05, 0.1])
        target, rate = math.log(1 / alpha), k / n
        hi = rate if k < n else 1 - 1e-12

        def f(p0: float, k: int = k, n: int = n, target: float = target) -> float:
            return eprocess.log_e_value(k, n, p0) - target

        if f(hi) >= 0:
            continue
        lo = max(rate - 8 * math.sqrt(rate * (1 - rate) / n) - 8 * target / n, 0.0)
        if lo <= 0 or f(lo) < 0:
            lo = 1e-300
        ref = optimize.brentq(f, lo, hi, xtol=1e-13, rtol=1e-12)
        got = eprocess.anytime_lower_bound(k, n, alpha=alpha)
        assert got == pytest.approx(ref, abs=2e-13, rel=2e-12)
        assert f(got) >= 0  # on the rejected side: a lower bound never above the crossing
