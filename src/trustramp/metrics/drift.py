"""Confidence-distribution drift (SPEC 3.1, 3.5): PSI on frozen bins, with sample-size-aware levels.

The population stability index compares the share of items per bin in the current window
(``actual``) with a frozen baseline (``expected``): ``PSI = sum (a - e) ln(a / e)``. The usual
fixed levels (0.1 warning, 0.25 critical) ignore sampling noise: with no drift at all, PSI is
approximately ``(1/n_e + 1/n_a) * chi2(B - 1)`` for B bins, which for small windows exceeds
0.1 by chance alone. `psi_levels` therefore raises each level to that null quantile when it
is larger.

The chi-square approximation fails where bins are sparse: a bin with an expected count near 1 is
empty on one side by chance, and the epsilon share an empty bin gets makes its PSI term large.
With 600 items on each side and a tenth of the mass spread over ten rare bins, no drift at all
crossed the chi-square warning level 17 % of the time (nominal 5 %). `psi_result` therefore also
takes each level at least at the PSI's null quantile simulated for these counts
(`PSI_NULL_DRAWS` multinomial draws of both windows from their pooled shares with half an item
added to every bin, seeded), which only raises a level: the false-alarm rate is back at its
nominal level (5.0 % in that case) before the alerts act on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from trustramp import _dist
from trustramp.metrics import _checks as chk
from trustramp.metrics._checks import FloatArray

__all__ = [
    "PSI_CRITICAL",
    "PSI_NULL_DRAWS",
    "PSI_NULL_SEED",
    "PSI_WARNING",
    "DriftStatus",
    "PsiResult",
    "psi",
    "psi_levels",
    "psi_result",
]

PSI_WARNING = 0.1
"""Conventional PSI warning level; the floor of the sample-size-aware warning level."""
PSI_CRITICAL = 0.25
"""Conventional PSI critical level; the floor of the sample-size-aware critical level."""
PSI_NULL_DRAWS = 2000
"""Draws of the simulated no-drift PSI distribution behind `psi_result`'s levels."""
PSI_NULL_SEED = 20261205
"""Seed of those draws: the same counts always get the same levels."""


class DriftStatus(StrEnum):
    """Outcome of a drift check against the sample-size-aware levels."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    INSUFFICIENT = "insufficient"
    """Too few current items (below ``min_n``) or an empty baseline: no judgement."""


def _shares(counts: FloatArray, eps: float) -> FloatArray:
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = counts / total
    p = np.where(p > 0, p, eps)
    return p / p.sum(axis=-1, keepdims=True)


def psi(expected_counts: ArrayLike, actual_counts: ArrayLike, *, eps: float = 1e-4) -> Any:
    """Population stability index of `actual_counts` against `expected_counts` on the same bins.

    Parameters
    ----------
    expected_counts : array-like of shape (B,)
        Baseline items per frozen bin.
    actual_counts : array-like of shape (..., B)
        Current items per bin; leading axes (days, segments) give one PSI each.
    eps : float, default 1e-4
        Share given to an empty bin before the shares are renormalized to sum to 1.

    Returns
    -------
    float or ndarray
        PSI >= 0; NaN where either side has no items.

    Examples
    --------
    >>> round(psi([50, 30, 20], [40, 30, 30]), 4)
    0.0629
    """
    e = chk.finite_nonnegative(expected_counts, "expected_counts")
    a = chk.finite_nonnegative(actual_counts, "actual_counts")
    if e.ndim != 1:
        raise ValueError(f"expected_counts must be one-dimensional, got shape {e.shape}")
    if a.ndim == 0 or a.shape[-1] != e.size:
        raise ValueError(
            f"actual_counts must have {e.size} bins (as expected_counts) in its last axis, "
            f"got shape {a.shape}"
        )
    if not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps!r}")
    pe, pa = _shares(e, eps), _shares(a, eps)
    value = ((pa - pe) * np.log(pa / pe)).sum(axis=-1)
    empty = (a.sum(axis=-1) == 0) | (e.sum() == 0)
    return chk.out(np.maximum(chk.nan_if(empty, value), 0.0), a.ndim == 1)


def _null_quantiles(
    e: FloatArray, a: FloatArray, quantiles: tuple[float, float], eps: float
) -> FloatArray:
    """The PSI's quantiles when both windows are drawn from their pooled shares (no drift)."""
    pooled = (e + a + 0.5) / (e + a + 0.5).sum()  # Jeffreys: sparse bins vary in the draws too
    rng = np.random.default_rng(PSI_NULL_SEED)
    n_e, n_a = int(np.rint(e.sum())), int(np.rint(a.sum()))
    pe = _shares(rng.multinomial(n_e, pooled, size=PSI_NULL_DRAWS).astype(np.float64), eps)
    pa = _shares(rng.multinomial(n_a, pooled, size=PSI_NULL_DRAWS).astype(np.float64), eps)
    values = ((pa - pe) * np.log(pa / pe)).sum(axis=-1)
    return np.quantile(values, quantiles)  # type: ignore[no-any-return]


def psi_levels(
    n_expected: ArrayLike,
    n_actual: ArrayLike,
    n_bins: int,
    *,
    warning_quantile: float = 0.95,
    critical_quantile: float = 0.99,
    warning_floor: float = PSI_WARNING,
    critical_floor: float = PSI_CRITICAL,
) -> tuple[Any, Any]:
    """Warning and critical PSI levels that account for sample size.

    Each level is ``max(floor, (1/n_expected + 1/n_actual) * chi2.ppf(quantile, n_bins - 1))``:
    the conventional level, or the PSI that no drift at all would exceed with probability
    ``1 - quantile``, whichever is larger.

    Parameters
    ----------
    n_expected, n_actual : array-like
        Items in the baseline and in the current window (> 0).
    n_bins : int
        Number of bins (>= 2).
    warning_quantile, critical_quantile : float
        Null quantiles of the two levels.
    warning_floor, critical_floor : float
        Conventional levels the result never goes below.

    Returns
    -------
    warning, critical : float or ndarray

    Examples
    --------
    >>> w, c = psi_levels(10_000, 600, 10)
    >>> round(w, 4), c
    (0.1, 0.25)
    >>> w, c = psi_levels(200, 150, 10)
    >>> round(w, 3), round(c, 3)
    (0.197, 0.253)
    """
    scalar = chk.is_scalar(n_expected, n_actual)
    ne = chk.finite_nonnegative(n_expected, "n_expected")
    na = chk.finite_nonnegative(n_actual, "n_actual")
    if (ne == 0).any() or (na == 0).any():
        raise ValueError(
            f"n_expected and n_actual must be > 0, got {np.ravel(ne)[:5].tolist()} and "
            f"{np.ravel(na)[:5].tolist()}"
        )
    b = chk.positive_int(n_bins, "n_bins", minimum=2)
    qw = chk.level(warning_quantile, "warning_quantile")
    qc = chk.level(critical_quantile, "critical_quantile")
    scale = 1.0 / ne + 1.0 / na
    warning = np.maximum(warning_floor, scale * _dist.chi2_ppf(qw, b - 1))
    critical = np.maximum(critical_floor, scale * _dist.chi2_ppf(qc, b - 1))
    return chk.out(warning, scalar), chk.out(critical, scalar)


@dataclass(frozen=True)
class PsiResult:
    """PSI of one window against the baseline, with its levels and status."""

    value: float
    """PSI (NaN when either side is empty)."""
    n_expected: int
    """Baseline items."""
    n_actual: int
    """Current items."""
    warning: float
    """Sample-size-aware warning level (NaN when insufficient)."""
    critical: float
    """Sample-size-aware critical level (NaN when insufficient)."""
    status: DriftStatus
    """ok, warning, critical, or insufficient (fewer than ``min_n`` current items)."""

    def to_frame(self) -> pd.DataFrame:
        """A one-row table of the fields."""
        return pd.DataFrame([{**self.__dict__, "status": str(self.status)}])

    def _repr_html_(self) -> str:
        return self.to_frame()._repr_html_()  # type: ignore[no-any-return]


def psi_result(
    expected_counts: ArrayLike,
    actual_counts: ArrayLike,
    *,
    eps: float = 1e-4,
    min_n: int = 500,
    warning_quantile: float = 0.95,
    critical_quantile: float = 0.99,
) -> PsiResult:
    """PSI with sample-size-aware levels and a status; insufficient below `min_n` current items.

    Each level is the largest of the conventional floor, the chi-square null quantile of
    `psi_levels` (``B`` the number of bins that hold items on either side, at least 2) and the
    simulated null quantile for these counts (see the module docstring).

    Parameters
    ----------
    expected_counts, actual_counts : array-like of shape (B,)
        Baseline and current items per frozen bin.
    eps : float, default 1e-4
        Share given to empty bins (see `psi`).
    min_n : int, default 500
        Fewest current items for a judgement (SPEC 3.5).
    warning_quantile, critical_quantile : float
        See `psi_levels`.

    Returns
    -------
    PsiResult

    Examples
    --------
    >>> r = psi_result([5000, 3000, 2000], [400, 300, 300])
    >>> r.status.value, round(r.value, 4)
    ('ok', 0.0629)
    >>> psi_result([5000, 3000, 2000], [40, 30, 30]).status.value
    'insufficient'
    """
    value = psi(expected_counts, actual_counts, eps=eps)
    e = np.asarray(expected_counts, dtype=np.float64)
    a = np.asarray(actual_counts, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"actual_counts must be one-dimensional here, got shape {a.shape}")
    min_n = chk.positive_int(min_n, "min_n")
    n_e, n_a = int(np.rint(e.sum())), int(np.rint(a.sum()))
    if n_a < min_n or n_e == 0:
        return PsiResult(float(value), n_e, n_a, math.nan, math.nan, DriftStatus.INSUFFICIENT)
    bins = max(2, int(np.count_nonzero((e > 0) | (a > 0))))
    warning, critical = psi_levels(
        n_e, n_a, bins, warning_quantile=warning_quantile, critical_quantile=critical_quantile
    )
    sim_w, sim_c = _null_quantiles(e, a, (warning_quantile, critical_quantile), eps)
    warning, critical = max(float(warning), float(sim_w)), max(float(critical), float(sim_c))
    status = (
        DriftStatus.CRITICAL
        if value >= critical
        else DriftStatus.WARNING
        if value >= warning
        else DriftStatus.OK
    )
    return PsiResult(float(value), n_e, n_a, float(warning), float(critical), status)
