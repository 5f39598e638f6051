"""Latency quantiles from mergeable histograms, error rate and availability (SPEC 3.1, 3.3).

Latency is binned once, at ingest or in stage 1, into fixed log-spaced bins: 1 ms to 10 min in
`N_LOG_BINS` bins of equal ratio (just under 2 % wide), plus an underflow bin ``[0, 1)`` ms and an
overflow bin ``[10 min, inf)``. Histograms of different days or segments simply add, and a
quantile read from the summed histogram (interpolating inside the bin) is within one bin's
relative width (~2 %) of the exact quantile of the pooled raw values.

The bin of a latency ``ms`` (the same expression in SQL)::

    0                                            if ms < 1
    N_LOG_BINS + 1                               if ms >= 600000
    min(floor(N_LOG_BINS * ln(ms) / ln(600000)) + 1, N_LOG_BINS)   otherwise

DuckDB: ``CASE WHEN latency_ms < 1 THEN 0 WHEN latency_ms >= 600000 THEN 673 ELSE
least(CAST(floor(672 * ln(latency_ms) / ln(600000)) AS INTEGER) + 1, 672) END``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trustramp.contract import FAILED_STATUSES
from trustramp.metrics import _checks as chk
from trustramp.metrics._checks import FloatArray
from trustramp.metrics.intervals import Proportion, proportion

__all__ = [
    "LATENCY_BOUNDS_MS",
    "LATENCY_EDGES_MS",
    "LATENCY_MAX_MS",
    "LATENCY_MIN_MS",
    "N_LATENCY_BINS",
    "N_LOG_BINS",
    "availability",
    "count_failures",
    "error_rate",
    "latency_bin",
    "latency_histogram",
    "latency_quantiles",
    "quantile_from_histogram",
]

LATENCY_MIN_MS = 1.0
LATENCY_MAX_MS = 600_000.0
N_LOG_BINS = 672
"""Log-spaced bins between 1 ms and 10 min; each edge is ~1.99996 % above the previous one."""
LATENCY_EDGES_MS: FloatArray = LATENCY_MAX_MS ** (np.arange(N_LOG_BINS + 1) / N_LOG_BINS)
"""The ``N_LOG_BINS + 1`` log-spaced edges, from 1 ms to 600000 ms."""
LATENCY_EDGES_MS.setflags(write=False)
LATENCY_BOUNDS_MS: FloatArray = np.concatenate([[0.0], LATENCY_EDGES_MS, [math.inf]])
"""All ``N_LATENCY_BINS + 1`` bin bounds: bin ``i`` is ``[bounds[i], bounds[i+1])``."""
LATENCY_BOUNDS_MS.setflags(write=False)
N_LATENCY_BINS = N_LOG_BINS + 2
"""Histogram length: underflow, the log-spaced bins, overflow."""
_LOG_MAX = math.log(LATENCY_MAX_MS)


def latency_bin(latency_ms: ArrayLike) -> Any:
    """Fixed histogram bin of each latency (see the module docstring for the formula).

    Parameters
    ----------
    latency_ms : array-like
        Latencies in milliseconds, finite and >= 0.

    Returns
    -------
    int or ndarray of int64
        Bin indices in ``0 .. N_LATENCY_BINS - 1``.

    Examples
    --------
    >>> latency_bin([0.5, 1.0, 250.0, 600_000.0]).tolist()
    [0, 1, 279, 673]
    """
    ms = chk.finite_nonnegative(latency_ms, "latency_ms")
    with np.errstate(divide="ignore"):
        inner = np.floor(N_LOG_BINS * np.log(np.maximum(ms, LATENCY_MIN_MS)) / _LOG_MAX) + 1
    idx = np.where(
        ms < LATENCY_MIN_MS,
        0,
        np.where(ms >= LATENCY_MAX_MS, N_LOG_BINS + 1, np.minimum(inner, N_LOG_BINS)),
    ).astype(np.int64)
    return int(idx) if idx.ndim == 0 else idx


def latency_histogram(latency_ms: ArrayLike) -> NDArray[np.int64]:
    """Counts per fixed latency bin (length `N_LATENCY_BINS`): what stage 1 computes in SQL.

    Examples
    --------
    >>> int(latency_histogram([10.0, 10.0, 20.0]).sum())
    3
    """
    idx = np.atleast_1d(latency_bin(np.ravel(latency_ms)))
    return np.bincount(idx, minlength=N_LATENCY_BINS)


def quantile_from_histogram(
    counts: ArrayLike, q: ArrayLike, *, bounds: ArrayLike | None = None
) -> Any:
    """Quantile(s) of a binned distribution, interpolating linearly inside the bin.

    The q-quantile is the point where the cumulative count reaches ``q * N``, assuming items
    spread evenly within their bin; an open-ended last bin gives its lower bound.

    Parameters
    ----------
    counts : array-like of shape (..., B)
        Items per bin; leading axes (days, segments) give one result each. Histograms of
        different days add up, so merge them by summing before calling.
    q : float or array-like of shape (Q,)
        Quantile levels in [0, 1].
    bounds : array-like of shape (B + 1,), optional
        Bin bounds; default `LATENCY_BOUNDS_MS`.

    Returns
    -------
    float or ndarray
        Shape ``counts.shape[:-1]`` (+ ``(Q,)`` for array `q`); NaN where there are no items.

    Examples
    --------
    >>> quantile_from_histogram([0, 4, 4], 0.75, bounds=[0, 10, 20, 30])
    25.0
    """
    c = chk.finite_nonnegative(counts, "counts")
    if c.ndim == 0:
        raise ValueError("counts must be an array with one entry per bin, got a scalar")
    b = LATENCY_BOUNDS_MS if bounds is None else chk.as_float(bounds, "bounds").ravel()
    if b.size != c.shape[-1] + 1:
        raise ValueError(f"bounds must have {c.shape[-1] + 1} values (bins + 1), got {b.size}")
    if np.any(np.diff(b) <= 0):
        raise ValueError("bounds must be strictly increasing")
    qa = chk.as_float(q, "q")
    if qa.ndim > 1 or np.any(~np.isfinite(qa) | (qa < 0) | (qa > 1)):
        raise ValueError(f"q must be a level or 1-D array of levels in [0, 1], got {q!r}")
    qs = np.atleast_1d(qa)
    cum = np.cumsum(c, axis=-1)
    total = cum[..., -1:]
    rank = total[..., None, :] * qs[:, None]  # (..., Q, 1)
    reached = np.where(rank > 0, cum[..., None, :] >= rank, cum[..., None, :] > 0)
    idx = np.argmax(reached, axis=-1)  # (..., Q)
    before = np.take_along_axis(cum - c, idx, axis=-1) if c.ndim > 1 else (cum - c)[idx]
    inside = np.take_along_axis(c, idx, axis=-1) if c.ndim > 1 else c[idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.clip((rank[..., 0] - before) / inside, 0.0, 1.0)
    lo, hi = b[idx], b[idx + 1]
    value = np.where(np.isfinite(hi), lo + frac * (hi - lo), lo)
    value = chk.nan_if(total == 0, value)
    if qa.ndim == 0:
        value = value[..., 0]
    return float(value) if value.ndim == 0 else value


def latency_quantiles(
    counts: ArrayLike, q: tuple[float, ...] = (0.5, 0.95, 0.99)
) -> dict[str, Any]:
    """Named latency quantiles (``latency_p50`` etc., the metric names) from a fixed histogram.

    Examples
    --------
    >>> h = latency_histogram([100.0] * 99 + [5000.0])
    >>> {k: round(v) for k, v in latency_quantiles(h).items()}
    {'latency_p50': 100, 'latency_p95': 101, 'latency_p99': 101}
    """
    values = quantile_from_histogram(counts, np.asarray(q, dtype=float))

    def pick(i: int) -> Any:
        v = values[..., i]
        return float(v) if v.ndim == 0 else v

    return {f"latency_p{100 * level:g}": pick(i) for i, level in enumerate(q)}


def count_failures(status: ArrayLike) -> tuple[int, int]:
    """``(failed, total)``: predictions whose status is error or timeout, and all predictions.

    Examples
    --------
    >>> count_failures(["ok", "error", "timeout", "fallback"])
    (2, 4)
    """
    s = np.asarray(status, dtype=object).ravel()
    return int(np.isin(s, [str(x) for x in FAILED_STATUSES]).sum()), int(s.size)


def error_rate(n_failed: ArrayLike, n_total: ArrayLike, *, confidence: float = 0.95) -> Proportion:
    """Error rate = (error + timeout) / all predictions, with its Wilson interval.

    Examples
    --------
    >>> r = error_rate(3, 1000)
    >>> r.value, round(r.ci_high, 4)
    (0.003, 0.0088)
    """
    chk.counts(n_failed, n_total, k_name="n_failed", n_name="n_total")
    return proportion(n_failed, n_total, confidence=confidence)


def availability(
    n_failed: ArrayLike, n_total: ArrayLike, *, confidence: float = 0.95
) -> Proportion:
    """Availability = 1 - error rate, with its Wilson interval (``k`` = successful predictions).

    Examples
    --------
    >>> r = availability(3, 1000)
    >>> r.value, round(r.ci_low, 4)
    (0.997, 0.9912)
    """
    f, n = chk.counts(n_failed, n_total, k_name="n_failed", n_name="n_total")
    ok = n - f
    if chk.is_scalar(n_failed, n_total):
        return proportion(float(ok), float(n), confidence=confidence)
    return proportion(ok, n, confidence=confidence)
