"""Learn-then-Test: certify one band's threshold on the grid (fixed sequence with fallback).

The exact binomial p-values, the labeled items a test needs (`min_labels_to_certify`,
`min_labels_to_start`), the checkpoints that spread δ over the grid, the walk down the grid
and why it stopped where it did, and its result (`Certified`); `certify_threshold` is the
entry point on a grid frame. Imports `grid` only (of this package).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from trustramp import _dist
from trustramp.decide.thresholds.grid import (
    CORRECT,
    RESOLUTION,
    TOTAL,
    N,
    _Cells,
    _collapse,
    _decimals,
    _edge,
    _edges,
    _grid_index,
    _with_clusters,
)

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
    >>> from trustramp.decide.thresholds import grid_counts
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
