"""The bands certified top-down and assembled into one recommendation.

`_plan` certifies auto, confirm and review in turn, each below the band above (with floors,
closed bands and too-narrow bands), and `_assemble` turns the plan into per-band numbers
(traffic, accuracy with a Wilson interval, the current config's numbers, the guarantee in
words): `BandRecommendation`, `ThresholdRecommendation`; `recommend_thresholds` is the entry
point. Imports `grid` and `certify` (of this package).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from trustramp.decide.thresholds.certify import Certified, _certify_cells, _pct
from trustramp.decide.thresholds.grid import (
    ALL_BANDS,
    BANDS,
    DAY,
    HUMAN,
    RESOLUTION,
    N,
    Stage,
    _Cells,
    _collapse,
    _decimals,
    _edge,
    _grid_index,
    _indices,
    _offered,
    _ranges,
    _wilson,
    _with_clusters,
)

# --------------------------------------------------------------------------------------------
# Bands
# --------------------------------------------------------------------------------------------


MIN_BAND_WIDTH = 0.05
"""A band below another one must span at least this much confidence to be offered."""


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
