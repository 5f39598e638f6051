"""The grid every threshold function works on: bands, integer cells and their counts.

The shared vocabulary (`BANDS`, `HUMAN`, `Stage`, the grid frame's column names), the integer
cells at 1e-6 resolution (`grid_counts`, `_step_units`, `_cells_of`, `_grid_index`), a grid
frame validated and collapsed to per-cell counts (`_Cells`, `_collapse`, `_collapse_by`), the
same per customer for clustering (`_Clusters`, `_collapse_clusters`), and the cell ranges of
the bands under given thresholds with Wilson intervals on their counts (`_indices`,
`_ranges`, `_wilson`). The bottom of the package: it imports no other module of it.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
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
# Bands on the grid: cell ranges and Wilson intervals
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
