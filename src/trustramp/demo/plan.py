"""Validation and planning: the arguments checked, then everything fixed before the first day.

`_make_plan` draws the customers (segments, sizes, live mode), the versions' start days and
confidence, the items per day (fewer at weekends) and the routing bands; `_blocks` yields one
day's items in arrival order (an afternoon peak, UTC), in blocks that bound memory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Sequence

import numpy as np

from trustramp.config import Routing
from trustramp.demo._common import (
    _BLOCK_ITEMS,
    _CLOSED_UNITS,
    _DAY_US,
    DEFAULT_LABELS,
    FORMATS,
    _Plan,
    _rng,
)
from trustramp.demo.effects import _bad_day, _weak_segment

# --- the generative model's numbers (documented in the package docstring) ------------------
_WEEKDAY_WEIGHT = np.array([1.0, 1.0, 1.0, 1.0, 0.95, 0.45, 0.35])  # Monday .. Sunday
_SEGMENT_PROFILE = {  # share of customers, share of traffic
    "internal": (0.01, 0.05),
    "smb": (0.75, 0.40),
    "mid_market": (0.18, 0.35),
    "enterprise": (0.06, 0.20),
}
_CONFIRMATION_CUSTOMERS = 0.2  # customers whose live mode is confirmation rather than suggestion
_HIGH_SHARE = (0.68, 0.72)  # share of confident (>= 0.95) predictions: first and last version


def _validate(
    *,
    n_predictions: int,
    days: int,
    end: dt.date,
    seed: int,
    n_customers: int,
    segments: Sequence[str],
    model_versions: Sequence[str],
    n_classes: int,
    feature: str,
    fmt: str,
    blind_share: float,
    n_feedback: int,
) -> None:
    for name, value, low in (
        ("n_predictions", n_predictions, 1),
        ("days", days, 1),
        ("seed", seed, 0),
        ("n_feedback", n_feedback, 0),
    ):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if n_predictions > 10**10:
        raise ValueError(f"n_predictions must be at most 1e10, got {n_predictions!r}")
    if not isinstance(end, dt.date) or isinstance(end, dt.datetime):
        raise TypeError(f"end must be a datetime.date, got {end!r}")
    for name, names in (("segments", segments), ("model_versions", model_versions)):
        if isinstance(names, str) or not names or len(set(names)) != len(names):
            raise ValueError(
                f"{name} must be a non-empty sequence of distinct names, got {names!r}"
            )
        for value in names:
            _check_name(name, value)
    _check_name("feature", feature)
    if len(feature) > 200:
        raise ValueError(f"feature must be at most 200 characters, got {len(feature)}")
    if not isinstance(n_classes, int | np.integer) or not 2 <= n_classes <= 50:
        raise ValueError(f"n_classes must be an integer in [2, 50], got {n_classes!r}")
    if not isinstance(n_customers, int | np.integer) or n_customers < len(segments):
        raise ValueError(
            f"n_customers must be an integer >= the number of segments "
            f"({len(segments)}), got {n_customers!r}"
        )
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    _check_share("blind_share", blind_share)


def _check_name(name: str, value: object) -> None:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ValueError(f"{name} must hold non-empty printable strings, got {value!r}")


def _check_share(name: str, value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def _labels(n_classes: int) -> tuple[str, ...]:
    return tuple(
        DEFAULT_LABELS[i] if i < len(DEFAULT_LABELS) else f"class_{i}" for i in range(n_classes)
    )


def _make_plan(
    *,
    n_predictions: int,
    days: int,
    end: dt.date,
    seed: int,
    n_customers: int,
    segments: tuple[str, ...],
    versions: tuple[str, ...],
    n_classes: int,
    feature: str,
    class_probabilities: bool,
    blind_share: float,
    effects: bool,
    n_feedback: int,
) -> _Plan:
    rng = _rng(seed, 0)
    start = end - dt.timedelta(days=days - 1)
    prior = 1.0 / np.arange(1, n_classes + 1) ** 0.8
    n_versions = len(versions)
    version_start = tuple(
        0 if v == 0 else min(days - 1, round(v * days / (3 * (n_versions - 1))))
        for v in range(n_versions)
    )
    version_high = tuple(
        _HIGH_SHARE[0] + (_HIGH_SHARE[1] - _HIGH_SHARE[0]) * (v / max(n_versions - 1, 1))
        for v in range(n_versions)
    )
    cust_share, volume = _segment_shares(segments)
    per_segment = _largest_remainder(cust_share * (n_customers - len(segments))) + 1
    cust_segment = np.repeat(np.arange(len(segments), dtype=np.int16), per_segment)
    heterogeneity = rng.lognormal(0.0, 1.0, n_customers)
    weight = np.empty(n_customers)
    for s in range(len(segments)):
        mask = cust_segment == s
        weight[mask] = volume[s] * heterogeneity[mask] / heterogeneity[mask].sum()
    cust_confirm = rng.random(n_customers) < _CONFIRMATION_CUSTOMERS
    weekday = np.array([(start + dt.timedelta(days=d)).weekday() for d in range(days)])
    day_weight = _WEEKDAY_WEIGHT[weekday] * np.clip(1 + 0.05 * rng.standard_normal(days), 0.8, 1.2)
    active = np.array([sum(s <= d for s in version_start) for d in range(days)])
    items = _largest_remainder(n_predictions * day_weight / (day_weight * active).sum())
    if items.sum() == 0:  # fewer predictions asked for than versions: still one item
        items[-1] = 1
    n_items = int(items.sum())
    weak = _weak_segment(segments)
    feedback_segment = segments.index("internal") if "internal" in segments else 0
    expected_feedback_items = n_items * volume[feedback_segment]
    routing = Routing()
    return _Plan(
        feature=feature,
        seed=seed,
        tag=hashlib.sha256(f"{feature}\x00{seed}".encode()).hexdigest()[:6],
        start=start,
        days=days,
        labels=_labels(n_classes),
        prior_cdf=np.cumsum(prior / prior.sum()),
        conf_min=int(np.ceil((1 / n_classes + 0.01) * 10_000)),
        segments=segments,
        weak=weak,
        feedback_segment=feedback_segment,
        cust_segment=cust_segment,
        cust_cdf=np.cumsum(weight) / weight.sum(),
        cust_confirm=cust_confirm,
        versions=versions,
        version_start=version_start,
        version_high=version_high,
        items_per_day=items,
        item_offset=np.concatenate([[0], np.cumsum(items)]),
        live_from=days // 2,
        bad_day=_bad_day(days),
        effects=effects,
        holdout_units=round(blind_share * 10_000),
        class_probabilities=class_probabilities,
        feedback_rate=min(1.0, n_feedback / max(expected_feedback_items, 1.0)),
        width=max(9, len(str(max(n_items, 1) * n_versions * 2))),
        cust_width=max(5, len(str(n_customers))),
        band_units=tuple(  # type: ignore[arg-type]
            _CLOSED_UNITS if t is None else round(t * 10_000)
            for t in reversed(routing.thresholds().values())
        ),
    )


def _segment_shares(segments: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Customer and traffic shares per segment: known names from the profile, others equal."""
    default = (1.0 / len(segments), 1.0 / len(segments))
    shares = np.array([_SEGMENT_PROFILE.get(s, default) for s in segments])
    return shares[:, 0] / shares[:, 0].sum(), shares[:, 1] / shares[:, 1].sum()


def _largest_remainder(x: np.ndarray) -> np.ndarray:
    """Round non-negative reals to integers with the same (rounded) total."""
    floor = np.floor(x).astype(np.int64)
    short = round(float(x.sum())) - int(floor.sum())
    order = np.argsort(-(x - floor), kind="stable")
    floor[order[:short]] += 1
    return floor


def _blocks(plan: _Plan, day: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """The day's items in blocks, in arrival order: (block index, item numbers, arrival us)."""
    n = int(plan.items_per_day[day])
    rng = _rng(plan.seed, 1, day)
    # Business-hours peak around 14:30 UTC plus a flat background, wrapped around the day; the
    # last two minutes stay free so that every prediction (latency <= 60 s, queue < 2 s) lands
    # on the same UTC day.
    usable_ms = 86_400_000 - 120_000
    peak = rng.normal(14.5 * 3_600_000, 3.5 * 3_600_000, n)
    flat = rng.uniform(0, usable_ms, n)
    ms = np.where(rng.random(n) < 0.75, peak, flat)
    ms = np.sort(np.floor(ms).astype(np.int64) % usable_ms)
    arrival_us = plan.start_us + day * _DAY_US + ms * 1000
    first = int(plan.item_offset[day])
    for block, lo in enumerate(range(0, n, _BLOCK_ITEMS)):
        hi = min(lo + _BLOCK_ITEMS, n)
        yield block, np.arange(first + lo, first + hi, dtype=np.int64), arrival_us[lo:hi]
