"""Top-label calibration (SPEC 3.1, 3.5): bins, ECE, MCE, Brier, log loss, class-wise ECE, a test.

The pipeline's stage 1 (SQL) reduces predictions to per-bin sufficient statistics: ``count``
(labeled items in the bin), ``correct`` (how many of them were right) and ``conf_sum`` (the sum
of their confidences). Every metric here is computed from those (``*_from_bins``,
``*_from_sums``), and each has an array entry point that builds the same aggregates first, so
both paths give identical numbers.

Bins (decided, SPEC 3.5)
------------------------
Equal-width bins are right-closed, ``((m-1)/M, m/M]``: ``bin = clip(ceil(c*M) - 1, 0, M-1)``,
so 0 falls in the first bin and 1.0 in the last. Floating point puts ``c*M`` a hair above an
integer for some edge values (``0.28 * 25 == 7.000000000000001``), which would push a value
lying on an edge one bin up; ``c*M`` is therefore lowered by `EDGE_TOLERANCE` before the
ceiling. The same expression in DuckDB (``confidence`` a DOUBLE)::

    least(greatest(CAST(ceil(confidence * M - 1e-9) AS INTEGER) - 1, 0), M - 1)

Equal-mass bins: a stable sort by confidence, then M near-equal contiguous groups with the
larger groups first (``numpy.array_split``; SQL ``ntile(M) OVER (ORDER BY confidence, <id>)``).
Empty bins contribute nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from trustramp.metrics import _checks as chk
from trustramp.metrics._checks import FloatArray
from trustramp.metrics.intervals import wilson_interval

__all__ = [
    "EDGE_TOLERANCE",
    "LOG_LOSS_EPS",
    "MIN_SHOWN_N",
    "MIN_STABLE_N",
    "SMECE_ITEM_CELL",
    "SMECE_MESH_PER_SIGMA",
    "BinCounts",
    "CalibrationTest",
    "bin_edges",
    "bin_index",
    "brier_from_sums",
    "brier_score_loss",
    "calibration_bins",
    "calibration_test",
    "classwise_bins",
    "classwise_ece",
    "classwise_ece_from_bins",
    "debiased_l2_ece",
    "debiased_l2_ece_from_bins",
    "ece_from_bins",
    "expected_calibration_error",
    "is_miscalibrated",
    "log_loss",
    "log_loss_from_sums",
    "maximum_calibration_error",
    "mce_from_bins",
    "reliability_table",
    "smooth_ece",
    "smooth_ece_at",
    "smooth_ece_from_cells",
]

EDGE_TOLERANCE = 1e-9
"""Subtracted from ``c * M`` before the ceiling, so a value on an edge stays in the lower bin."""
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)
"""Probabilities are clipped to ``[eps, 1 - eps]`` for the log loss (as scikit-learn does)."""
MIN_SHOWN_N = 500
"""Below this many labeled items the ECE is not shown (SPEC 3.5)."""
MIN_STABLE_N = 1000
"""Below this many labeled items the ECE is flagged as noisy (SPEC 3.5)."""

Strategy = Literal["uniform", "quantile"]


# --------------------------------------------------------------------------------------------
# Bins
# --------------------------------------------------------------------------------------------


def bin_edges(n_bins: int) -> FloatArray:
    """The ``n_bins + 1`` equal-width edges ``m / M``; bin ``m`` is ``(edges[m], edges[m+1]]``.

    Examples
    --------
    >>> bin_edges(4).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    m = chk.positive_int(n_bins, "n_bins")
    return np.arange(m + 1) / m


def bin_index(confidence: ArrayLike, n_bins: int) -> NDArray[np.int64]:
    """Right-closed equal-width bin of each confidence: ``clip(ceil(c*M) - 1, 0, M-1)``.

    Parameters
    ----------
    confidence : array-like
        Values in [0, 1].
    n_bins : int
        Number of bins ``M``.

    Returns
    -------
    ndarray of int64
        Bin indices in ``0 .. M-1``, same shape as `confidence`. 0 goes to bin 0, 1.0 to bin
        ``M-1``, and a value on an edge ``m/M`` to bin ``m-1`` (see `EDGE_TOLERANCE`).

    Examples
    --------
    >>> bin_index([0.0, 0.1, 0.8, 0.81, 1.0], 15).tolist()
    [0, 1, 11, 12, 14]
    """
    m = chk.positive_int(n_bins, "n_bins")
    c = chk.probabilities(confidence, "confidence")
    idx = np.ceil(c * m - EDGE_TOLERANCE).astype(np.int64) - 1
    return np.clip(idx, 0, m - 1)


class BinCounts(NamedTuple):
    """Per-bin sufficient statistics; ``ece_from_bins(*bins)`` works on it directly."""

    count: FloatArray
    """Labeled items per bin."""
    correct: FloatArray
    """Correct items per bin."""
    conf_sum: FloatArray
    """Sum of the items' confidences per bin."""


def _groups(confidence: FloatArray, n_bins: int, strategy: str) -> NDArray[np.int64]:
    if strategy == "uniform":
        return bin_index(confidence, n_bins)
    order = np.argsort(confidence, kind="stable")
    group = np.empty(confidence.size, dtype=np.int64)
    for b, members in enumerate(np.array_split(order, n_bins)):
        group[members] = b
    return group


def _labeled_arrays(correct: ArrayLike, confidence: ArrayLike) -> tuple[FloatArray, FloatArray]:
    y = chk.binary(correct, "correct")
    c = chk.probabilities(confidence, "confidence").ravel()
    chk.same_length(y, c, "correct", "confidence")
    return y, c


def calibration_bins(
    correct: ArrayLike,
    confidence: ArrayLike,
    *,
    n_bins: int = 15,
    strategy: Strategy = "uniform",
) -> BinCounts:
    """Reduce item arrays to per-bin ``(count, correct, conf_sum)`` — what stage 1 does in SQL.

    Parameters
    ----------
    correct : array-like of shape (n,)
        1 (True) where the top label was right, else 0.
    confidence : array-like of shape (n,)
        Top-label confidences in [0, 1].
    n_bins : int, default 15
        Number of bins.
    strategy : {"uniform", "quantile"}, default "uniform"
        Equal-width right-closed bins, or equal-mass groups (stable sort, ``array_split``).

    Returns
    -------
    BinCounts
        Arrays of length `n_bins`; empty bins hold zeros.

    Examples
    --------
    >>> b = calibration_bins([1, 0, 1], [0.9, 0.9, 0.3], n_bins=2)
    >>> b.count.tolist(), b.correct.tolist()
    ([1.0, 2.0], [1.0, 1.0])
    """
    y, c = _labeled_arrays(correct, confidence)
    m = chk.positive_int(n_bins, "n_bins")
    chk.choice(strategy, "strategy", ("uniform", "quantile"))
    g = _groups(c, m, strategy)
    return BinCounts(
        count=np.bincount(g, minlength=m).astype(np.float64),
        correct=np.bincount(g, weights=y, minlength=m).astype(np.float64),
        conf_sum=np.bincount(g, weights=c, minlength=m).astype(np.float64),
    )


def _bins(
    count: ArrayLike, correct: ArrayLike, conf_sum: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    k, n = chk.counts(correct, count, k_name="correct", n_name="count")
    s = chk.finite_nonnegative(conf_sum, "conf_sum")
    try:
        s = np.broadcast_to(s, n.shape).astype(np.float64)
    except ValueError:
        raise ValueError(
            f"conf_sum must have the shape of count {n.shape}, got {np.shape(conf_sum)}"
        ) from None
    over = s > n * (1.0 + 1e-9)
    if over.any():
        raise ValueError(
            f"conf_sum must not exceed count (confidences are <= 1), got conf_sum="
            f"{s[over][:5].tolist()} with count={n[over][:5].tolist()}"
        )
    if n.ndim == 0:
        raise ValueError("count must be an array with one entry per bin, got a scalar")
    return n, k, s


# --------------------------------------------------------------------------------------------
# ECE, MCE, reliability table
# --------------------------------------------------------------------------------------------


def ece_from_bins(count: ArrayLike, correct: ArrayLike, conf_sum: ArrayLike) -> Any:
    """Expected calibration error from per-bin aggregates: ``sum_b |correct_b - conf_sum_b| / N``.

    That is ``sum_b (n_b / N) |accuracy_b - mean_confidence_b|``; empty bins contribute nothing.

    Parameters
    ----------
    count, correct, conf_sum : array-like of shape (..., M)
        Per-bin labeled items, correct items and confidence sums. Leading axes (segments,
        days, ...) are kept; the last axis holds the bins.

    Returns
    -------
    float or ndarray
        ECE in [0, 1] per leading index; NaN where there are no items.

    Examples
    --------
    >>> ece_from_bins([10, 10], [5, 9], [6.0, 9.5])
    0.075
    """
    n, k, s = _bins(count, correct, conf_sum)
    total = n.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ece = np.abs(k - s).sum(axis=-1) / total
    return chk.out(chk.nan_if(total == 0, ece), n.ndim == 1)


def mce_from_bins(count: ArrayLike, correct: ArrayLike, conf_sum: ArrayLike) -> Any:
    """Maximum calibration error: the largest ``|accuracy_b - mean_confidence_b|`` over non-empty bins.

    Parameters
    ----------
    count, correct, conf_sum : array-like of shape (..., M)
        Per-bin aggregates, as for `ece_from_bins`.

    Returns
    -------
    float or ndarray
        MCE in [0, 1]; NaN where every bin is empty.

    Examples
    --------
    >>> mce_from_bins([10, 10, 0], [5, 9, 0], [6.0, 9.5, 0.0])
    0.1
    """
    n, k, s = _bins(count, correct, conf_sum)
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.where(n > 0, np.abs(k - s) / n, -np.inf)
    mce = gap.max(axis=-1)
    return chk.out(np.where(np.isfinite(mce), mce, math.nan), n.ndim == 1)


def expected_calibration_error(
    correct: ArrayLike,
    confidence: ArrayLike,
    *,
    n_bins: int = 15,
    strategy: Strategy = "uniform",
) -> float:
    """Top-label ECE from item arrays (equal-width or equal-mass bins).

    Parameters
    ----------
    correct : array-like of shape (n,)
        1 where the top label was right, else 0.
    confidence : array-like of shape (n,)
        Top-label confidences in [0, 1].
    n_bins : int, default 15
        Number of bins.
    strategy : {"uniform", "quantile"}, default "uniform"
        Bin strategy (see the module docstring).

    Returns
    -------
    float
        ECE in [0, 1]; NaN for no items.

    Examples
    --------
    >>> expected_calibration_error([1, 1, 0, 1], [0.9, 0.8, 0.7, 0.6], n_bins=5)
    0.25
    """
    return float(
        ece_from_bins(*calibration_bins(correct, confidence, n_bins=n_bins, strategy=strategy))
    )


def maximum_calibration_error(
    correct: ArrayLike,
    confidence: ArrayLike,
    *,
    n_bins: int = 15,
    strategy: Strategy = "uniform",
) -> float:
    """Top-label MCE from item arrays; see `expected_calibration_error` for the arguments.

    Examples
    --------
    >>> round(maximum_calibration_error([1, 1, 0, 1], [0.9, 0.8, 0.7, 0.6], n_bins=5), 3)
    0.4
    """
    return float(
        mce_from_bins(*calibration_bins(correct, confidence, n_bins=n_bins, strategy=strategy))
    )


# --------------------------------------------------------------------------------------------
# Debiased L2-ECE and smooth ECE
# --------------------------------------------------------------------------------------------


def debiased_l2_ece_from_bins(count: ArrayLike, correct: ArrayLike, conf_sum: ArrayLike) -> Any:
    """Debiased binned L2 calibration error (Kumar, Liang & Ma 2019, "Verified Uncertainty
    Calibration", section 5) from per-bin aggregates.

    The plug-in squared error ``sum_b (n_b / N) (acc_b - conf_b)^2`` is biased upwards by the
    sampling noise of each bin's accuracy; the debiased estimate subtracts its unbiased
    variance estimate ``acc_b (1 - acc_b) / (n_b - 1)`` per bin (bins with fewer than two items
    contribute nothing), clips the sum at 0 and takes the square root. A perfectly calibrated
    model therefore scores near 0 at any n, where the plug-in L2-ECE sits at its noise floor.

    Parameters
    ----------
    count, correct, conf_sum : array-like of shape (..., M)
        Per-bin labeled items, correct items and confidence sums, as for `ece_from_bins`.

    Returns
    -------
    float or ndarray
        In [0, 1]; NaN where there are no items.

    Examples
    --------
    >>> round(debiased_l2_ece_from_bins([100, 100], [60, 95], [80.0, 95.0]), 4)
    0.1362
    """
    n, k, s = _bins(count, correct, conf_sum)
    total = n.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.where(n > 0, k / n, 0.0)
        gap_sq = np.where(n > 0, (k - s) / np.where(n > 0, n, 1), 0.0) ** 2
        variance = np.where(n > 1, acc * (1.0 - acc) / (n - 1.0), 0.0)
        per_bin = np.where(n > 1, gap_sq - variance, 0.0)
        squared = (n * per_bin).sum(axis=-1) / total
    value = np.sqrt(np.maximum(squared, 0.0))
    return chk.out(chk.nan_if(total == 0, value), n.ndim == 1)


def debiased_l2_ece(
    correct: ArrayLike,
    confidence: ArrayLike,
    *,
    n_bins: int = 15,
    strategy: Strategy = "uniform",
) -> float:
    """Debiased L2-ECE from item arrays; see `debiased_l2_ece_from_bins`.

    Examples
    --------
    >>> debiased_l2_ece([1, 1, 0, 1, 0, 0], [0.9, 0.8, 0.9, 0.2, 0.1, 0.2], n_bins=2)  # noise only
    0.0
    """
    return float(
        debiased_l2_ece_from_bins(
            *calibration_bins(correct, confidence, n_bins=n_bins, strategy=strategy)
        )
    )


SMECE_MESH_PER_SIGMA = 40
"""Evaluation points of the smoothed residual per bandwidth (at least 401 on [0, 1]): the
trapezoid rule's mesh is far finer than the kernel."""
SMECE_ITEM_CELL = 1e-3
"""`smooth_ece` on item arrays first sums items into cells this wide (at their mean confidence)."""


def _reflected_kernel(t: FloatArray, x: FloatArray, sigma: float) -> FloatArray:
    """Gaussian kernel reflected at 0 and 1 (the density of x + N(0, sigma^2) folded into
    [0, 1]): ``sum_k phi((t - x - 2k)/sigma) + phi((t + x - 2k)/sigma)``, each row integrating
    to 1 over [0, 1] in t; images farther than 8 sigma are left out. Shape (len(t), len(x))."""
    reach = math.ceil((8.0 * sigma + 1.0) / 2.0)
    out = np.zeros((t.size, x.size))
    for shift in 2.0 * np.arange(-reach, reach + 1):
        for sign in (-1.0, 1.0):
            # The image sign*x + shift spans [shift, shift + 1] or [shift - 1, shift].
            lo, hi = (shift, shift + 1.0) if sign > 0 else (shift - 1.0, shift)
            if max(lo - 1.0, -hi) > 8.5 * sigma:
                continue
            z = (t[:, None] - sign * x[None, :] - shift) / sigma
            out += np.exp(-0.5 * z * z)
    return out / (sigma * math.sqrt(2.0 * math.pi))


def smooth_ece_at(
    count: ArrayLike, residual_sum: ArrayLike, position: ArrayLike, sigma: float
) -> float:
    """smECE at a fixed bandwidth (Błasiok & Nakkiran 2023) from weighted points.

    ``smECE_sigma = (1/N) integral_0^1 |sum_j K_sigma(t, x_j) R_j| dt``: the kernel-smoothed
    residual ``r(t)`` times the kernel density ``delta(t)``, integrated, with ``K`` the reflected
    Gaussian kernel. Item ``i`` is a point ``x = confidence_i`` with ``R = correct_i -
    confidence_i``; a cell of items is one point at its mean confidence with the residuals
    summed (exact up to the kernel's variation within the cell).

    Parameters
    ----------
    count : array-like of shape (J,)
        Items per point.
    residual_sum : array-like of shape (J,)
        Sum of ``correct - confidence`` per point.
    position : array-like of shape (J,)
        Point positions in [0, 1].
    sigma : float
        Bandwidth (> 0).
    """
    n = chk.finite_nonnegative(count, "count").ravel()
    r = chk.as_float(residual_sum, "residual_sum").ravel()
    x = chk.probabilities(position, "position").ravel()
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    keep = n > 0
    total = n.sum()
    if total == 0:
        return math.nan
    t = np.linspace(0.0, 1.0, max(401, math.ceil(SMECE_MESH_PER_SIGMA / sigma) + 1))
    smoothed = _reflected_kernel(t, x[keep], sigma) @ r[keep]
    return float(np.trapezoid(np.abs(smoothed), t) / total)


def smooth_ece_from_cells(
    count: ArrayLike,
    correct: ArrayLike,
    conf_sum: ArrayLike,
    *,
    tol: float = 1e-4,
) -> tuple[float, float]:
    """Smooth ECE (smECE, Błasiok & Nakkiran 2023) with its bandwidth, from confidence cells.

    The bandwidth is the fixed point ``sigma* = smECE_sigma*`` (smECE decreases in sigma), found
    by bisection; each cell is a point at its mean confidence (see `smooth_ece_at`). Stage 1's
    0.01-wide threshold-grid cells are fine enough while ``sigma*`` is well above the cell
    width (the tests measure the gap against item-level smECE).

    Parameters
    ----------
    count, correct, conf_sum : array-like of shape (J,)
        Labeled items, correct items and confidence sums per cell.
    tol : float, default 1e-4
        Bisection tolerance on sigma.

    Returns
    -------
    smece, sigma : float
        NaN, NaN when there are no items.

    Examples
    --------
    >>> s, sigma = smooth_ece_from_cells([500, 500], [250, 475], [300.0, 450.0])
    >>> round(s, 3), round(sigma, 3)
    (0.072, 0.072)
    """
    n, k, s = _bins(count, correct, conf_sum)
    n, k, s = n.ravel(), k.ravel(), s.ravel()
    keep = n > 0
    if not keep.any():
        return math.nan, math.nan
    n, r, x = n[keep], (k - s)[keep], np.clip(s[keep] / n[keep], 0.0, 1.0)

    def at(sigma: float) -> float:
        return smooth_ece_at(n, r, x, sigma)

    lo, hi = 0.0, 1.0
    if at(hi) >= hi:
        return at(hi), hi
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if at(mid) > mid:
            lo = mid
        else:
            hi = mid
    return at(hi), hi


def smooth_ece(correct: ArrayLike, confidence: ArrayLike, *, tol: float = 1e-4) -> float:
    """smECE from item arrays; see `smooth_ece_from_cells`. Items are summed into cells
    `SMECE_ITEM_CELL` wide first (at their mean confidence).

    Examples
    --------
    >>> round(smooth_ece([1, 0, 1, 1], [0.9, 0.8, 0.7, 0.6]), 3)
    0.138
    """
    y, c = _labeled_arrays(correct, confidence)
    cells = round(1.0 / SMECE_ITEM_CELL)
    g = np.minimum((c * cells).astype(np.int64), cells - 1)
    n = np.bincount(g, minlength=cells).astype(np.float64)
    k = np.bincount(g, weights=y, minlength=cells)
    s = np.bincount(g, weights=c, minlength=cells)
    return smooth_ece_from_cells(n, k, s, tol=tol)[0]


def reliability_table(
    count: ArrayLike,
    correct: ArrayLike,
    conf_sum: ArrayLike,
    *,
    confidence: float = 0.95,
    edges: ArrayLike | None = None,
) -> pd.DataFrame:
    """The reliability diagram's data: one row per bin, with a Wilson interval on its accuracy.

    Parameters
    ----------
    count, correct, conf_sum : array-like of shape (M,)
        Per-bin aggregates.
    confidence : float, default 0.95
        Level of the per-bin Wilson intervals.
    edges : array-like of shape (M + 1,), optional
        Bin edges; default the equal-width edges ``m / M``.

    Returns
    -------
    pandas.DataFrame
        Columns ``bin, lo, hi, n, correct, accuracy, mean_confidence, gap, ci_low, ci_high``,
        where ``gap = mean_confidence - accuracy`` (positive: over-confident). Empty bins are
        kept with ``n = 0`` and NaN statistics, so a diagram shows every bin.

    Examples
    --------
    >>> t = reliability_table([10, 0], [5, 0], [6.0, 0.0])
    >>> t[["bin", "lo", "hi", "n", "accuracy", "mean_confidence"]].to_dict("list")
    {'bin': [0, 1], 'lo': [0.0, 0.5], 'hi': [0.5, 1.0], 'n': [10, 0], 'accuracy': [0.5, nan], \
'mean_confidence': [0.6, nan]}
    """
    n, k, s = _bins(count, correct, conf_sum)
    if n.ndim != 1:
        raise ValueError(f"count must be one-dimensional (one entry per bin), got shape {n.shape}")
    m = n.size
    e = bin_edges(m) if edges is None else chk.as_float(edges, "edges").ravel()
    if e.size != m + 1:
        raise ValueError(f"edges must have {m + 1} values (bins + 1), got {e.size}")
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = k / n
        mean_conf = s / n
    low, high = wilson_interval(k, n, confidence=confidence)
    return pd.DataFrame(
        {
            "bin": np.arange(m),
            "lo": e[:-1],
            "hi": e[1:],
            "n": n.astype(np.int64),
            "correct": k.astype(np.int64),
            "accuracy": acc,
            "mean_confidence": mean_conf,
            "gap": mean_conf - acc,
            "ci_low": low,
            "ci_high": high,
        }
    )


# --------------------------------------------------------------------------------------------
# Brier score and log loss (the top-label problem: target = correct, probability = confidence)
# --------------------------------------------------------------------------------------------


def brier_from_sums(n: ArrayLike, sum_sq_err: ArrayLike) -> Any:
    """Brier score ``sum((confidence - correct)^2) / n`` from its sums; NaN where ``n == 0``.

    Examples
    --------
    >>> brier_from_sums(4, 0.5)
    0.125
    """
    scalar = chk.is_scalar(n, sum_sq_err)
    na = chk.finite_nonnegative(n, "n")
    sa = chk.finite_nonnegative(sum_sq_err, "sum_sq_err")
    over = sa > na * (1.0 + 1e-9)
    if over.any():
        raise ValueError(
            f"sum_sq_err must not exceed n (each term is <= 1), got {sa[over][:5].tolist()}"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        return chk.out(chk.nan_if(na == 0, sa / na), scalar)


def brier_score_loss(correct: ArrayLike, confidence: ArrayLike) -> float:
    """Top-label Brier score from item arrays: mean of ``(confidence - correct)^2``.

    Examples
    --------
    >>> brier_score_loss([1, 0], [0.9, 0.2])
    0.025
    """
    y, c = _labeled_arrays(correct, confidence)
    return float(brier_from_sums(y.size, float(np.sum((c - y) ** 2))))


def log_loss_from_sums(n: ArrayLike, sum_neg_log_lik: ArrayLike) -> Any:
    """Mean log loss from its sum ``-sum(log(p_i))``; NaN where ``n == 0``.

    Each item's term is ``-log(c)`` if correct else ``-log(1 - c)``, with ``c`` clipped to
    ``[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]`` (stage 1 must clip the same way).

    Examples
    --------
    >>> round(log_loss_from_sums(2, 0.5), 3)
    0.25
    """
    scalar = chk.is_scalar(n, sum_neg_log_lik)
    na = chk.finite_nonnegative(n, "n")
    sa = chk.finite_nonnegative(sum_neg_log_lik, "sum_neg_log_lik")
    with np.errstate(divide="ignore", invalid="ignore"):
        return chk.out(chk.nan_if(na == 0, sa / na), scalar)


def log_loss(correct: ArrayLike, confidence: ArrayLike, *, eps: float = LOG_LOSS_EPS) -> float:
    """Top-label log loss from item arrays (natural log), probabilities clipped to ``[eps, 1-eps]``.

    Examples
    --------
    >>> round(log_loss([1, 0], [0.9, 0.2]), 4)
    0.1643
    """
    y, c = _labeled_arrays(correct, confidence)
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps!r}")
    p = np.clip(np.where(y == 1, c, 1.0 - c), eps, 1.0 - eps)
    return float(log_loss_from_sums(y.size, float(-np.log(p).sum())))


# --------------------------------------------------------------------------------------------
# Class-wise ECE
# --------------------------------------------------------------------------------------------


def classwise_ece_from_bins(count: ArrayLike, hits: ArrayLike, prob_sum: ArrayLike) -> float:
    """Class-wise ECE (Kull et al. 2019) from per-(class, bin) aggregates.

    ``mean_j sum_b |hits_jb - prob_sum_jb| / N``: for each class ``j``, every item is binned by
    its probability for ``j`` (an item whose class_probabilities omit ``j`` has probability 0,
    hence bin 0), ``hits`` counts the items whose label is ``j``.

    Parameters
    ----------
    count, hits, prob_sum : array-like of shape (K, M)
        Per class (rows) and bin (columns): items, items labeled with that class, and the sum
        of their probabilities for that class. Every row must total the same N items.

    Returns
    -------
    float
        Class-wise ECE in [0, 1]; NaN for no items.

    Examples
    --------
    >>> classwise_ece_from_bins([[2, 2], [2, 2]], [[0, 2], [0, 2]], [[0.4, 1.6], [0.6, 1.4]])
    0.25
    """
    n, k, s = _bins(count, hits, prob_sum)
    if n.ndim != 2:
        raise ValueError(f"count must have shape (classes, bins), got {n.shape}")
    totals = n.sum(axis=1)
    if not np.allclose(totals, totals[0]):
        raise ValueError(
            "every class must count every item once (absent probabilities in bin 0); per-class "
            f"totals differ: {totals[:5].tolist()}"
        )
    if totals.size == 0 or totals[0] == 0:
        return math.nan
    return float(np.abs(k - s).sum(axis=1).mean() / totals[0])


def classwise_bins(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    *,
    n_bins: int = 15,
    classes: ArrayLike | None = None,
) -> BinCounts:
    """Per-(class, bin) aggregates ``(count, hits, prob_sum)`` of shape (K, M) from arrays.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        True labels.
    y_prob : array-like of shape (n, K)
        Class probabilities in [0, 1], column ``j`` for ``classes[j]``.
    n_bins : int, default 15
        Right-closed equal-width bins.
    classes : array-like of shape (K,), optional
        The label of each column; default ``0 .. K-1``.

    Returns
    -------
    BinCounts
        ``count``, ``correct`` (the hits) and ``conf_sum`` (the probability sums), each (K, M).
    """
    p = chk.probabilities(y_prob, "y_prob")
    if p.ndim != 2:
        raise ValueError(f"y_prob must have shape (n, classes), got {p.shape}")
    y = np.asarray(y_true).ravel()
    chk.same_length(y, p, "y_true", "y_prob")
    n_classes = p.shape[1]
    labels = np.arange(n_classes) if classes is None else np.asarray(classes).ravel()
    if labels.size != n_classes:
        raise ValueError(
            f"classes must have {n_classes} labels (y_prob columns), got {labels.size}"
        )
    m = chk.positive_int(n_bins, "n_bins")
    key = (np.arange(n_classes) * m + bin_index(p, m)).ravel()  # row-major: item, then class
    hit = (y[:, None] == labels[None, :]).ravel().astype(np.float64)
    size = n_classes * m
    return BinCounts(
        count=np.bincount(key, minlength=size).reshape(n_classes, m).astype(np.float64),
        correct=np.bincount(key, weights=hit, minlength=size).reshape(n_classes, m),
        conf_sum=np.bincount(key, weights=p.ravel(), minlength=size).reshape(n_classes, m),
    )


def classwise_ece(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    *,
    n_bins: int = 15,
    classes: ArrayLike | None = None,
) -> float:
    """Class-wise ECE from labels and an (n, K) probability matrix; see `classwise_bins`.

    Examples
    --------
    >>> classwise_ece([0, 1], [[0.8, 0.2], [0.3, 0.7]], n_bins=5)
    0.25
    """
    return classwise_ece_from_bins(*classwise_bins(y_true, y_prob, n_bins=n_bins, classes=classes))


# --------------------------------------------------------------------------------------------
# Consistency-resampling test
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationTest:
    """ECE with its consistency-resampling test and the display rules of SPEC 3.5."""

    ece: float
    """Observed ECE (NaN for no items)."""
    p_value: float
    """``(1 + #{ECE* >= ECE}) / (1 + reps)`` under perfect calibration given the bins."""
    noise_floor: float
    """Mean ECE* under perfect calibration: the ECE a perfect model shows at this n."""
    n: int
    """Labeled items."""
    noisy: bool
    """True below `MIN_STABLE_N` labeled items."""
    shown: bool
    """False below `MIN_SHOWN_N` labeled items (the report then hides the ECE)."""
    reps: int = 1000
    """Resamples drawn under the null."""

    def to_frame(self) -> pd.DataFrame:
        """A one-row table of the fields."""
        return pd.DataFrame([self.__dict__])

    def _repr_html_(self) -> str:
        return self.to_frame()._repr_html_()  # type: ignore[no-any-return]


def calibration_test(
    count: ArrayLike,
    correct: ArrayLike,
    conf_sum: ArrayLike,
    *,
    reps: int = 1000,
    seed: int = 0,
) -> CalibrationTest:
    """Is the ECE larger than a perfectly calibrated model would show? Consistency resampling.

    Conditional on the bins, under the null of perfect calibration each bin's correct count is
    drawn as ``k_b* ~ Binomial(n_b, mean_confidence_b)`` and the ECE recomputed. (The true
    null count is a Poisson-binomial with at most that variance, so the test is conservative.)

    Parameters
    ----------
    count, correct, conf_sum : array-like of shape (M,)
        Per-bin aggregates with integer counts.
    reps : int, default 1000
        Null resamples.
    seed : int, default 0
        Seed of the random generator.

    Returns
    -------
    CalibrationTest

    Examples
    --------
    >>> t = calibration_test([400, 600], [300, 590], [320.0, 570.0], seed=0)
    >>> round(t.ece, 3), t.p_value < 0.01, t.noisy, t.shown
    (0.04, True, False, True)
    """
    n, k, s = _bins(count, correct, conf_sum)
    if n.ndim != 1:
        raise ValueError(f"count must be one-dimensional (one entry per bin), got shape {n.shape}")
    if not (np.allclose(n, np.round(n)) and np.allclose(k, np.round(k))):
        raise ValueError("count and correct must hold integer counts for the binomial resampling")
    reps = chk.positive_int(reps, "reps")
    total = int(np.rint(n.sum()))
    shown, noisy = total >= MIN_SHOWN_N, total < MIN_STABLE_N
    if total == 0:
        return CalibrationTest(math.nan, math.nan, math.nan, 0, noisy, shown, reps)
    ece = float(np.abs(k - s).sum() / total)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.clip(np.where(n > 0, s / n, 0.0), 0.0, 1.0)
    rng = np.random.default_rng(seed)
    k_null = rng.binomial(np.round(n).astype(np.int64), p, size=(reps, n.size))
    ece_null = np.abs(k_null - s).sum(axis=1) / total
    # A hair of tolerance: a resample equal to the observation must count as ">=".
    exceed = int(np.count_nonzero(ece_null >= ece - 1e-12))
    return CalibrationTest(
        ece=ece,
        p_value=(1 + exceed) / (1 + reps),
        noise_floor=float(ece_null.mean()),
        n=total,
        noisy=noisy,
        shown=shown,
        reps=reps,
    )


def is_miscalibrated(test: CalibrationTest, threshold: float, *, alpha: float = 0.01) -> bool:
    """SPEC 3.5's rule: miscalibrated only when the test rejects (p < alpha) and ECE > threshold.

    Examples
    --------
    >>> t = CalibrationTest(ece=0.08, p_value=0.001, noise_floor=0.01, n=2000, noisy=False,
    ...                     shown=True)
    >>> is_miscalibrated(t, 0.05), is_miscalibrated(t, 0.1)
    (True, False)
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    chk.level(alpha, "alpha")
    return bool(test.p_value < alpha and test.ece > threshold)
