"""Confidence thresholds for the routing bands (SPEC 3.4, 3.5; playbook section 5).

The input is a *grid frame*: one row per confidence cell ``[lo, lo + step)`` (the last cell
includes 1.0) with ``n`` labeled items and ``correct`` of them right, optionally ``total`` (all
items, labeled or not, for traffic shares) and dimension columns (``segment``, ``customer_id``,
``day``, ``model_version``) that are summed over unless a function groups by them. `grid_counts`
builds the same frame from arrays.

Thresholds are certified with Learn-then-Test over the fixed descending grid: for each candidate
``t`` the null hypothesis "the items the band would route are less than ``target`` accurate" is
tested with the exact binomial p-value ``P(Binom(n_t, target) >= k_t)`` on integer counts, in
descending order by fixed-sequence testing with fallback: δ is spread over checkpoints chosen by
counts alone (the highest thresholds with ``m``, ``2m``, ``4m``, ... labeled items, ``m`` from
`min_labels_to_start`), and a failure pauses the walk until the next checkpoint instead of ending
it (`certify_threshold` says why). Given per-customer counts (``clusters=``), each test runs on
its band's counts deflated by the customers' design effect, as the gates do. A band's items are
those it would route (SPEC 3.4): auto ``[t, 1]``, confirm ``[t, t_auto)``, review
``[t, t_confirm)``, so the bands are certified top-down; a band under another one narrower than
`MIN_BAND_WIDTH` is not offered. The three bands split δ Bonferroni: all their statements hold
together with probability at least ``1 - δ``.

Confidences are resolved at 1e-6 with integer arithmetic, so a cell never depends on how a float
rounds at its edge: ``cell = floor(c * 1e6 + 0.5) // round(step * 1e6)``, clipped to the last cell
(DuckDB: ``least(CAST(round(confidence * 1e6) AS BIGINT) // 10000, 99)`` for step 0.01).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from trustramp import _dist

BANDS: tuple[str, ...] = ("auto", "confirm", "review")
"""The tested bands, highest first; everything below the review band goes to a human."""
HUMAN = "human"
ALL_BANDS: tuple[str, ...] = (*BANDS, HUMAN)

RESOLUTION = 1_000_000
"""Confidences and grid edges are compared as integers in units of 1e-6."""

LO, N, CORRECT, TOTAL, DAY = "lo", "n", "correct", "total", "day"

__all__ = [
    "ALL_BANDS",
    "BANDS",
    "BandRecommendation",
    "Certified",
    "GroupRecommendation",
    "Replay",
    "Stage",
    "ThresholdRecommendation",
    "apply_progression",
    "certify_threshold",
    "grid_counts",
    "min_labels_to_certify",
    "min_labels_to_start",
    "progression_stage",
    "recommend_by_group",
    "recommend_thresholds",
    "replay_policy",
    "to_config_patch",
]


class Stage(StrEnum):
    """The playbook's threshold progression within a phase (section 5)."""

    CONSERVATIVE = "conservative"
    """Weeks 1-2: everything to human review (no auto, no confirm band)."""
    MODERATE = "moderate"
    """Weeks 3-4: auto-process only at high confidence."""
    OPTIMIZED = "optimized"
    """Week 5 on: the certified thresholds."""


# --------------------------------------------------------------------------------------------
# Grid: integer cells
# --------------------------------------------------------------------------------------------


def _step_units(step: float) -> int:
    if not isinstance(step, int | float) or not 0 < step <= 0.1 or math.isnan(step):
        raise ValueError(f"step must be in (0, 0.1], got {step!r}")
    units = math.floor(step * RESOLUTION + 0.5)
    if abs(step * RESOLUTION - units) > 1e-6 * units:
        raise ValueError(f"step must be a multiple of 1e-6, got {step!r}")
    return units


def _n_cells(units: int) -> int:
    return -(-RESOLUTION // units)


def _decimals(units: int) -> int:
    """Decimals needed to print a grid edge (at least 2)."""
    d = 6
    while d > 2 and units % 10 == 0:
        units //= 10
        d -= 1
    return d


def _edge(i: int, units: int) -> float:
    return i * units / RESOLUTION


def _edges(size: int, units: int) -> NDArray[np.float64]:
    """The first ``size`` cell edges (exactly ``_edge(i, units)``: integer product, one division)."""
    return (np.arange(size, dtype=np.int64) * units) / RESOLUTION


def _cells_of(confidence: NDArray[np.float64], units: int) -> NDArray[np.int64]:
    q = np.floor(confidence * RESOLUTION + 0.5).astype(np.int64)
    return np.minimum(q // units, _n_cells(units) - 1)


def _grid_index(t: float, units: int, *, name: str) -> int:
    """The cell index of a threshold that lies on the grid (1.0 maps past the last cell)."""
    if not isinstance(t, int | float) or math.isnan(t) or not 0.0 <= t <= 1.0:
        raise ValueError(f"{name} must be a threshold in [0, 1], got {t!r}")
    q = math.floor(t * RESOLUTION + 0.5)
    if q % units:
        raise ValueError(
            f"{name}={t!r} is not on the {units / RESOLUTION:g} grid; "
            f"use a multiple of {units / RESOLUTION:g}"
        )
    return q // units


def grid_counts(
    confidence: ArrayLike,
    correct: ArrayLike,
    *,
    step: float = 0.01,
    dims: Mapping[str, ArrayLike] | None = None,
) -> pd.DataFrame:
    """Count items per confidence cell: the grid frame the threshold functions take.

    Parameters
    ----------
    confidence : array-like of shape (n,)
        Top-label confidences in [0, 1].
    correct : array-like of shape (n,)
        1 (or True) where the prediction was right, 0 where wrong, NaN where the item has no
        label yet (it still counts in ``total``).
    step : float, default 0.01
        Cell width; cells are ``[lo, lo + step)`` and the last one includes 1.0.
    dims : mapping of str to array-like, optional
        Extra dimension columns (e.g. ``{"day": days, "segment": segments}``) to count by.

    Returns
    -------
    pandas.DataFrame
        Columns ``*dims, lo, n, correct, total``. Without ``dims`` every cell is present (zeros
        included); with ``dims`` only the observed combinations.

    Examples
    --------
    >>> g = grid_counts([0.955, 0.95, 1.0, 0.5], [1, 0, 1, float("nan")])
    >>> g[g["total"] > 0].to_dict("list")
    {'lo': [0.5, 0.95, 0.99], 'n': [0, 2, 1], 'correct': [0, 1, 1], 'total': [1, 2, 1]}
    """
    units = _step_units(step)
    c = np.asarray(confidence, dtype=float).ravel()
    y = np.asarray(correct, dtype=float).ravel()
    if c.shape != y.shape:
        raise ValueError(
            f"confidence and correct must have the same length, got {c.size} and {y.size}"
        )
    bad = ~np.isfinite(c) | (c < 0) | (c > 1)
    if bad.any():
        raise ValueError(f"confidence has values outside [0, 1]: {c[bad][:5].tolist()}")
    labeled = ~np.isnan(y)
    if not np.isin(y[labeled], (0.0, 1.0)).all():
        odd = np.unique(y[labeled][~np.isin(y[labeled], (0.0, 1.0))])[:5]
        raise ValueError(f"correct must be 0, 1 or NaN (unlabeled), got {odd.tolist()}")
    cell = _cells_of(c, units)
    n_cells = _n_cells(units)
    columns: dict[str, Any] = {}
    if not dims:
        key, size = cell, n_cells
        rows = np.arange(n_cells)
    else:
        cols = {name: np.asarray(v).ravel() for name, v in dims.items()}
        for name, v in cols.items():
            if v.shape != c.shape:
                raise ValueError(f"dims[{name!r}] has {v.size} values, confidence has {c.size}")
        codes, uniques = pd.MultiIndex.from_arrays(list(cols.values())).factorize()
        key, size = codes.astype(np.int64) * n_cells + cell, len(uniques) * n_cells
        rows = np.flatnonzero(np.bincount(key, minlength=size))
        for level, name in enumerate(cols):
            columns[name] = np.asarray(uniques.get_level_values(level))[rows // n_cells]
    columns[LO] = (rows % n_cells) * units / RESOLUTION
    columns[N] = np.bincount(key[labeled], minlength=size)[rows].astype(np.int64)
    hits = np.bincount(key[labeled], weights=y[labeled], minlength=size)[rows]
    columns[CORRECT] = np.rint(hits).astype(np.int64)
    columns[TOTAL] = np.bincount(key, minlength=size)[rows].astype(np.int64)
    return pd.DataFrame(columns)


@dataclass(frozen=True)
class _Cells:
    """Per-cell counts of a validated grid, summed over every other column."""

    n: NDArray[np.int64]
    correct: NDArray[np.int64]
    total: NDArray[np.int64]
    units: int
    clusters: _Clusters | None = None
    """The same labeled items by customer, when certification allows for clustering."""

    @functools.cached_property
    def _prefix(self) -> dict[str, list[int]]:
        return {
            name: [0, *np.cumsum(getattr(self, name)).tolist()]
            for name in ("n", "correct", "total")
        }

    def between(self, name: str, r: tuple[int, int] | None) -> int:
        """The sum of column ``name`` over the cell range ``r`` (0 for None) of 1-D cells."""
        if r is None:
            return 0
        prefix = self._prefix[name]
        return prefix[r[1]] - prefix[r[0]]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                LO: _edges(self.n.size, self.units),
                N: self.n,
                CORRECT: self.correct,
                TOTAL: self.total,
            }
        )


def _numbers(grid: pd.DataFrame, column: str) -> NDArray[np.float64]:
    """A column as floats; what is not a number becomes NaN (and fails validation)."""
    try:
        return grid[column].to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        return pd.to_numeric(grid[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _counts(grid: pd.DataFrame, column: str) -> NDArray[np.float64]:
    v = _numbers(grid, column)
    bad = ~np.isfinite(v) | (v < 0) | (v != np.round(v))
    if bad.any():
        raise ValueError(
            f"grid column {column!r} must hold non-negative whole counts, "
            f"got {grid[column][bad].head(3).tolist()}"
        )
    return v


def _validated(
    grid: pd.DataFrame, units: int
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Cell index, n, correct and total of each row of a grid frame."""
    if not isinstance(grid, pd.DataFrame):
        raise TypeError(f"grid must be a pandas DataFrame, got {type(grid).__name__}")
    missing = [c for c in (LO, N, CORRECT) if c not in grid.columns]
    if missing:
        raise ValueError(
            f"grid is missing column(s) {missing}; expected lo, n, correct (and optionally total), "
            f"got {list(grid.columns)}"
        )
    lo = _numbers(grid, LO)
    q = np.floor(lo * RESOLUTION + 0.5)
    bad = ~np.isfinite(lo) | (lo < 0) | (lo >= 1) | (np.abs(lo * RESOLUTION - q) > 1e-3)
    bad |= ~bad & (q % units != 0)
    if bad.any():
        raise ValueError(
            f"grid column 'lo' must hold cell edges in [0, 1) on the {units / RESOLUTION:g} grid, "
            f"got {grid[LO][bad].head(3).tolist()}"
        )
    n, k = _counts(grid, N), _counts(grid, CORRECT)
    if (k > n).any():
        row = int(np.argmax(k > n))
        raise ValueError(f"grid row {row}: correct ({k[row]:g}) exceeds n ({n[row]:g})")
    if TOTAL in grid.columns:
        tot = _counts(grid, TOTAL)
        if (tot < n).any():
            row = int(np.argmax(tot < n))
            raise ValueError(f"grid row {row}: total ({tot[row]:g}) is below n ({n[row]:g})")
    else:
        tot = n
    return (q // units).astype(np.int64), n, k, tot


def _collapse(grid: pd.DataFrame, step: float) -> _Cells:
    units = _step_units(step)
    idx, n, k, tot = _validated(grid, units)
    size = _n_cells(units)

    def total(w: NDArray[np.float64]) -> NDArray[np.int64]:
        return np.rint(np.bincount(idx, weights=w, minlength=size)).astype(np.int64)

    return _Cells(total(n), total(k), total(tot), units)


def _collapse_by(grid: pd.DataFrame, by: str, step: float) -> tuple[list[Any], _Cells]:
    """Per-cell counts for each value of ``by``: arrays of shape (groups, cells)."""
    units = _step_units(step)
    if by not in grid.columns:
        raise ValueError(f"grid has no column {by!r}; columns are {list(grid.columns)}")
    idx, n, k, tot = _validated(grid, units)
    codes, uniques = pd.factorize(grid[by], sort=True)
    if (codes < 0).any():
        raise ValueError(f"grid column {by!r} has missing values")
    size = _n_cells(units)
    key = codes.astype(np.int64) * size + idx
    shape = (len(uniques), size)

    def total(w: NDArray[np.float64]) -> NDArray[np.int64]:
        counts = np.bincount(key, weights=w, minlength=shape[0] * size)
        return np.rint(counts).astype(np.int64).reshape(shape)

    return list(uniques), _Cells(total(n), total(k), total(tot), units)


CUSTOMER = "customer_id"


@dataclass(frozen=True)
class _Clusters:
    """Labeled and correct counts per customer (rows) and cell; items without a customer apart."""

    n: NDArray[np.int64]
    k: NDArray[np.int64]
    loose_n: NDArray[np.int64]
    loose_k: NDArray[np.int64]

    def design_effects(self, upper: int, confidence: float) -> NDArray[np.float64]:
        """The customers' design effect of the items in ``[t, upper)``, for each cell t < upper.

        `trustramp.metrics.intervals.design_effect` on the per-customer counts of each band
        (customers on the last axis), items without a customer each a cluster of their own.
        """
        from trustramp.metrics.intervals import design_effect

        def above(a: NDArray[np.int64]) -> NDArray[np.float64]:
            return np.cumsum(a[..., :upper][..., ::-1], axis=-1)[..., ::-1].astype(float)

        deff = design_effect(
            above(self.k).T,
            above(self.n).T,
            confidence=confidence,
            unclustered=(above(self.loose_k), above(self.loose_n)),
        )
        return np.atleast_1d(np.asarray(deff, dtype=float))


def _with_clusters(cells: _Cells, clusters: pd.DataFrame | None, step: float) -> _Cells:
    if clusters is None:
        return cells
    return dataclasses.replace(cells, clusters=_collapse_clusters(clusters, step))


def _collapse_clusters(grid: pd.DataFrame, step: float, column: str = CUSTOMER) -> _Clusters:
    """Per-customer cells of a grid frame with a customer column (missing: no customer)."""
    units = _step_units(step)
    if column not in grid.columns:
        raise ValueError(f"clusters has no column {column!r}; columns are {list(grid.columns)}")
    idx, n, k, _ = _validated(grid, units)
    codes, uniques = pd.factorize(grid[column])
    size = _n_cells(units)
    loose = codes < 0
    key = codes[~loose].astype(np.int64) * size + idx[~loose]

    def by_customer(w: NDArray[np.float64]) -> NDArray[np.int64]:
        counts = np.bincount(key, weights=w[~loose], minlength=len(uniques) * size)
        return np.rint(counts).astype(np.int64).reshape(len(uniques), size)

    def apart(w: NDArray[np.float64]) -> NDArray[np.int64]:
        return np.rint(np.bincount(idx[loose], weights=w[loose], minlength=size)).astype(np.int64)

    return _Clusters(by_customer(n), by_customer(k), apart(n), apart(k))


# --------------------------------------------------------------------------------------------
# Learn-then-Test, fixed sequence
# --------------------------------------------------------------------------------------------


def _p_values(n: NDArray[np.int64], k: NDArray[np.int64], target: float) -> NDArray[np.float64]:
    """Exact P(Binom(n, target) >= k); 1 where n = 0 (no evidence)."""
    p = _dist.binom_at_least(k, n, target)
    return np.where(n > 0, p, 1.0)


@functools.lru_cache(maxsize=256)
def min_labels_to_certify(target: float, delta: float) -> int | None:
    """The fewest labeled items with which the binomial test can reject at all.

    That is the least ``m`` with ``P(Binom(m, target) >= m) = target**m <= delta`` (all ``m``
    items correct), about ``ceil(log(delta) / log(target))``; None when ``target`` is 1.

    Examples
    --------
    >>> min_labels_to_certify(0.95, 0.05 / 3)
    80
    """
    _check_target_delta(target, delta)
    if target >= 1.0:
        return None
    if target <= 0.0:
        return 1
    m = max(1, math.ceil(math.log(delta) / math.log(target)))
    # Agree with the p-value the test computes, whatever the float rounding of the estimate.
    while m > 1 and _p_values(np.array([m - 1]), np.array([m - 1]), target)[0] <= delta:
        m -= 1
    while _p_values(np.array([m]), np.array([m]), target)[0] > delta:
        m += 1
    return m


@functools.lru_cache(maxsize=256)
def min_labels_to_start(target: float, delta: float) -> int | None:
    """Labeled items the first tested threshold needs by default.

    The least ``n`` at which the test would reject if the items made half the errors the
    target allows: ``P(Binom(n, target) >= n - floor(n * (1 - target) / 2)) <= delta``. It
    depends on counts only, never on which items are correct, so choosing the start this way
    keeps the fixed sequence valid. Starting at `min_labels_to_certify` instead (every item
    correct) wastes the whole walk on a handful of items: one error at the top and nothing is
    certified. None when ``target`` is 1.

    Examples
    --------
    >>> min_labels_to_start(0.95, 0.05 / 3)
    271
    """
    m = min_labels_to_certify(target, delta)
    if m is None or target <= 0.0:
        return m
    for lo in range(m, 10_000_000, 8192):
        n = np.arange(lo, lo + 8192)
        k = n - np.floor(n * (1 - target) / 2 + 1e-9).astype(np.int64)
        ok = np.flatnonzero(_p_values(n, k, target) <= delta)
        if ok.size:
            return int(n[ok[0]])
    return m  # pragma: no cover - a target this close to 1 cannot be certified in practice


def _check_target_delta(target: float, delta: float) -> None:
    if not isinstance(target, int | float) or math.isnan(target) or not 0 <= target <= 1:
        raise ValueError(f"target must be in [0, 1], got {target!r}")
    if not isinstance(delta, int | float) or math.isnan(delta) or not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")


def _pct(x: float) -> str:
    s = f"{100 * x:.2f}".rstrip("0").rstrip(".")
    return f"{s} %"


@dataclass(frozen=True)
class Certified:
    """The result of certifying one band's threshold.

    Attributes
    ----------
    threshold : float or None
        The lowest grid threshold the walk rejected: the items in ``[threshold, upper)`` (at or
        above it when ``upper`` is None) are at least ``target`` accurate with probability at
        least ``1 - delta`` (together with every other rejected threshold). None when no tested
        threshold holds, or when no threshold has enough items to be tested.
    target, delta : float
        The band's accuracy target and the error budget it was tested at.
    upper : float or None
        The band's fixed upper edge (None: up to 1.0 inclusive).
    n, correct : int
        Labeled items in the band at ``threshold`` and how many were right (0 when None).
    p_value : float or None
        The p-value at ``threshold``.
    start : float or None
        The first threshold tested (the highest with at least ``min_n`` labeled items).
    min_n : int or None
        Labeled items needed at the start (None: the target cannot be certified).
    reason : str
        Why this threshold, or why none, in a sentence.
    design_effect : float or None
        Customers as clusters (``clusters=`` given): the design effect of the band's items at
        ``threshold``; every test ran on the counts deflated by its band's design effect
        (`trustramp.metrics.intervals.deflate_counts`). None without clusters or threshold.
    checkpoints : tuple of (float, float)
        The fallback's checkpoints, highest first: (threshold, the share of ``delta`` it
        brings to the walk). One checkpoint with share 1: a plain fixed sequence.
    curve : pandas.DataFrame
        One row per candidate threshold below ``upper``, descending: ``threshold, n, correct,
        accuracy, total, p_value, level, status`` with ``level`` the significance level the
        threshold was tested at (NaN: not tested) and status ``skipped`` (above the start: too
        few items to test), ``rejected`` (certified), ``failed`` (tested and held: the walk
        pauses until the next checkpoint) or ``untested``. Built on first access:
        per-customer recommendations certify thousands of bands whose curves nobody reads.
    """

    threshold: float | None
    target: float
    delta: float
    upper: float | None
    n: int
    correct: int
    p_value: float | None
    start: float | None
    min_n: int | None
    reason: str
    design_effect: float | None
    _walk: _Walk = field(repr=False, compare=False)

    @functools.cached_property
    def curve(self) -> pd.DataFrame:
        return self._walk.curve()

    @property
    def checkpoints(self) -> tuple[tuple[float, float], ...]:
        w = self._walk
        return tuple(
            (_edge(i, w.units), level / self.delta) for i, level in sorted(w.alloc.items())[::-1]
        )

    def holds_at(self, threshold: float) -> bool:
        """True if ``threshold`` is one of the rejected (certified) grid thresholds."""
        w = self._walk
        if w.i_cert is None or not math.isfinite(threshold):
            return False
        # Only the nearest edge can be within half a unit of `threshold`.
        i = math.floor(threshold * RESOLUTION / w.units + 0.5)
        on_grid = abs(_edge(i, w.units) - threshold) < 0.5 / RESOLUTION
        return on_grid and 0 <= i < w.rejected.size and bool(w.rejected[i])


@dataclass(frozen=True)
class _Walk:
    """The arrays of one Learn-then-Test walk (cells below ``upper``, ascending)."""

    units: int
    upper: int
    """The cell index the walk ran below (the cells' size when the band has no upper edge)."""
    n_in: NDArray[np.int64]
    k_in: NDArray[np.int64]
    tot_in: NDArray[np.int64]
    target: float
    alloc: dict[int, float]
    """Checkpoint cell -> the level it brings to the walk (they sum to δ)."""
    level: NDArray[np.float64]
    """The level each cell was tested at; NaN where it was not tested."""
    rejected: NDArray[np.bool_]
    i_start: int | None
    i_cert: int | None
    clustered: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]] | None = None
    """Customers as clusters: the effective counts the tests ran on, and the design effects."""

    def status(self) -> NDArray[np.object_]:
        status = np.full(self.n_in.size, "skipped", dtype=object)
        if self.i_start is not None:
            status[: self.i_start + 1] = "untested"
            status[~np.isnan(self.level)] = "failed"
            status[self.rejected] = "rejected"
        return status

    def curve(self) -> pd.DataFrame:
        n_in, k_in = self.n_in, self.k_in
        n_test, k_test, deff = self.clustered or (n_in, k_in, None)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.where(n_in > 0, k_in / np.maximum(n_in, 1), np.nan)
        columns: dict[str, Any] = {
            "threshold": _edges(n_in.size, self.units),
            N: n_in,
            CORRECT: k_in,
            "accuracy": acc,
            TOTAL: self.tot_in,
        }
        if deff is not None:
            columns |= {"design_effect": deff, "n_effective": n_test, "correct_effective": k_test}
        columns |= {
            "p_value": _p_values(n_test, k_test, self.target),
            "level": self.level,
            "status": self.status().astype(str),
        }
        return pd.DataFrame(columns).iloc[::-1].reset_index(drop=True)


MIN_BAND_WIDTH = 0.05
"""A band below another one must span at least this much confidence to be offered."""

FIRST_SHARE = 0.75
"""The share of a band's δ that the first checkpoint brings (see `certify_threshold`)."""

_WALK_CHUNK = 32
"""Below the last checkpoint, p-values are computed this many cells at a time until a failure."""


def _checkpoints(
    n_in: NDArray[np.int64], need: int, delta: float, *, fallback: bool
) -> dict[int, float]:
    """The fallback's checkpoints from counts alone: cell -> the level it brings.

    Checkpoint ``j`` is the highest cell whose band holds at least ``need * 2**j`` labeled
    items, for every ``j`` with ``need * 2**j`` at most the labeled items below the band's upper
    edge. The first brings ``FIRST_SHARE`` of ``delta`` (the top is where a steep model's only
    certifiable items are, so it keeps most of δ), the later ones halve the rest, the last
    taking what is left: 3/4, 1/8, 1/16, ..., so the levels sum to ``delta``. Checkpoints that
    fall on the same cell add up. Without ``fallback`` (or with one checkpoint) the first
    checkpoint has all of ``delta``: a plain fixed sequence.
    """
    total = int(n_in[0]) if n_in.size else 0
    if total < need:
        return {}
    counts = [need]
    while fallback and counts[-1] * 2 <= total:
        counts.append(counts[-1] * 2)
    shares = [1.0]
    if len(counts) > 1:
        rest = [0.5 ** (j + 1) for j in range(len(counts) - 1)]
        rest[-1] *= 2
        shares = [FIRST_SHARE, *((1 - FIRST_SHARE) * r for r in rest)]
    # n_in is non-increasing: the cells with at least c items are 0..(their number - 1).
    cells = np.count_nonzero(n_in[None, :] >= np.array(counts)[:, None], axis=1) - 1
    alloc: dict[int, float] = {}
    for i, share in zip(cells.tolist(), shares, strict=True):
        alloc[i] = alloc.get(i, 0.0) + share * delta
    return alloc


def _walk(
    n_in: NDArray[np.int64],
    k_in: NDArray[np.int64],
    p: NDArray[np.float64],
    alloc: Mapping[int, float],
    *,
    target: float,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """The fixed sequence with fallback over descending cells: (level tested at, rejected).

    Walking down from the highest checkpoint, a cell is tested at the level carried so far plus
    its own checkpoint's (if any) and rejected when ``p <= level``; a rejection carries its
    level on to the next cell down, a failure carries nothing (the walk resumes at the next
    checkpoint with that checkpoint's level). Fills ``p`` where the walk needed a p-value;
    below the last failure the cells are never tested, so their p-values wait for
    `Certified.curve`.
    """
    size = n_in.size
    level = np.full(size, np.nan)
    rejected = np.zeros(size, dtype=bool)
    if not alloc:
        return level, rejected
    top, last = max(alloc), min(alloc)
    p[last : top + 1] = _p_values(n_in[last : top + 1], k_in[last : top + 1], target)
    carried = 0.0
    for i in range(top, last - 1, -1):  # at most the grid's cells
        carried += alloc.get(i, 0.0)
        if carried <= 0.0:
            continue
        level[i] = carried
        if p[i] <= carried:
            rejected[i] = True
        else:
            carried = 0.0
    hi = last
    while carried > 0.0 and hi > 0:  # below the last checkpoint: one level, until a failure
        lo = max(0, hi - _WALK_CHUNK)
        p[lo:hi] = _p_values(n_in[lo:hi], k_in[lo:hi], target)
        fails = np.flatnonzero(p[lo:hi] > carried)
        stop = lo + int(fails[-1]) if fails.size else lo
        level[stop:hi] = carried
        rejected[stop + (1 if fails.size else 0) : hi] = True
        if fails.size:
            carried = 0.0
        hi = lo
    return level, rejected


def _walk_reason(
    n_in: NDArray[np.int64],
    k_in: NDArray[np.int64],
    p: NDArray[np.float64],
    level: NDArray[np.float64],
    rejected: NDArray[np.bool_],
    i_start: int,
    units: int,
    clustered: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64] | None],
) -> str:
    fmt = f".{_decimals(units)}f"
    n_test, k_test, deff = clustered

    def worth(i: int) -> str:
        if deff is None:
            return ""
        return (
            f", worth {int(k_test[i]):,} correct of {int(n_test[i]):,} independent items "
            f"(customers' design effect {deff[i]:.2f})"
        )

    def fails(i: int) -> str:
        return (
            f"{_edge(i, units):{fmt}} fails: {int(k_in[i]):,} of {int(n_in[i]):,} correct"
            f"{worth(i)} (p = {p[i]:.3g} > {level[i]:.3g})"
        )

    failed = np.flatnonzero(~np.isnan(level) & ~rejected)
    hits = np.flatnonzero(rejected)
    if hits.size == 0:
        reason = f"the first tested threshold {fails(i_start)}"
        if failed.size > 1:
            later = "the later checkpoint" if failed.size == 2 else "every later checkpoint"
            reason += f"; so does {later}, the lowest {fails(int(failed[0]))}"
        return reason
    i_cert = int(hits[0])
    above = failed[failed > i_cert]
    gaps = np.flatnonzero(~rejected[i_cert:])
    run_top = i_cert + int(gaps[0]) - 1 if gaps.size else rejected.size - 1
    below = fails(i_cert - 1) if i_cert > 0 else "every lower threshold holds too"
    if deff is not None:
        below += f"; at {_edge(i_cert, units):{fmt}}{worth(i_cert).removeprefix(',')}"
    span = f"{_edge(run_top, units):{fmt}} down to {_edge(i_cert, units):{fmt}}"
    reason = f"certified from {span}; {below}"
    if above.size:
        reason += (
            f" (the walk resumed at {_edge(run_top, units):{fmt}}, a checkpoint with "
            f"{int(n_in[run_top]):,} labeled items, after {fails(int(above[-1]))})"
        )
    return reason


def _certify_cells(
    cells: _Cells,
    *,
    target: float,
    delta: float,
    min_start: int | None = None,
    upper: int | None = None,
    fallback: bool = True,
) -> Certified:
    """Learn-then-Test over the cells below ``upper`` (a cell index; None: all cells)."""
    units = cells.units
    size = cells.n.size if upper is None else upper
    n_in = np.cumsum(cells.n[:size][::-1])[::-1]
    k_in = np.cumsum(cells.correct[:size][::-1])[::-1]
    tot_in = np.cumsum(cells.total[:size][::-1])[::-1]
    p = np.full(size, np.nan)  # filled by the walk where it looked (see _Walk.curve)
    min_n = min_labels_to_certify(target, delta)
    alloc: dict[int, float] = {}
    level, rejected = np.full(size, np.nan), np.zeros(size, dtype=bool)
    # Customers as clusters: the tests run on the counts deflated by each band's design effect
    # (as informative as that many independent items); the checkpoints stay on the raw counts,
    # which do not depend on correctness.
    deff, n_test, k_test = None, n_in, k_in
    if cells.clusters is not None and size > 0:
        from trustramp.metrics.intervals import deflate_counts

        deff = cells.clusters.design_effects(size, 1.0 - delta)
        k_eff, n_eff = deflate_counts(k_in, n_in, deff, side="lower")
        k_test, n_test = np.asarray(k_eff, dtype=np.int64), np.asarray(n_eff, dtype=np.int64)
    if min_n is None:
        reason = f"a {_pct(target)} target cannot be certified from a finite sample"
    elif size == 0:
        reason = "no room below the band above"
    else:
        need = max(min_n, min_labels_to_start(target, delta) if min_start is None else min_start)
        alloc = _checkpoints(n_in, need, delta, fallback=fallback)
        level, rejected = _walk(n_test, k_test, p, alloc, target=target)
        if not alloc:
            reason = (
                f"needs ≥ {need:,} labeled items to test a {_pct(target)} target at "
                f"δ = {delta:.3g}; has {int(n_in[0]):,}"
            )
        else:
            reason = _walk_reason(
                n_in, k_in, p, level, rejected, max(alloc), units, (n_test, k_test, deff)
            )
    hits = np.flatnonzero(rejected)
    i_cert = int(hits[0]) if hits.size else None
    i_start = max(alloc) if alloc else None
    return Certified(
        threshold=None if i_cert is None else _edge(i_cert, units),
        target=float(target),
        delta=float(delta),
        upper=None if upper is None or upper >= cells.n.size else _edge(upper, units),
        n=0 if i_cert is None else int(n_in[i_cert]),
        correct=0 if i_cert is None else int(k_in[i_cert]),
        p_value=None if i_cert is None else float(p[i_cert]),
        start=None if i_start is None else _edge(i_start, units),
        min_n=min_n,
        reason=reason,
        design_effect=None if deff is None or i_cert is None else float(deff[i_cert]),
        _walk=_Walk(
            units,
            size,
            n_in,
            k_in,
            tot_in,
            target,
            alloc,
            level,
            rejected,
            i_start,
            i_cert,
            None if deff is None else (n_test, k_test, deff),
        ),
    )


def certify_threshold(
    grid: pd.DataFrame,
    *,
    target: float,
    delta: float,
    step: float = 0.01,
    upper: float | None = None,
    min_start: int | None = None,
    fallback: bool = True,
    clusters: pd.DataFrame | None = None,
) -> Certified:
    """Certify the lowest threshold whose items reach ``target`` accuracy (Learn-then-Test).

    For each grid threshold ``t``, descending, H0 is "the items with confidence ≥ t (below
    ``upper`` if given) are less than ``target`` accurate", tested with the exact binomial
    p-value ``P(Binom(n_t, target) >= k_t)`` on the integer counts ``n_t`` (labeled items) and
    ``k_t`` (correct ones). The hypotheses are tested in descending order by the fixed-sequence
    procedure with fallback (Wiens 2003; a chain graph in Bretz et al. 2009), which controls
    the family-wise error at ``delta`` under any dependence: δ is spread over *checkpoints*,
    the highest thresholds with at least ``m``, ``2m``, ``4m``, ... labeled items (``m`` =
    ``min_start``; while the band has that many), which bring 3δ/4, δ/8, δ/16, ... (the last
    the rest; one checkpoint brings all of δ). Walking down, a threshold is tested at the level
    carried so far plus its own checkpoint's; a rejection passes its level on to the next
    threshold down, a failure passes nothing, so the walk resumes at the next checkpoint. The
    recommended threshold is the lowest rejection; every rejected threshold holds, together,
    with probability at least ``1 - delta``. The checkpoints depend on counts only, never on
    correctness (nor on the design effect, which does).

    Why not one fixed sequence from the top: its first test sits where the fewest items are,
    and one unlucky failure there ends the walk. On real data the global auto band certified
    nothing ("0.97 fails: 393 of 404 correct, p = 0.0172 > δ = 0.0167") while each quarter of
    the same items certified down to 0.41. With checkpoints the walk resumes where 2, 4, 8
    times as many items give the test its power, and a pooled population starts its later
    checkpoints where its segments start.

    Parameters
    ----------
    grid : pandas.DataFrame
        The grid frame (``lo, n, correct``; other columns are summed over).
    target : float
        Accuracy the items must reach, in [0, 1].
    delta : float
        Error budget in (0, 1): the probability that the statement is wrong.
    step : float, default 0.01
        The grid's cell width.
    upper : float, optional
        A fixed upper edge on the grid: only items below it count (a band under a higher band).
    min_start : int, optional
        Labeled items the first tested threshold needs; never less than
        `min_labels_to_certify` (the fewest with which the test can reject at all, all of them
        correct), which ``min_start=0`` selects. The default, `min_labels_to_start`, asks for
        enough items that the test passes with half the errors the target allows.
    fallback : bool, default True
        False: one fixed sequence from the first checkpoint with all of δ (stops at its first
        failure).
    clusters : pandas.DataFrame, optional
        The same labeled items by customer: a grid frame with a ``customer_id`` column (a
        missing id: an item of its own). Items of one customer are not independent, so each
        threshold is tested on its band's counts deflated by the customers' design effect
        (`trustramp.metrics.intervals.effective_counts`, the gates' adjustment); the
        checkpoints stay on the raw counts.

    Returns
    -------
    Certified

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> c = rng.uniform(0.5, 1.0, 20_000)
    >>> cert = certify_threshold(grid_counts(c, rng.random(c.size) < c), target=0.9, delta=0.05)
    >>> 0.78 <= cert.threshold <= 0.84
    True
    """
    _check_target_delta(target, delta)
    if min_start is not None and (not isinstance(min_start, int | np.integer) or min_start < 0):
        raise ValueError(f"min_start must be a non-negative integer, got {min_start!r}")
    cells = _with_clusters(_collapse(grid, step), clusters, step)
    i_upper = None if upper is None else _grid_index(upper, cells.units, name="upper")
    return _certify_cells(
        cells, target=target, delta=delta, min_start=min_start, upper=i_upper, fallback=fallback
    )


# --------------------------------------------------------------------------------------------
# Bands
# --------------------------------------------------------------------------------------------


def _wilson(
    k: NDArray[np.int64] | int, n: NDArray[np.int64] | int, level: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Wilson score interval (two-sided, ``level``); NaN where n = 0."""
    z = _z(level)
    if np.ndim(k) == 0 and np.ndim(n) == 0:  # one band: the same arithmetic on floats
        return _wilson_one(float(k), float(n), float(z))
    k_arr, n_arr = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k_arr / n_arr
        denom = 1 + z * z / n_arr
        center = (p + z * z / (2 * n_arr)) / denom
        half = z * np.sqrt(p * (1 - p) / n_arr + z * z / (4 * n_arr * n_arr)) / denom
    lo = np.where(n_arr > 0, np.clip(center - half, 0, 1), np.nan)
    hi = np.where(n_arr > 0, np.clip(center + half, 0, 1), np.nan)
    return lo, hi


def _wilson_one(k: float, n: float, z: float) -> tuple[float, float]:
    """`_wilson` of one count, in plain floats (numpy's overhead dwarfs the arithmetic)."""
    if not n > 0:
        return math.nan, math.nan
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return min(max(center - half, 0.0), 1.0), min(max(center + half, 0.0), 1.0)


@functools.lru_cache(maxsize=64)
def _z(level: float) -> np.float64:
    """The two-sided normal quantile of ``level`` (cached: every band of every group asks)."""
    return _dist.norm_ppf(0.5 + level / 2)


def _ranges(idx: Mapping[str, int | None], size: int) -> dict[str, tuple[int, int] | None]:
    """Cell ranges [lo, hi) per band from ordered threshold indices (None: no such band)."""
    out: dict[str, tuple[int, int] | None] = {}
    upper = size
    for band in BANDS:
        i = idx.get(band)
        if i is None:
            out[band] = None
            continue
        i = min(i, size)
        out[band] = (i, max(i, upper))
        upper = min(upper, i)
    out[HUMAN] = (0, upper)
    return out


def _sum(a: NDArray[np.int64], r: tuple[int, int] | None) -> NDArray[np.int64] | int:
    if r is None:
        return np.zeros(a.shape[:-1], dtype=np.int64) if a.ndim > 1 else 0
    return a[..., r[0] : r[1]].sum(axis=-1)


def _offered(t: float | bool | None) -> float | None:
    """A band's threshold, None when the band is not offered (None, or False in a config)."""
    return None if t is None or t is False else float(t)


def _current_thresholds(
    routing: Any,
    current: Mapping[str, float | bool | None] | None,
) -> dict[str, float | None]:
    if current is None:
        return {b: _offered(getattr(routing, b)) for b in BANDS}
    unknown = set(current) - set(BANDS)
    if unknown:
        raise ValueError(f"current has unknown band(s) {sorted(unknown)}; expected {BANDS}")
    return {b: _offered(current.get(b)) for b in BANDS}


def _indices(
    thresholds: Mapping[str, float | None],
    units: int,
    *,
    name: str,
) -> dict[str, int | None]:
    idx = {
        b: None
        if _offered(thresholds.get(b)) is None
        else _grid_index(float(thresholds[b]), units, name=f"{name}[{b!r}]")  # type: ignore[arg-type]
        for b in BANDS
    }
    present = [(b, i) for b, i in idx.items() if i is not None]
    for (hb, hi), (lb, li) in itertools.pairwise(present):
        if li > hi:
            raise ValueError(
                f"{name} must keep the bands ordered (review ≤ confirm ≤ auto), got "
                f"{lb}={thresholds[lb]} above {hb}={thresholds[hb]}"
            )
    return idx


@dataclass(frozen=True)
class BandRecommendation:
    """One routing band of a recommendation.

    Attributes
    ----------
    band : str
        ``auto``, ``confirm``, ``review`` or ``human`` (below every other band).
    threshold : float or None
        The band's lower confidence edge; None when the band is not offered (items fall to the
        next band down). The human band's threshold is 0.
    upper : float or None
        The next band up's threshold (the band is ``[threshold, upper)``); None: up to 1.0.
    target : float or None
        The accuracy target (None for the human band).
    certified : Certified or None
        The Learn-then-Test result behind the threshold (None if the band was not tested).
    reason : str
        Why this threshold, or why none (certification, progression).
    n, correct : int
        Labeled items routed to the band and how many were right.
    accuracy, ci_low, ci_high : float
        Their accuracy with a Wilson interval (NaN when n = 0).
    items : int
        All items (labeled or not) routed to the band; ``share`` is their share of traffic and
        ``items_per_day`` the daily average (None when the number of days is unknown).
    current_threshold, current_items, current_share, current_accuracy
        The same under the current config (NaN when the current threshold is off the grid).
    guarantee : str or None
        The finite-sample statement in words, when the threshold carries one.
    """

    band: str
    threshold: float | None
    upper: float | None
    target: float | None
    certified: Certified | None = field(repr=False)
    reason: str
    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    items: int
    share: float
    items_per_day: float | None
    current_threshold: float | None
    current_items: float
    current_share: float
    current_accuracy: float
    guarantee: str | None

    @property
    def change(self) -> str:
        """The change from the current config, e.g. ``0.95 → 0.96``."""
        old, new = self.current_threshold, self.threshold
        if old is not None and new is not None and abs(old - new) < 0.5 / RESOLUTION:
            return f"unchanged ({_show(new)})"
        return f"{_show(old)} → {_show(new)}"


def _show(t: float | None) -> str:
    if t is None:
        return "none"
    s = f"{t:.6f}".rstrip("0")
    return s + "0" * max(0, 2 - len(s.split(".")[1]))


@dataclass(frozen=True)
class ThresholdRecommendation:
    """Recommended routing thresholds with their evidence, per band.

    Attributes
    ----------
    bands : tuple of BandRecommendation
        auto, confirm, review, human, in that order.
    delta : float
        The overall error budget; each tested band got ``delta / tested``.
    step : float
        The grid's cell width.
    n_labeled, n_total : int
        Labeled items behind the certification; all items (traffic).
    days : int or None
        Days of traffic in the grid (for per-day workloads).
    human_workload_per_day, current_human_workload_per_day : float or None
        Items per day not auto-processed, recommended and current.
    guarantee : str
        The joint statement (all bands' guarantees hold together with probability ≥ 1 - δ).
    group : str or None
        The population, e.g. ``segment = smb`` (None: everything in the grid).
    stage : Stage or None
        The progression stage applied (None: the certified thresholds, not yet staged).
    notes : tuple of str
        Progression notes and why nothing was certified, in order.
    population : str
        How the guarantee names the data.
    confidence_level : float
        Level of the Wilson intervals.
    min_labels : int
        Labeled items needed before any band is certified.
    cells : pandas.DataFrame
        The collapsed grid (``lo, n, correct, total``) the numbers come from (built on first
        access: per-customer recommendations hold thousands of them).
    """

    bands: tuple[BandRecommendation, ...]
    delta: float
    step: float
    n_labeled: int
    n_total: int
    days: int | None
    human_workload_per_day: float | None
    current_human_workload_per_day: float | None
    guarantee: str
    group: str | None
    stage: Stage | None
    notes: tuple[str, ...]
    population: str
    confidence_level: float
    min_labels: int
    _cells: _Cells = field(repr=False, compare=False)

    @functools.cached_property
    def cells(self) -> pd.DataFrame:
        return self._cells.frame()

    def band(self, name: str) -> BandRecommendation:
        """The recommendation for one band (``auto``, ``confirm``, ``review``, ``human``)."""
        for b in self.bands:
            if b.band == name:
                return b
        raise KeyError(f"no band {name!r}; expected one of {ALL_BANDS}")

    @property
    def thresholds(self) -> dict[str, float | None]:
        """Band → recommended threshold (None: band not offered)."""
        return {b.band: b.threshold for b in self.bands if b.band != HUMAN}

    def to_frame(self) -> pd.DataFrame:
        """One row per band: threshold, target, traffic, accuracy with CI, change, reasons."""
        rows = []
        for b in self.bands:
            rows.append(
                {
                    "group": self.group,
                    "band": b.band,
                    "threshold": b.threshold,
                    "upper": b.upper,
                    "target": b.target,
                    "n": b.n,
                    "correct": b.correct,
                    "accuracy": b.accuracy,
                    "ci_low": b.ci_low,
                    "ci_high": b.ci_high,
                    "items": b.items,
                    "share": b.share,
                    "items_per_day": b.items_per_day,
                    "current_threshold": b.current_threshold,
                    "current_share": b.current_share,
                    "current_accuracy": b.current_accuracy,
                    "change": b.change,
                    "reason": b.reason,
                    "guarantee": b.guarantee,
                }
            )
        return pd.DataFrame(rows)


def _population(grid: pd.DataFrame, population: str | None) -> str:
    if population is not None:
        return population
    if "model_version" in grid.columns:
        versions = grid.loc[grid[N] > 0, "model_version"].dropna().unique()
        if len(versions) == 1:
            return f"labeled items of model {versions[0]}"
    return "labeled items"


def _days(grid: pd.DataFrame, days: int | None) -> int | None:
    if days is not None:
        if not isinstance(days, int | np.integer) or days < 1:
            raise ValueError(f"days must be a positive integer, got {days!r}")
        return int(days)
    if DAY in grid.columns:
        return int(grid[DAY].nunique()) or None
    return None


@dataclass(frozen=True)
class _Plan:
    """Thresholds chosen per band before the numbers are assembled."""

    thresholds: dict[str, float | None]
    certs: dict[str, Certified | None]
    reasons: dict[str, str]
    targets: dict[str, float | None]
    notes: tuple[str, ...] = ()


def _plan(
    cells: _Cells,
    targets: Mapping[str, float | None],
    delta: float,
    *,
    min_labels: int,
    closed: Mapping[str, str] | None = None,
    floors: Mapping[str, float | None] | None = None,
    floor_why: str = "",
    reuse: Mapping[str, Certified | None] | None = None,
) -> _Plan:
    """Certify the bands top-down, each below the threshold chosen for the band above.

    ``closed`` bands (band → reason) are not offered and not tested; δ is split over the
    tested ones. A ``floors`` entry raises a certified threshold to at least the floor (the
    band above's threshold at most: a higher floor empties the band and is noted). A
    ``reuse`` entry (band → a certification of the same ``cells``) stands in for the walk when
    it ran with the same target, δ and upper edge: the walk would give the same result.
    """
    units, size = cells.units, cells.n.size
    fmt = f".{_decimals(units)}f"
    closed, floors = closed or {}, floors or {}
    targets = {b: targets.get(b) for b in BANDS}
    thresholds: dict[str, float | None] = dict.fromkeys(BANDS)
    certs: dict[str, Certified | None] = dict.fromkeys(BANDS)
    reasons = {b: closed.get(b, "no target configured for this band") for b in BANDS}
    n_labeled = int(cells.n.sum())
    if n_labeled < min_labels:
        why = f"needs ≥ {min_labels:,} labeled items; has {n_labeled:,}"
        return _Plan(thresholds, certs, dict.fromkeys(BANDS, why), targets, (why,))
    tested = [b for b in BANDS if targets[b] is not None and b not in closed]
    notes: list[str] = []
    upper = size
    for band in tested:
        target, sub_delta = float(targets[band]), delta / len(tested)
        cert = (reuse or {}).get(band)
        if cert is None or (cert.target, cert.delta, cert._walk.upper) != (
            target,
            sub_delta,
            upper,
        ):
            cert = _certify_cells(cells, target=target, delta=sub_delta, upper=upper)
        certs[band], reasons[band] = cert, cert.reason
        t, floor = cert.threshold, floors.get(band)
        if t is not None and floor is not None and t < floor - 0.5 / RESOLUTION:
            i_floor = _grid_index(float(floor), units, name=f"floors[{band!r}]")
            t = _edge(min(i_floor, upper), units)
            note = (
                f"{band}: {floor_why}raised from the certified {cert.threshold:{fmt}} to {t:{fmt}}"
            )
            if i_floor > upper:
                note += f" (the floor {floor:{fmt}} is above the band above: the band is empty)"
            elif not cert.holds_at(t):
                note += f" ({t:{fmt}} lies above the tested range: not certified there)"
            reasons[band] = note
            notes.append(note)
        narrow = _too_narrow(band, t, upper, cells)
        if narrow:
            if reasons[band] in notes:
                notes.remove(reasons[band])
                narrow = f"{reasons[band]}; {narrow.removeprefix(f'{band}: ')}"
            reasons[band] = narrow
            notes.append(narrow)
            t = None  # not offered: its items go to the band below, which walks below `upper`
        thresholds[band] = t
        if t is not None:
            upper = _grid_index(t, units, name=band)
    return _Plan(thresholds, certs, reasons, targets, tuple(notes))


def _too_narrow(band: str, t: float | None, upper: int, cells: _Cells) -> str:
    """Why a band below another one is too narrow to offer ('' when it is not).

    A band under another band narrower than `MIN_BAND_WIDTH` (e.g. review [0.83, 0.84), one
    grid step) is certified but useless: a shift of the model's confidences by a hundredth
    moves it whole, and it routes a sliver of traffic. It is not offered, so its items go to
    the band below (certified below the same upper edge) and the summary, shares and config
    patch all show it closed. The top band (reaching 1.0) is never too narrow.
    """
    units, size = cells.units, cells.n.size
    if t is None or upper >= size:
        return ""
    i_t = _grid_index(t, units, name=band)
    min_cells = max(1, math.ceil(MIN_BAND_WIDTH * RESOLUTION / units - 1e-9))
    if upper - i_t >= min_cells:
        return ""
    fmt = f".{_decimals(units)}f"
    hi = _edge(upper, units)
    width = "empty" if upper <= i_t else f"{hi - t:.{_decimals(units)}f} wide"
    items = int(cells.between("total", (i_t, max(i_t, upper))))
    return (
        f"{band}: [{t:{fmt}}, {hi:{fmt}}) is {width}, narrower than {MIN_BAND_WIDTH:g}: not "
        f"offered ({items:,} items go to the band below)"
    )


def _assemble(
    cells: _Cells,
    plan: _Plan,
    *,
    delta: float,
    current: Mapping[str, float | None],
    days: int | None,
    level: float,
    population: str,
    group: str | None,
    stage: Stage | None,
    min_labels: int,
) -> ThresholdRecommendation:
    units, size = cells.units, cells.n.size
    idx = _indices(plan.thresholds, units, name="thresholds")
    rng = _ranges(idx, size)
    try:
        cur_rng: dict[str, tuple[int, int] | None] | None = _ranges(
            _indices(current, units, name="current"), size
        )
    except ValueError:
        cur_rng = None  # a current threshold off the grid: its numbers are unknown
    n_labeled, n_total = int(cells.n.sum()), int(cells.total.sum())
    tested = [b for b in BANDS if plan.certs.get(b) is not None]
    confidence = _pct(1 - delta)
    bands = []
    for band in ALL_BANDS:
        r = rng[band]
        n, k, items = (cells.between(c, r) for c in ("n", "correct", "total"))
        lo, hi = _wilson(k, n, level)
        cert = plan.certs.get(band)
        t = 0.0 if band == HUMAN else plan.thresholds[band]
        upper = None
        if r is not None and r[1] < size:
            upper = _edge(r[1], units)
        guarantee = None
        target = plan.targets.get(band)
        if (
            t is not None
            and cert is not None
            and target is not None
            and cert.holds_at(t)
            and cert.upper == upper
        ):
            fmt = f".{_decimals(units)}f"
            where = f"at or above {t:{fmt}}" if upper is None else f"in [{t:{fmt}}, {upper:{fmt}})"
            clustered = ""
            if cert._walk.clustered is not None:
                deff = cert._walk.clustered[2][_grid_index(t, units, name=band)]
                clustered = f"; customers as clusters, design effect {deff:.2f}"
            guarantee = (
                f"With probability at least {confidence}, items {where} are at least "
                f"{_pct(target)} accurate (Learn-then-Test, fixed sequence with fallback; "
                f"n = {n:,} of the {n_labeled:,} {population} fall in the band{clustered})"
            )
        if cur_rng is None:
            cur_items, cur_share, cur_acc = math.nan, math.nan, math.nan
        else:
            cr = cur_rng[band]
            cur_items = float(cells.between("total", cr))
            cn, ck = cells.between("n", cr), cells.between("correct", cr)
            cur_share = cur_items / n_total if n_total else math.nan
            cur_acc = ck / cn if cn else math.nan
        bands.append(
            BandRecommendation(
                band=band,
                threshold=t,
                upper=upper,
                target=target,
                certified=cert,
                reason=plan.reasons.get(band, "below every other band"),
                n=n,
                correct=k,
                accuracy=k / n if n else math.nan,
                ci_low=float(lo),
                ci_high=float(hi),
                items=items,
                share=items / n_total if n_total else math.nan,
                items_per_day=items / days if days else None,
                current_threshold=0.0 if band == HUMAN else current.get(band),
                current_items=cur_items,
                current_share=cur_share,
                current_accuracy=cur_acc,
                guarantee=guarantee,
            )
        )
    auto, cur_auto = bands[0], bands[0].current_items
    workload = (n_total - auto.items) / days if days else None
    cur_workload = (n_total - cur_auto) / days if days and not math.isnan(cur_auto) else None
    held = [b.band for b in bands if b.guarantee]
    if held:
        joint = (
            f"With probability at least {confidence}, all of these hold together "
            f"({', '.join(held)}; δ = {delta:g} split Bonferroni across {len(tested)} tested "
            f"band{'s' if len(tested) != 1 else ''})"
        )
    else:
        joint = "No band carries a certified threshold; everything goes to human review."
    return ThresholdRecommendation(
        bands=tuple(bands),
        delta=delta,
        step=units / RESOLUTION,
        n_labeled=n_labeled,
        n_total=n_total,
        days=days,
        human_workload_per_day=workload,
        current_human_workload_per_day=cur_workload,
        guarantee=joint,
        group=group,
        stage=stage,
        notes=plan.notes,
        population=population,
        confidence_level=level,
        min_labels=int(min_labels),
        _cells=cells,
    )


def _check_routing(routing: Any) -> None:
    for attr in ("auto", "confirm", "review", "targets", "delta", "grid_step"):
        if not hasattr(routing, attr):
            raise TypeError(
                f"routing must be a trustramp.config.Routing (config.routing), "
                f"got {type(routing).__name__} without {attr!r}"
            )


def _check_min_labels(min_labels: int) -> None:
    if not isinstance(min_labels, int | np.integer) or min_labels < 0:
        raise ValueError(f"min_labels must be a non-negative integer, got {min_labels!r}")


def recommend_thresholds(
    grid: pd.DataFrame,
    routing: Any,
    *,
    min_labels: int = 200,
    current: Mapping[str, float | None] | None = None,
    days: int | None = None,
    confidence_level: float = 0.95,
    population: str | None = None,
    group: str | None = None,
    clusters: pd.DataFrame | None = None,
) -> ThresholdRecommendation:
    """Recommend the auto, confirm and review thresholds, each certified for its target.

    The target is met by the items each band would route (SPEC 3.4), so the bands are
    certified top-down: auto on the items at or above ``t``; confirm on the items in
    ``[t, t_auto)``; review on ``[t, t_confirm)`` (a band that is not offered passes its upper
    edge on to the band below). Each walk runs below the band above, so the bands stay ordered
    (review ≤ confirm ≤ auto) by construction; a floor that would lift a band above the one
    above (`apply_progression`) empties it instead and says so. δ is split Bonferroni over the
    bands tested, so all statements hold together with probability at least
    ``1 - routing.delta``. Traffic shares come from ``total`` (all items) when the grid has it.

    Parameters
    ----------
    grid : pandas.DataFrame
        The grid frame of one model version's clean (unshown) labeled items; other columns are
        summed over. A ``day`` column gives the number of days for per-day workloads.
    routing : trustramp.config.Routing
        Targets, δ, grid step and the current thresholds.
    min_labels : int, default 200
        Below this many labeled items no band is certified (pass
        ``config.statistics.min_samples``).
    current : mapping of band to threshold, optional
        The thresholds in force, for the old → new comparison; defaults to ``routing``'s.
    days : int, optional
        Days of traffic in the grid; defaults to the number of distinct ``day`` values.
    confidence_level : float, default 0.95
        Level of the Wilson intervals shown per band.
    population : str, optional
        How the guarantee names the data, e.g. ``"labeled unshown items of model v2"``; defaults
        to ``labeled items`` (``of model <v>`` when the grid has one model_version).
    group : str, optional
        A label for the population, e.g. ``"segment = smb"``.
    clusters : pandas.DataFrame, optional
        The same labeled items by customer (a grid frame with ``customer_id``): every band is
        certified allowing for customers as clusters (see `certify_threshold`).

    Returns
    -------
    ThresholdRecommendation
    """
    _check_routing(routing)
    _check_min_labels(min_labels)
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level!r}")
    cells = _with_clusters(_collapse(grid, routing.grid_step), clusters, routing.grid_step)
    return _assemble(
        cells,
        _plan(cells, routing.targets, routing.delta, min_labels=min_labels),
        delta=routing.delta,
        current=_current_thresholds(routing, current),
        days=_days(grid, days),
        level=confidence_level,
        population=_population(grid, population),
        group=group,
        stage=None,
        min_labels=min_labels,
    )


@dataclass(frozen=True)
class GroupRecommendation:
    """Threshold recommendations per group (segment or customer).

    Attributes
    ----------
    by : str
        The grouping column.
    by_group : dict of str to ThresholdRecommendation
        The reported groups; a group below ``min_labels`` gets no band at all (it never borrows
        the global thresholds) and says why.
    omitted : int
        Groups below ``min_labels`` that were left out (customers are reported only with enough
        labels; they then follow their segment's routing).
    min_labels : int
        The labeled items a group needs.
    """

    by: str
    by_group: dict[str, ThresholdRecommendation]
    omitted: int
    min_labels: int

    def to_frame(self) -> pd.DataFrame:
        """All groups' band tables stacked, with the group's value in column ``by``."""
        frames = [r.to_frame().assign(**{self.by: g}) for g, r in self.by_group.items()]
        if not frames:
            return pd.DataFrame()
        out = pd.concat(frames, ignore_index=True)
        return out[[self.by, *[c for c in out.columns if c != self.by]]]


def recommend_by_group(
    grid: pd.DataFrame,
    routing: Any,
    *,
    by: str = "segment",
    min_labels: int = 200,
    include_insufficient: bool | None = None,
    confidence_level: float = 0.95,
    population: str | None = None,
    clusters: pd.DataFrame | None = None,
) -> GroupRecommendation:
    """Recommend thresholds separately for each value of ``by`` (segments or customers).

    Each group is certified on its own labels only, at the full ``routing.delta`` (its
    statements hold with probability ≥ 1 - δ per group). A group with fewer than ``min_labels``
    labeled items gets no band ("needs ≥ 770 labeled items; has 120") instead of borrowing the
    global thresholds. The current thresholds of a group are its override in
    ``routing.segment_overrides`` (``customer_overrides`` for ``by="customer_id"``) over the
    global ones.

    Parameters
    ----------
    grid : pandas.DataFrame
        The grid frame with a ``by`` column.
    routing : trustramp.config.Routing
    by : str, default "segment"
    min_labels : int, default 200
        Labeled items a group needs before any band is certified for it.
    include_insufficient : bool, optional
        Report groups below ``min_labels`` (with the reason). Defaults to True, except for
        ``by="customer_id"``, where only customers with enough labels are reported.
    confidence_level : float, default 0.95
        Level of the Wilson intervals.
    population : str, optional
        As in `recommend_thresholds`.
    clusters : pandas.DataFrame, optional
        The same labeled items by customer with a ``by`` column (a grid frame with
        ``customer_id`` and ``by``): each group is certified allowing for its customers as
        clusters. Ignored for ``by="customer_id"`` (one customer is one cluster).

    Returns
    -------
    GroupRecommendation
    """
    _check_routing(routing)
    _check_min_labels(min_labels)
    if include_insufficient is None:
        include_insufficient = by != "customer_id"
    values, cells = _collapse_by(grid, by, routing.grid_step)
    if clusters is not None and by != CUSTOMER and by not in clusters.columns:
        raise ValueError(
            f"clusters needs a {by!r} column to group by, got {list(clusters.columns)}"
        )
    overrides = routing.customer_overrides if by == "customer_id" else routing.segment_overrides
    days, pop = _days(grid, None), _population(grid, population)
    out: dict[str, ThresholdRecommendation] = {}
    omitted = 0
    for g, value in enumerate(values):
        one = _Cells(cells.n[g], cells.correct[g], cells.total[g], cells.units)
        if clusters is not None and by != CUSTOMER:
            one = _with_clusters(one, clusters[clusters[by] == value], routing.grid_step)
        if int(one.n.sum()) < min_labels and not include_insufficient:
            omitted += 1
            continue
        override = overrides.get(str(value)) if by in ("segment", "customer_id") else None
        current = {  # the override's band over the global one; False: closed
            b: _offered(
                getattr(override, b)
                if override is not None and getattr(override, b) is not None
                else getattr(routing, b)
            )
            for b in BANDS
        }
        out[str(value)] = _assemble(
            one,
            _plan(one, routing.targets, routing.delta, min_labels=min_labels),
            delta=routing.delta,
            current=current,
            days=days,
            level=confidence_level,
            population=pop,
            group=f"{by} = {value}",
            stage=None,
            min_labels=min_labels,
        )
    return GroupRecommendation(by=by, by_group=out, omitted=omitted, min_labels=int(min_labels))


# --------------------------------------------------------------------------------------------
# Progression
# --------------------------------------------------------------------------------------------


def _as_date(d: dt.date | dt.datetime | str, name: str) -> dt.date:
    if isinstance(d, str):
        try:
            return dt.date.fromisoformat(d[:10])
        except ValueError:
            raise ValueError(f"{name} must be a date, got {d!r}") from None
    if isinstance(d, dt.datetime):
        return d.date()
    if isinstance(d, dt.date):
        return d
    raise ValueError(f"{name} must be a date, got {d!r}")


def progression_stage(
    phase_started: dt.date | dt.datetime | str | None, as_of: dt.date | dt.datetime | str
) -> Stage:
    """The playbook's threshold stage on ``as_of`` for a phase that started on ``phase_started``.

    Days 0-13 of the phase (weeks 1-2) are conservative, days 14-27 (weeks 3-4) moderate, from
    day 28 (week 5) on optimized.

    Examples
    --------
    >>> import datetime as dt
    >>> progression_stage(dt.date(2026, 3, 2), dt.date(2026, 3, 16))
    <Stage.MODERATE: 'moderate'>
    """
    if phase_started is None:
        raise ValueError("phase_started is None; set phase_started in the rollout config")
    start, day = _as_date(phase_started, "phase_started"), _as_date(as_of, "as_of")
    elapsed = (day - start).days
    if elapsed < 0:
        raise ValueError(f"as_of ({day}) is before phase_started ({start})")
    if elapsed < 14:
        return Stage.CONSERVATIVE
    if elapsed < 28:
        return Stage.MODERATE
    return Stage.OPTIMIZED


def apply_progression(
    rec: ThresholdRecommendation,
    stage: Stage | str,
    *,
    floors: Mapping[str, float | None] | None = None,
) -> ThresholdRecommendation:
    """Re-plan a recommendation for a progression stage (playbook section 5).

    - ``conservative`` (weeks 1-2): no auto and no confirm band; everything goes to human
      review. Only the review band is certified, with the whole δ.
    - ``moderate`` (weeks 3-4): auto-process only at high confidence: auto = max(certified,
      floor) and confirm = max(certified, floor), the floors being the current config's
      thresholds (0.95 and 0.80 by default). A band without a certified threshold stays closed;
      a raised threshold keeps its guarantee when it lies in the certified range.
    - ``optimized`` (week 5 on): the certified thresholds, as `recommend_thresholds` gave them.

    The bands are certified again top-down from ``rec.cells`` (each band below the one above,
    δ split over the tested bands), so every guarantee refers to the band as staged. The stage
    comes from the calendar (`progression_stage`), never from the data, so each stage's
    procedure holds its guarantee on its own.

    Parameters
    ----------
    rec : ThresholdRecommendation
        From `recommend_thresholds` or `recommend_by_group` (not already staged).
    stage : Stage or str
    floors : mapping of band to threshold, optional
        The moderate stage's floors for ``auto`` and ``confirm``; default: the current ones.

    Returns
    -------
    ThresholdRecommendation
    """
    stage = Stage(stage)
    if rec.stage is not None:
        raise ValueError(f"rec already has stage {rec.stage.value!r}; pass an unstaged one")
    current = {b: rec.band(b).current_threshold for b in BANDS}
    closed: dict[str, str] = {}
    use_floors: dict[str, float | None] = {}
    why = ""
    if stage is Stage.CONSERVATIVE:
        closed = dict.fromkeys(
            ("auto", "confirm"), "weeks 1–2 of the phase: conservative, everything to human review"
        )
    elif stage is Stage.MODERATE:
        use_floors = {b: current[b] for b in ("auto", "confirm")}
        if floors is not None:
            unknown = set(floors) - {"auto", "confirm"}
            if unknown:
                raise ValueError(
                    f"floors has unknown band(s) {sorted(unknown)}; expected auto, confirm"
                )
            use_floors.update(floors)
        why = "weeks 3–4 of the phase: moderate, "
    # rec's own cells: a band walked with the same target, δ and upper edge as in rec is not
    # walked again.
    cells = rec._cells
    plan = _plan(
        cells,
        {b: rec.band(b).target for b in BANDS},
        rec.delta,
        min_labels=rec.min_labels,
        closed=closed,
        floors=use_floors,
        floor_why=why,
        reuse={b: rec.band(b).certified for b in BANDS},
    )
    if closed and int(cells.n.sum()) >= rec.min_labels:
        plan = dataclasses.replace(plan, notes=(*plan.notes, closed["auto"]))
    return _assemble(
        cells,
        plan,
        delta=rec.delta,
        current=current,
        days=rec.days,
        level=rec.confidence_level,
        population=rec.population,
        group=rec.group,
        stage=stage,
        min_labels=rec.min_labels,
    )


# --------------------------------------------------------------------------------------------
# What-if replay
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replay:
    """A what-if replay of routing policies on logged traffic.

    Attributes
    ----------
    by_day : pandas.DataFrame
        Tidy: ``policy, day, band, threshold, items, n, correct, accuracy, ci_low, ci_high``;
        ``items`` counts all traffic, ``n``/``correct`` the labeled items.
    summary : pandas.DataFrame
        The same over all days, with ``share`` and ``items_per_day``.
    workload : pandas.DataFrame
        ``policy, day, human_workload``: items not auto-processed.
    difference : pandas.DataFrame or None
        ``day, band, proposed, current, difference`` in items (None without a current policy);
        the rows with band ``human_workload`` compare the workloads.
    """

    by_day: pd.DataFrame
    summary: pd.DataFrame
    workload: pd.DataFrame
    difference: pd.DataFrame | None


def _replay_one(
    name: str, policy: Mapping[str, float | None], days: list[Any], cells: _Cells, level: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    idx = _indices(policy, cells.units, name=f"{name} policy")
    rng = _ranges(idx, cells.n.shape[-1])
    rows, summary = [], []
    grand_total = int(cells.total.sum())
    for band in ALL_BANDS:
        r = rng[band]
        items, n, k = (np.asarray(_sum(a, r)) for a in (cells.total, cells.n, cells.correct))
        lo, hi = _wilson(k, n, level)
        t = 0.0 if band == HUMAN else policy.get(band)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.where(n > 0, k / np.maximum(n, 1), np.nan)
        rows.append(
            pd.DataFrame(
                {
                    "policy": name,
                    "day": days,
                    "band": band,
                    "threshold": t,
                    "items": items,
                    N: n,
                    CORRECT: k,
                    "accuracy": acc,
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )
        )
        ti, tn, tk = int(items.sum()), int(n.sum()), int(k.sum())
        slo, shi = _wilson(tk, tn, level)
        summary.append(
            {
                "policy": name,
                "band": band,
                "threshold": t,
                "items": ti,
                "share": ti / grand_total if grand_total else math.nan,
                "items_per_day": ti / len(days) if days else math.nan,
                N: tn,
                CORRECT: tk,
                "accuracy": tk / tn if tn else math.nan,
                "ci_low": float(slo),
                "ci_high": float(shi),
            }
        )
    return pd.concat(rows, ignore_index=True), pd.DataFrame(summary)


_DIFFERENCE_COLUMNS = {
    "day": "object",
    "band": "object",
    "proposed": "int64",
    "current": "int64",
    "difference": "int64",
}


def replay_policy(
    grid_by_day: pd.DataFrame,
    policy: Mapping[str, float | None],
    *,
    current: Mapping[str, float | None] | None = None,
    step: float = 0.01,
    confidence_level: float = 0.95,
) -> Replay:
    """Replay routing thresholds on logged traffic: items, accuracy and workload per day.

    Parameters
    ----------
    grid_by_day : pandas.DataFrame
        The grid frame with a ``day`` column (other columns are summed over).
    policy : mapping of band to threshold
        The proposed thresholds, e.g. ``{"auto": 0.92, "confirm": 0.8, "review": 0.6}``; a band
        that is missing, None or False (a config's closed band) is not offered. Thresholds must lie on the grid and be ordered.
    current : mapping of band to threshold, optional
        The policy to compare with (e.g. the config's thresholds).
    step : float, default 0.01
        The grid's cell width.
    confidence_level : float, default 0.95
        Level of the Wilson intervals.

    Returns
    -------
    Replay
    """
    if DAY not in grid_by_day.columns:
        raise ValueError(f"grid_by_day needs a 'day' column, got {list(grid_by_day.columns)}")
    policies = {"proposed": policy} if current is None else {"proposed": policy, "current": current}
    for name, p in policies.items():
        unknown = set(p) - set(BANDS)
        if unknown:
            raise ValueError(
                f"{name} policy has unknown band(s) {sorted(unknown)}; expected {list(BANDS)}"
            )
    policies = {name: {b: _offered(t) for b, t in p.items()} for name, p in policies.items()}
    days, cells = _collapse_by(grid_by_day, DAY, step)
    parts = [_replay_one(name, p, days, cells, confidence_level) for name, p in policies.items()]
    by_day = pd.concat([p[0] for p in parts], ignore_index=True)
    summary = pd.concat([p[1] for p in parts], ignore_index=True)
    per_day = cells.total.sum(axis=-1)
    auto = by_day[by_day["band"] == "auto"]
    workload = pd.DataFrame(
        {
            "policy": auto["policy"].to_numpy(),
            "day": auto["day"].to_numpy(),
            "human_workload": np.tile(per_day, len(policies)) - auto["items"].to_numpy(),
        }
    )
    difference = None
    if current is not None and not days:  # no traffic: nothing to compare, no pivot to take
        difference = pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DIFFERENCE_COLUMNS.items()})
    elif current is not None:
        wide = by_day.pivot_table(
            index=["day", "band"], columns="policy", values="items", sort=False
        ).reset_index()
        load = (
            workload.pivot_table(index="day", columns="policy", values="human_workload", sort=False)
            .reset_index()
            .assign(band="human_workload")
        )
        difference = pd.concat([wide, load], ignore_index=True)[
            ["day", "band", "proposed", "current"]
        ]
        difference[["proposed", "current"]] = difference[["proposed", "current"]].astype("int64")
        difference["difference"] = difference["proposed"] - difference["current"]
        difference.columns.name = None
    return Replay(by_day=by_day, summary=summary, workload=workload, difference=difference)


# --------------------------------------------------------------------------------------------
# Config patch
# --------------------------------------------------------------------------------------------


def _routing_values(rec: ThresholdRecommendation) -> dict[str, float | bool]:
    """Band thresholds for the config: False for a band that is not offered."""
    digits = _decimals(_step_units(rec.step))
    out: dict[str, float | bool] = {}
    for band in BANDS:
        t = rec.band(band).threshold
        out[band] = False if t is None else round(t, digits)
    return out


def to_config_patch(
    rec: ThresholdRecommendation,
    *,
    groups: GroupRecommendation | Sequence[GroupRecommendation] = (),
) -> dict[str, Any]:
    """The recommendation as a ``routing:`` mapping to merge into the rollout config.

    A band that is not offered is written as ``false`` (the config's closed band: its items go
    to the next offered band down), also in the overrides, where ``null`` would mean "inherit
    the global value".

    Parameters
    ----------
    rec : ThresholdRecommendation
        The global recommendation.
    groups : GroupRecommendation or sequence of them
        Per-segment (``by="segment"``) and per-customer (``by="customer_id"``) recommendations,
        written as ``segment_overrides`` and ``customer_overrides``.

    Returns
    -------
    dict
        ``{"routing": {"auto": ..., "confirm": ..., "review": ..., "segment_overrides": {...},
        "customer_overrides": {...}}}`` (override keys only when given).
    """
    routing: dict[str, Any] = dict(_routing_values(rec))
    if isinstance(groups, GroupRecommendation):
        groups = [groups]
    for g in groups:
        key = {"segment": "segment_overrides", "customer_id": "customer_overrides"}.get(g.by)
        if key is None:
            raise ValueError(
                f"groups by {g.by!r} cannot go into the config; use by='segment' or 'customer_id'"
            )
        routing.setdefault(key, {}).update(
            {name: _routing_values(r) for name, r in g.by_group.items()}
        )
    return {"routing": routing}
