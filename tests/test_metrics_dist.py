"""trustramp._dist gives bit for bit what scipy.stats gives (it exists only to avoid
importing scipy.stats on the evaluate path)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from trustramp import _dist

RNG = np.random.default_rng(20261127)


def _counts(size: int, high: int) -> tuple[np.ndarray, np.ndarray]:
    n = RNG.integers(0, high, size)
    k = np.floor(n * RNG.uniform(0, 1, size)).astype(np.int64)
    k[: size // 20] = n[: size // 20]  # all correct
    k[size // 20 : size // 10] = 0
    return k, n


def _same(a: object, b: object) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("p", [0.5, 0.6, 0.8, 0.9, 0.95, 0.99, 0.999, 0.0, 1.0])
@pytest.mark.parametrize("high", [30, 3_000, 300_000])
def test_binomial_tails_match_scipy(p: float, high: int) -> None:
    k, n = _counts(20_000, high)
    _same(_dist.binom_sf(k - 1, n, p), stats.binom.sf(k - 1, n, p))
    _same(_dist.binom_at_least(k, n, p), stats.binom.sf(k - 1, n, p))
    _same(_dist.binom_sf(k, n, p), stats.binom.sf(k, n, p))
    _same(_dist.binom_cdf(k, n, p), stats.binom.cdf(k, n, p))
    _same(_dist.binom_cdf(k - 1, n, p), stats.binom.cdf(k - 1, n, p))


@pytest.mark.parametrize(("x", "n"), [(-1, 10), (0, 0), (-1, 0), (9, 10), (10, 10), (3, 7)])
def test_binomial_scalars_and_edges_match_scipy(x: int, n: int) -> None:
    for p in (0.5, 0.95):
        _same(_dist.binom_sf(x, n, p), stats.binom.sf(x, n, p))
        _same(_dist.binom_cdf(x, n, p), stats.binom.cdf(x, n, p))
        assert type(_dist.binom_sf(x, n, p)) is type(stats.binom.sf(x, n, p))


@pytest.mark.parametrize("q", [0.001, 0.005, 0.0166, 0.025, 0.05, 0.1, 0.5, 0.95, 0.975])
def test_beta_quantiles_match_scipy(q: float) -> None:
    k, n = _counts(20_000, 100_000)
    n = np.maximum(n, 1)
    k = np.minimum(k, n)
    a, b = np.where(k > 0, k, 1.0), n - k + 1.0
    _same(_dist.beta_ppf(q, a, b), stats.beta.ppf(q, a, b))
    a, b = k + 1.0, np.where(k < n, n - k, 1.0)
    _same(_dist.beta_isf(q, a, b), stats.beta.isf(q, a, b))
    _same(_dist.beta_ppf(q, 7, 3), stats.beta.ppf(q, 7, 3))


def test_normal_and_chi_square_match_scipy() -> None:
    q = np.concatenate([RNG.uniform(0, 1, 10_000), [0.0, 1.0, 0.5, 0.975, 0.025]])
    _same(_dist.norm_ppf(q), stats.norm.ppf(q))
    _same(_dist.norm_isf(q), stats.norm.isf(q))
    for level in (0.8, 0.9, 0.95, 0.99):
        _same(_dist.norm_ppf(0.5 + level / 2), stats.norm.ppf(0.5 + level / 2))
        _same(_dist.norm_isf((1 - level) / 2), stats.norm.isf((1 - level) / 2))
    x = np.concatenate([RNG.exponential(5, 10_000), [0.0, -1.0, np.inf, np.nan]])
    inner = RNG.uniform(1e-9, 1 - 1e-9, 10_000)
    for df in (1, 2, 3, 9, 14):
        _same(_dist.chi2_sf(x, df), stats.chi2.sf(x, df))
        _same(_dist.chi2_sf(3.2, df), stats.chi2.sf(3.2, df))
        _same(_dist.chi2_ppf(inner, df), stats.chi2.ppf(inner, df))
        _same(_dist.chi2_ppf(0.99, df), stats.chi2.ppf(0.99, df))


@pytest.mark.parametrize("rows", [2, 3, 4, 7])
def test_chi2_contingency_matches_scipy(rows: int) -> None:
    for _ in range(200):
        n = RNG.integers(10, 100_000, rows)
        k = np.floor(n * RNG.uniform(0.3, 1.0, rows))
        table = np.column_stack([k, n - k])
        if (np.outer(table.sum(1), table.sum(0)) == 0).any():
            continue
        ref = stats.chi2_contingency(table, correction=False)
        statistic, p_value = _dist.chi2_contingency(table)
        assert statistic == float(ref.statistic)
        assert p_value == float(ref.pvalue)


def test_evaluation_path_does_not_import_scipy_stats() -> None:
    code = (
        "import sys, trustramp.evaluate.outputs, trustramp.evaluate.stage1, trustramp.decide.verdict, trustramp.decide.thresholds;"
        "print('scipy.stats' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
