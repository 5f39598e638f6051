"""The few distribution functions the pipeline needs, without importing `scipy.stats`.

`import scipy.stats` takes about a second (it pulls in most of SciPy), and every evaluation
would pay it for a handful of calls. The `scipy.stats` methods used here are thin wrappers
over `scipy.special` functions (Boost's incomplete beta and its inverses, Cephes' normal and
chi-square functions); these call the same special functions on the same arguments and handle
the edge cases the same way, so the results are bit for bit those of `scipy.stats`
(`tests/test_metrics_dist.py` checks that on random arguments). Arguments are assumed valid
(the callers validate them): counts are whole numbers, probabilities and levels in range.

- ``binom.sf(k - 1, n, p) = P(Binom(n, p) >= k) = I_p(k, n - k + 1)`` (Boost's binomial
  survival function is the incomplete beta); ``binom.cdf`` calls Boost's binomial CDF;
- ``beta.ppf = betaincinv``, ``beta.isf = betainccinv``;
- ``norm.ppf = ndtri``, ``norm.isf(q) = -ndtri(q)``;
- ``chi2.sf = chdtrc``, ``chi2.ppf(q, df) = 2 gammaincinv(df / 2, q)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import special
from scipy.special import _ufuncs


def _out(x: np.ndarray) -> Any:
    return x[()] if x.ndim == 0 else x


def norm_ppf(q: ArrayLike) -> Any:
    """`scipy.stats.norm.ppf` for q in [0, 1]."""
    return special.ndtri(q)


def norm_isf(q: ArrayLike) -> Any:
    """`scipy.stats.norm.isf` for q in [0, 1]."""
    return -special.ndtri(q)


def beta_ppf(q: ArrayLike, a: ArrayLike, b: ArrayLike) -> Any:
    """`scipy.stats.beta.ppf` for q in (0, 1) and a, b > 0."""
    return special.betaincinv(a, b, q)


def beta_isf(q: ArrayLike, a: ArrayLike, b: ArrayLike) -> Any:
    """`scipy.stats.beta.isf` for q in (0, 1) and a, b > 0."""
    return special.betainccinv(a, b, q)


def binom_sf(x: ArrayLike, n: ArrayLike, p: float) -> Any:
    """`scipy.stats.binom.sf(x, n, p)` = P(Binom(n, p) > x), for whole x, n >= 0, p in [0, 1]."""
    xa, na = np.broadcast_arrays(np.asarray(x), np.asarray(n))
    k = np.floor(xa).astype(float) + 1.0  # P(X >= k)
    inside = (xa >= 0) & (xa < na)
    with np.errstate(invalid="ignore", divide="ignore"):
        tail = special.betainc(np.where(inside, k, 1.0), np.where(inside, na - k + 1.0, 1.0), p)
    out = np.where(inside, np.clip(tail, 0.0, 1.0), np.where(xa < 0, 1.0, 0.0))
    return _out(np.asarray(out, dtype=float))


def binom_at_least(k: ArrayLike, n: ArrayLike, p: float) -> Any:
    """``binom_sf(k - 1, n, p)`` = P(Binom(n, p) >= k) for whole 0 <= k <= n, with less overhead
    (the threshold walks call it thousands of times on short arrays)."""
    kf, nf = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    tail = special.betainc(np.maximum(kf, 1.0), nf - kf + 1.0, p)  # valid for k >= 1
    return _out(np.where(kf > 0, np.clip(tail, 0.0, 1.0), 1.0))


def binom_cdf(x: ArrayLike, n: ArrayLike, p: float) -> Any:
    """`scipy.stats.binom.cdf(x, n, p)` = P(Binom(n, p) <= x), for whole x, n >= 0, p in [0, 1].

    Boost's binomial CDF is not a public `scipy.special` function; this calls the private ufunc
    that `scipy.stats.binom` calls, or `scipy.stats` itself if a SciPy release renames it.
    """
    xa, na = np.broadcast_arrays(np.asarray(x), np.asarray(n))
    inside = (xa >= 0) & (xa < na)
    cdf = getattr(_ufuncs, "_binom_cdf", None)
    if cdf is None:  # pragma: no cover - depends on the SciPy release
        from scipy import stats

        return stats.binom.cdf(x, n, p)
    with np.errstate(invalid="ignore", divide="ignore"):
        head = cdf(np.floor(np.where(inside, xa, 0)), np.where(inside, na, 1), p)
    out = np.where(inside, np.clip(head, 0.0, 1.0), np.where(xa < 0, 0.0, 1.0))
    return _out(np.asarray(out, dtype=float))


def chi2_sf(x: ArrayLike, df: ArrayLike) -> Any:
    """`scipy.stats.chi2.sf` for df > 0 (1 at or below 0, 0 at infinity)."""
    xa = np.asarray(x, dtype=float)
    with np.errstate(invalid="ignore"):
        inner = special.chdtrc(df, np.where((xa > 0) & np.isfinite(xa), xa, 1.0))
    out = np.where(np.isnan(xa), np.nan, np.where(xa <= 0, 1.0, np.where(xa == np.inf, 0.0, inner)))
    return _out(np.asarray(out, dtype=float))


def chi2_ppf(q: ArrayLike, df: ArrayLike) -> Any:
    """`scipy.stats.chi2.ppf` for q in (0, 1) and df > 0."""
    return 2 * special.gammaincinv(np.asarray(df) / 2, q)


def chi2_contingency(observed: ArrayLike) -> tuple[float, float]:
    """(statistic, p-value) of `scipy.stats.chi2_contingency(observed, correction=False)`.

    Pearson's chi-square test of independence on a 2-D table of counts whose expected counts
    are all positive (the callers test only tables with every expected count >= 5).
    """
    obs = np.asarray(observed, dtype=np.float64)
    margins = [obs.sum(axis=1, keepdims=True), obs.sum(axis=0, keepdims=True)]
    expected = (margins[0] * margins[1]) / obs.sum() ** (obs.ndim - 1)
    dof = expected.size - sum(expected.shape) + expected.ndim - 1
    if dof == 0:
        return 0.0, 1.0
    terms = (obs - expected) ** 2 / expected
    statistic = np.sum(terms.ravel())
    return float(statistic), float(special.chdtrc(np.float64(dof), statistic))
