"""Anytime-valid and exact bounds for a proportion (SPEC 3.5: repeated nightly looks).

A gate asks "is the accuracy above ``p0``?" every night on growing cumulative counts. A fixed-n
test (Clopper–Pearson) checked every night rejects a true null far more often than its level;
an *e-process* does not: by Ville's inequality ``P(sup_n E_n >= 1/alpha) <= alpha`` under the
null, however often and whenever one looks.

The e-process here is the beta-binomial mixture likelihood ratio for ``H0: p <= p0`` against
``H1: p > p0``: the prior ``Beta(a, b)`` truncated to ``(p0, 1]`` is mixed over the alternative,

    E_n(p0) = ∫_{p0}^1 p^k (1-p)^(n-k) Beta(p; a, b) dp / [(1 - I_{p0}(a, b)) p0^k (1-p0)^(n-k)]
            = B(a+k, b+n-k) / B(a, b) * (1 - I_{p0}(a+k, b+n-k)) / (1 - I_{p0}(a, b))
              / [p0^k (1-p0)^(n-k)],

where ``I`` is the regularized incomplete beta function. For every ``p' > p0`` the ratio
``L(p') / L(p0)`` is a martingale under ``p0`` and a supermartingale under any ``p < p0``, so the
mixture is an e-process for the whole composite null. It is computed in log space with
``betaln`` and ``betaincc``; when the posterior mass above ``p0`` underflows (the data sit far
below ``p0`` with n in the millions) the tail is integrated directly around its edge, so the
log e-value stays finite and accurate for n up to 10^7 and beyond.

Inverting the test gives a confidence sequence: `anytime_lower_bound` is the smallest ``p0`` the
e-process does not reject at level ``alpha``. The exact one-sided Clopper–Pearson bounds live here
too, because a gate requires both.

What the guarantee covers: one sequence of independent items observed growing. The gates feed
it counts deflated by the customers' design effect (`trustramp.decide.gates.effective_trials`)
and look at a window that grows from the phase start, then slides; neither is that sequence, so
there the nightly false-GO rate is measured, not proven (docs/STATISTICS.md: 2.7 % over 90
nightly looks, 4.9 % over 365, nominal 5 %).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import overload

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from trustramp import _dist

__all__ = [
    "DEFAULT_PRIOR",
    "anytime_lower_bound",
    "anytime_upper_bound",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "e_value",
    "log_e_value",
]

DEFAULT_PRIOR: tuple[float, float] = (1.0, 1.0)
"""Beta(1, 1): truncated to ``(p0, 1]`` it is uniform over the alternative."""

_TINY_SF = 1e-250
"""Below this the incomplete-beta tail is recomputed by direct integration (underflow guard)."""


def _check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return float(alpha)


def _check_prior(prior: tuple[float, float]) -> tuple[float, float]:
    a, b = prior
    if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"prior must be two positive finite numbers (a, b), got {prior!r}")
    return float(a), float(b)


def _check_counts(k: NDArray[np.float64], n: NDArray[np.float64]) -> None:
    if np.any(n < 0) or np.any(k < 0) or np.any(k > n):
        raise ValueError(f"counts must satisfy 0 <= k <= n, got k={k.tolist()!r}, n={n.tolist()!r}")
    if np.any(k != np.floor(k)) or np.any(n != np.floor(n)):
        raise ValueError(f"counts must be whole numbers, got k={k.tolist()!r}, n={n.tolist()!r}")


def _log_tail_by_quadrature(x: float, a: float, b: float) -> float:
    """``log(1 - I_x(a, b))`` when it underflows: the tail's mass sits at its left edge ``x``.

    With the tail tiny, the Beta(a, b) mode lies left of ``x`` and the log density
    ``g(t) = (a-1) log t + (b-1) log(1-t)`` decreases on ``[x, 1]``; being concave,
    ``g(x+u) <= g(x) + g'(x) u``, so the integrand relative to its edge value has fallen below
    e^-60 within ``60 / |g'(x)|``.
    """

    def g(t: float) -> float:
        return (a - 1.0) * math.log(t) + (b - 1.0) * math.log1p(-t)

    slope = (a - 1.0) / x - (b - 1.0) / (1.0 - x)
    g0 = g(x)
    # (slope >= 0: not a far tail after all; integrate the whole span)
    span = 1.0 - x if slope >= 0.0 else min(1.0 - x, 60.0 / -slope)
    edge = span if slope >= 0.0 else min(span, 1.0 / -slope)
    points = [edge * f for f in (1.0, 4.0, 16.0) if edge * f < span]
    from scipy import integrate  # rarely needed: imported on first use

    value, _ = integrate.quad(
        lambda u: math.exp(g(x + u) - g0) if x + u < 1.0 else 0.0,
        0.0,
        span,
        points=points or None,
        limit=200,
        epsabs=0.0,
        epsrel=1e-10,
    )
    return g0 + math.log(value) - float(special.betaln(a, b))


def _log_upper_tail(
    x: NDArray[np.float64], a: NDArray[np.float64], b: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``log(1 - I_x(a, b))``, elementwise, without underflow."""
    sf = np.atleast_1d(special.betaincc(a, b, x))
    with np.errstate(divide="ignore"):
        out = np.log(sf)
    x1, a1, b1 = (np.broadcast_to(v, sf.shape).ravel() for v in (x, a, b))
    flat = out.reshape(-1)
    for i in np.flatnonzero(sf.ravel() < _TINY_SF):
        flat[i] = _log_tail_by_quadrature(float(x1[i]), float(a1[i]), float(b1[i]))
    return out.reshape(np.shape(sf)) if np.ndim(x) else out.reshape(())


@overload
def log_e_value(k: int, n: int, p0: float, *, prior: tuple[float, float] = ...) -> float: ...
@overload
def log_e_value(
    k: ArrayLike, n: ArrayLike, p0: ArrayLike, *, prior: tuple[float, float] = ...
) -> float | NDArray[np.float64]: ...
def log_e_value(
    k: ArrayLike, n: ArrayLike, p0: ArrayLike, *, prior: tuple[float, float] = DEFAULT_PRIOR
) -> float | NDArray[np.float64]:
    """Natural log of the beta-binomial mixture e-value against ``H0: p <= p0``.

    Parameters
    ----------
    k, n : int or array-like of int
        Successes and trials (cumulative since the test started), ``0 <= k <= n``.
    p0 : float or array-like
        The null boundary, in ``(0, 1)``.
    prior : (a, b), keyword-only
        The Beta prior mixed over the alternative (truncated to ``(p0, 1]``).

    Returns
    -------
    float or ndarray
        ``log E_n``; 0 at ``n = 0``. Arrays broadcast.

    Examples
    --------
    >>> round(e_value(0, 0, 0.9), 6)
    1.0
    >>> e_value(290, 300, 0.9) > 20  # 96.7% on 300 items: strong evidence above 90%
    True
    """
    a, b = _check_prior(prior)
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    p_arr = np.asarray(p0, dtype=np.float64)
    _check_counts(k_arr, n_arr)
    if np.any(~(p_arr > 0.0)) or np.any(~(p_arr < 1.0)):
        raise ValueError(f"p0 must be in (0, 1), got {p_arr.tolist()!r}")
    k_arr, n_arr, p_arr = np.broadcast_arrays(k_arr, n_arr, p_arr)
    m_arr = n_arr - k_arr
    a_post, b_post = a + k_arr, b + m_arr
    out = (
        special.betaln(a_post, b_post)
        - special.betaln(a, b)
        + _log_upper_tail(p_arr, a_post, b_post)
        - _log_upper_tail(p_arr, np.full_like(p_arr, a), np.full_like(p_arr, b))
        - special.xlogy(k_arr, p_arr)
        - special.xlog1py(m_arr, -p_arr)
    )
    return float(out) if out.ndim == 0 else out


@overload
def e_value(k: int, n: int, p0: float, *, prior: tuple[float, float] = ...) -> float: ...
@overload
def e_value(
    k: ArrayLike, n: ArrayLike, p0: ArrayLike, *, prior: tuple[float, float] = ...
) -> float | NDArray[np.float64]: ...
def e_value(
    k: ArrayLike, n: ArrayLike, p0: ArrayLike, *, prior: tuple[float, float] = DEFAULT_PRIOR
) -> float | NDArray[np.float64]:
    """The beta-binomial mixture e-value against ``H0: p <= p0`` (``exp`` of `log_e_value`).

    Reject ``H0`` at level ``alpha`` — at any of any number of looks — when it is ``>= 1/alpha``.
    Very strong evidence overflows to ``inf``; use `log_e_value` to see its size.

    Examples
    --------
    >>> e_value(270, 300, 0.9) < 1  # exactly at the boundary: no evidence against it
    True
    """
    log_e = log_e_value(k, n, p0, prior=prior)
    with np.errstate(over="ignore"):
        out = np.exp(log_e)
    return float(out) if np.ndim(out) == 0 else out


def _lower_bound(k: int, n: int, alpha: float, prior: tuple[float, float]) -> float:
    if k == 0:
        return 0.0
    target = math.log(1.0 / alpha)
    rate = k / n
    hi = rate if k < n else 1.0 - 1e-12

    def f(p0: float) -> float:
        return log_e_value(k, n, p0, prior=prior) - target

    if f(hi) >= 0.0:  # only possible when k == n
        return hi
    # The e-value falls as p0 rises towards k/n; the boundary is where it crosses 1/alpha.
    # Bracket it a generous number of standard errors below the rate (cheap), else from ~0.
    lo = rate - 8.0 * math.sqrt(rate * (1.0 - rate) / n) - 8.0 * target / n
    if lo <= 0.0 or f(lo) < 0.0:
        lo = 1e-300
    return _crossing(f, lo, hi)


def _crossing(f: Callable[[float], float], lo: float, hi: float) -> float:
    """Where a decreasing `f` crosses 0 in [lo, hi] (f(lo) >= 0 > f(hi)), to 1e-13 + 1e-12 x:
    bisection, which keeps `scipy.optimize` (most of a second to import) off every evaluation.
    Returns the low end of the last bracket: the side where `f` >= 0 (never above the root)."""
    for _ in range(200):
        if hi - lo <= 1e-13 + 1e-12 * abs(hi):
            break
        mid = 0.5 * (lo + hi) if lo > 1e-200 else math.sqrt(lo * hi)  # geometric from ~0
        if f(mid) >= 0.0:
            lo = mid
        else:
            hi = mid
    return float(lo)


def anytime_lower_bound(
    k: int, n: int, *, alpha: float, prior: tuple[float, float] = DEFAULT_PRIOR
) -> float:
    """The confidence-sequence lower bound for ``p`` from inverting the mixture e-process.

    The largest ``p0`` that `e_value` rejects at level ``alpha`` (found by root finding on
    ``log E_n(p0) = log(1/alpha)``): with probability ``1 - alpha`` the true ``p`` stays above it at
    every ``n`` simultaneously.

    Parameters
    ----------
    k, n : int
        Successes and trials, ``0 <= k <= n``.
    alpha : float, keyword-only
        ``1 - confidence level``, in ``(0, 1)``.
    prior : (a, b), keyword-only
        As in `log_e_value`.

    Returns
    -------
    float
        In ``[0, k/n]``; 0 when ``k == 0``.

    Examples
    --------
    >>> 0.9 < anytime_lower_bound(290, 300, alpha=0.05) < 290 / 300
    True
    """
    alpha = _check_alpha(alpha)
    _check_counts(np.asarray(float(k)), np.asarray(float(n)))
    return _lower_bound(int(k), int(n), alpha, _check_prior(prior))


def anytime_upper_bound(
    k: int, n: int, *, alpha: float, prior: tuple[float, float] = DEFAULT_PRIOR
) -> float:
    """The confidence-sequence upper bound for ``p``: ``1 - anytime_lower_bound(n - k, n)``.

    Used for rates that must stay low (error rate, override rate).

    Examples
    --------
    >>> 3 / 300 < anytime_upper_bound(3, 300, alpha=0.05) < 0.05
    True
    """
    alpha = _check_alpha(alpha)
    _check_counts(np.asarray(float(k)), np.asarray(float(n)))
    if n == 0:
        return 1.0
    return 1.0 - _lower_bound(int(n - k), int(n), alpha, _check_prior(prior))


def clopper_pearson_lower(k: int, n: int, *, alpha: float) -> float:
    """Exact one-sided ``1 - alpha`` lower bound for a binomial proportion (Clopper–Pearson).

    ``Beta(alpha; k, n - k + 1)``; 0 when ``k == 0`` (and when ``n == 0``).

    Examples
    --------
    >>> round(clopper_pearson_lower(10, 10, alpha=0.05), 4)  # alpha ** (1 / n)
    0.7411
    """
    alpha = _check_alpha(alpha)
    _check_counts(np.asarray(float(k)), np.asarray(float(n)))
    if k == 0:
        return 0.0
    return float(_dist.beta_ppf(alpha, k, n - k + 1))


def clopper_pearson_upper(k: int, n: int, *, alpha: float) -> float:
    """Exact one-sided ``1 - alpha`` upper bound (Clopper–Pearson); 1 when ``k == n``.

    Examples
    --------
    >>> round(clopper_pearson_upper(0, 10, alpha=0.05), 4)  # 1 - alpha ** (1 / n)
    0.2589
    """
    alpha = _check_alpha(alpha)
    _check_counts(np.asarray(float(k)), np.asarray(float(n)))
    if k == n:
        return 1.0
    return float(_dist.beta_ppf(1.0 - alpha, k + 1, n - k))
