"""Seeded demo and benchmark data: input logs with planted effects (SPEC 1.1 and 5).

`generate` writes the four input kinds of the data contract for one AI feature, day by day and
in blocks of items, so memory follows one day's traffic, never the whole set; everything is
vectorized numpy/pyarrow (a background thread writes while the next block is simulated), so
benchmark sizes (10M+ predictions) take seconds to a minute, not hours.

The story the data tells
------------------------
Work items arrive over `days` days (fewer at weekends, peaking in the afternoon, UTC) for
customers in segments (internal: few customers; smb: many small ones; enterprise: few, big ones).
Every item gets one prediction from each active model version: the first version predicts every
day; the last one is a candidate that predicts the same items in shadow from about a third of
the window on (so the two can be compared on the same items); each version is a little better
than the one before. The first half of the window is all shadow; in the second half the first
version's suggestions are shown (mode suggestion, or confirmation for some customers), except a
blind hold-out arm of items, picked by a stable hash of item_id (`is_blind_holdout`), that stays
in shadow. About 93 % of items get a human decision, mostly within two days; humans who see a
wrong suggestion accept it 30 % of the time (automation bias); 3 % of items get a later
correction. Internal users leave feedback; there is one resolved major and one open minor bug.

The model is calibrated (the chance a prediction is right equals its confidence) except where
the planted effects say otherwise (`effects=True`):

1. over-confident band: in the confirm band [0.80, 0.95) the chance is 0.10 below confidence;
2. weak segment: for `enterprise` (else the last segment) it is 0.08 below, at every confidence;
3. bad day: the 5th day before `end` (the first day of a shorter window) has ~10 % errors and
   timeouts and a ~12 s latency p95.

Ground truth is exact where the human did not see a suggestion (shadow and hold-out items):
there `human_label` is the true label. The manifest describes each effect with its numbers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from trustramp.config import Routing
from trustramp.contract import (
    DECISIONS,
    DEFAULT_SEGMENTS,
    FEEDBACK,
    INCIDENTS,
    PREDICTIONS,
    SHOWN_MODES,
    Action,
    Band,
    ColType,
    IncidentKind,
    Kind,
    Mode,
    Rating,
    Schema,
    Severity,
    Status,
)

__all__ = [
    "DEFAULT_LABELS",
    "DemoManifest",
    "demo_config",
    "generate",
    "is_blind_holdout",
]

logger = logging.getLogger(__name__)

Format = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")

DEFAULT_LABELS: tuple[str, ...] = (
    "billing",
    "refund",
    "technical",
    "account",
    "shipping",
    "cancellation",
    "fraud",
    "complaint",
)
"""Label names of the first classes; classes beyond these are called `class_<i>`."""

# --- the generative model's numbers (documented in the module docstring) -------------------
# Items simulated at once: bounds memory, and keeps arrays below malloc's mmap threshold (fresh
# pages are expensive to fault in on small VMs).
_BLOCK_ITEMS = 65_536
_WEEKDAY_WEIGHT = np.array([1.0, 1.0, 1.0, 1.0, 0.95, 0.45, 0.35])  # Monday .. Sunday
_SEGMENT_PROFILE = {  # share of customers, share of traffic
    "internal": (0.01, 0.05),
    "smb": (0.75, 0.40),
    "mid_market": (0.18, 0.35),
    "enterprise": (0.06, 0.20),
}
_CONFIRMATION_CUSTOMERS = 0.2  # customers whose live mode is confirmation rather than suggestion
_HIGH_SHARE = (0.68, 0.72)  # share of confident (>= 0.95) predictions: first and last version
_SPREAD_BETA = (3.5, 1.0)  # the rest: c_min + (0.95 - c_min) * Beta(a, b)
_SHARED_DIFFICULTY = 0.6  # chance that versions share the item's uniform: paired correctness
_BAND_GAP = 0.15
_CLOSED_UNITS = 10_001  # a closed band's threshold (1e-4 units): above every confidence
_SEGMENT_GAP = 0.08
_RATES = {  # status rates on a normal day / the bad day: error, timeout, fallback
    False: (0.003, 0.002, 0.003),
    True: (0.06, 0.04, 0.01),
}
_LATENCY_MEDIAN_MS = 800.0
_LATENCY_SIGMA = 0.45
_SLOW_SHARE, _SLOW_MEDIAN_MS, _SLOW_SIGMA = 0.15, 10_000.0, 0.12  # the bad day's slow requests
_TIMEOUT_MS = 30_000.0
_DECIDED = 0.93
_CORRECTED = 0.03
_ACCEPT_WRONG = 0.30
_EDITED = 0.2  # share of changed suggestions logged as `edited` rather than `overridden`
_N_REVIEWERS = 40
_DAY_US = 86_400_000_000
_EPOCH = dt.date(1970, 1, 1)
# Timestamp suffixes in CSV / JSON Lines: 10 % carry a non-UTC offset, 2 % none (meaning UTC).
_SUFFIXES = ("Z", "+00:00", "+02:00", "-05:00", "+05:30", "+09:00", "-08:00", "")
_SUFFIX_MINUTES = np.array([0, 0, 120, -300, 330, 540, -480, 0], dtype=np.int64)
_SUFFIX_P = np.array([0.85, 0.03, 0.03, 0.025, 0.015, 0.015, 0.015, 0.02])
_COMMENTS = {
    True: (
        "Saved me a lot of time",
        "Spot on, as usual",
        'Picked "refund" before I did, nice',
        "Très utile, merci",
        None,
    ),
    False: (
        "Wrong queue again",
        "Suggested billing, it was clearly a refund",
        'Confidence said 0.9 but the label was wrong, "again"',
        "Too slow today",
        None,
    ),
}

_MODES = tuple(Mode)
_STATUSES = tuple(Status)
_BANDS = tuple(Band)
_ACTIONS = tuple(Action)
_SHOWN = np.array([m in SHOWN_MODES for m in _MODES])
_DECIMALS = (
    np.array([f"{u / 10_000:.4f}".encode() for u in range(10_001)], dtype="S6")
    .view(np.uint8)
    .reshape(-1, 6)
)  # units of 1e-4 as "0.0123" .. "1.0000"
# Parquet columns with few distinct values (enums are added): dictionary-encoded.
_DICTIONARY_COLUMNS = frozenset(
    {
        "feature",
        "model_version",
        "segment",
        "customer_id",
        "predicted_label",
        "human_label",
        "reviewer_id",
    }
)
_ID_COLUMNS = frozenset(
    {"prediction_id", "item_id", "decision_id", "customer_id", "reviewer_id", "user_id"}
)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@dataclass(frozen=True)
class DemoManifest:
    """What `generate` wrote, and what it planted.

    Attributes
    ----------
    out_dir : Path
        The folder holding `predictions/`, `decisions/`, `feedback/` and `incidents/`.
    feature : str
        The AI feature's name in every row.
    start, end : datetime.date
        The first and last day of predictions (UTC, inclusive).
    files : dict of str to list of Path
        Per kind (`predictions`, `decisions`, `feedback`, `incidents`), the files written.
    counts : dict of str to int
        Per kind, the rows written.
    planted : dict of str to str
        Per planted effect (`overconfident_band`, `weak_segment`, `bad_day`), a plain-words
        description with its numbers; empty when generated with `effects=False`.
    seed : int
        The seed everything was drawn from.
    fmt : str
        `csv`, `jsonl` or `parquet`.
    segments, model_versions, labels : tuple of str
        The segments, model versions (the last is the candidate) and labels used.
    stats : dict of str to float
        Realized truths of the generated data (accuracy against the true label by band and
        segment, error rates and latency p95 of the bad day and the others), for checks.
    """

    out_dir: Path
    feature: str
    start: dt.date
    end: dt.date
    files: dict[str, list[Path]]
    counts: dict[str, int]
    planted: dict[str, str]
    seed: int
    fmt: str = "csv"
    segments: tuple[str, ...] = DEFAULT_SEGMENTS
    model_versions: tuple[str, ...] = ("v1", "v2")
    labels: tuple[str, ...] = ()
    stats: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Plan:
    """Everything fixed before the first day is simulated."""

    feature: str
    seed: int
    tag: str
    start: dt.date
    days: int
    labels: tuple[str, ...]
    prior_cdf: np.ndarray
    conf_min: int  # in units of 1e-4
    segments: tuple[str, ...]
    weak: int  # index of the segment made weak (when `effects`)
    feedback_segment: int
    cust_segment: np.ndarray
    cust_cdf: np.ndarray
    cust_confirm: np.ndarray
    versions: tuple[str, ...]
    version_start: tuple[int, ...]
    version_high: tuple[float, ...]
    items_per_day: np.ndarray
    item_offset: np.ndarray
    live_from: int
    bad_day: int  # index of the day made bad (when `effects`)
    effects: bool
    holdout_units: int  # blind share in units of 1e-4
    class_probabilities: bool
    feedback_rate: float
    width: int
    cust_width: int
    band_units: tuple[int, int, int]
    """Review, confirm, auto thresholds in units of 1e-4; `_CLOSED_UNITS` for a band not offered
    (above every confidence: its items fall to the next band down)."""

    @property
    def start_us(self) -> int:
        return (self.start - _EPOCH).days * _DAY_US

    @property
    def end_us(self) -> int:
        """The first microsecond after the window."""
        return self.start_us + self.days * _DAY_US


# --- public API ------------------------------------------------------------------------------


def generate(
    out_dir: str | Path,
    *,
    n_predictions: int = 200_000,
    days: int = 30,
    end: dt.date = dt.date(2026, 11, 20),
    seed: int = 7,
    n_customers: int = 1000,
    segments: Sequence[str] = DEFAULT_SEGMENTS,
    model_versions: Sequence[str] = ("v1", "v2"),
    n_classes: int = 5,
    feature: str = "demo-triage",
    fmt: Format = "csv",
    class_probabilities: bool = True,
    blind_share: float = 0.05,
    effects: bool = True,
    n_feedback: int = 300,
    open_critical: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> DemoManifest:
    """Write a seeded, realistic set of input logs with planted effects.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into (created); files go to `predictions/predictions-YYYY-MM-DD.<ext>`,
        `decisions/decisions-YYYY-MM-DD.<ext>` (by the UTC day of the decision),
        `feedback/feedback.<ext>` and `incidents/incidents.<ext>`.
    n_predictions : int, default=200_000
        About how many prediction rows to write (all versions together).
    days : int, default=30
        Days of traffic, ending with `end` (inclusive).
    end : datetime.date, default=2026-11-20
        The last day of predictions; decisions made after it are not written (unlabeled).
    seed : int, default=7
        Everything is drawn from it: the same arguments give the same bytes.
    n_customers : int, default=1000
        Customers, spread over the segments (at least one each).
    segments : sequence of str, default=DEFAULT_SEGMENTS
        Customer segments; `internal`, `smb`, `mid_market` and `enterprise` have realistic
        sizes, other names share equally.
    model_versions : sequence of str, default=("v1", "v2")
        The first is live; the last is the candidate predicting in shadow from day ~days/3.
    n_classes : int, default=5
        Number of labels (2 to 50), named from `DEFAULT_LABELS`, then `class_<i>`.
    feature : str, default="demo-triage"
        The AI feature's name.
    fmt : {"csv", "jsonl", "parquet"}, default="csv"
        File format. CSV and JSON Lines write ISO 8601 timestamps, 10 % with a non-UTC offset
        and 2 % without one; Parquet writes typed columns (timestamps in UTC).
    class_probabilities : bool, default=True
        Whether to write the `class_probabilities` JSON (otherwise the column is empty).
    blind_share : float, default=0.05
        Share of items in the blind hold-out arm (kept in shadow while others are shown).
    effects : bool, default=True
        Plant the over-confident band, the weak segment and the bad day.
    n_feedback : int, default=300
        About how many feedback rows internal users leave.
    open_critical : bool, default=False
        Also log an open critical bug (to exercise the "no open critical bug" gate).
    overwrite : bool, default=False
        Replace files a previous run left in the four sub-folders; otherwise refuse.
    progress : callable, optional
        Called as `progress(days_done, days)` after each day.

    Returns
    -------
    DemoManifest
        The files, row counts and descriptions of the planted effects.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     m = generate(tmp, n_predictions=2_000, days=10, fmt="parquet")
    ...     len(m.files["predictions"]), sorted(m.planted)
    (10, ['bad_day', 'overconfident_band', 'weak_segment'])
    """
    _validate(
        n_predictions=n_predictions,
        days=days,
        end=end,
        seed=seed,
        n_customers=n_customers,
        segments=segments,
        model_versions=model_versions,
        n_classes=n_classes,
        feature=feature,
        fmt=fmt,
        blind_share=blind_share,
        n_feedback=n_feedback,
    )
    out = Path(out_dir)
    _prepare(out, overwrite=overwrite)
    plan = _make_plan(
        n_predictions=n_predictions,
        days=days,
        end=end,
        seed=seed,
        n_customers=n_customers,
        segments=tuple(segments),
        versions=tuple(model_versions),
        n_classes=n_classes,
        feature=feature,
        class_probabilities=class_probabilities,
        blind_share=blind_share,
        effects=effects,
        n_feedback=n_feedback,
    )
    output = _Output(out, fmt)
    stats = _Stats(len(plan.versions), days, plan.band_units)
    with _Background() as background:
        for day in range(days):
            _generate_day(plan, day, output, stats, background)
            if progress is not None:
                progress(day + 1, days)
    files, counts = output.files, output.counts
    counts["feedback"] = _write_small(
        plan, FEEDBACK, _feedback_columns(plan, output.feedback), out, fmt, files, seed_key=6
    )
    counts["incidents"] = _write_small(
        plan, INCIDENTS, _incident_columns(plan, open_critical), out, fmt, files, seed_key=7
    )
    summary = stats.summary(plan)
    return DemoManifest(
        out_dir=out,
        feature=feature,
        start=plan.start,
        end=end,
        files=files,
        counts=counts,
        planted=_describe(plan, summary) if effects else {},
        seed=seed,
        fmt=fmt,
        segments=plan.segments,
        model_versions=plan.versions,
        labels=plan.labels,
        stats=summary,
    )


def demo_config(manifest: DemoManifest) -> dict[str, Any]:
    """A rollout-config mapping for the demo's feature, for `trustramp.config.parse_config`.

    The feature is in shadow since 16 days before the last day; the team's current routing
    auto-processes from 0.90 (trusting the stated confidence, which the over-confident band
    makes wrong); everything else is the playbook's default (plus the segments, when the demo
    used other than the default ones).

    Parameters
    ----------
    manifest : DemoManifest
        What `generate` returned.

    Returns
    -------
    dict
        JSON- and YAML-serializable keys: `feature`, `phase`, `phase_started` (ISO date),
        `routing` and, for non-default segments, `segments`.
    """
    if not isinstance(manifest, DemoManifest):
        raise TypeError(f"manifest must be a DemoManifest, got {type(manifest).__name__}")
    config: dict[str, Any] = {
        "feature": manifest.feature,
        "phase": "shadow",
        "phase_started": (manifest.end - dt.timedelta(days=16)).isoformat(),
        "routing": {"auto": 0.90},
    }
    if tuple(manifest.segments) != DEFAULT_SEGMENTS:
        config["segments"] = list(manifest.segments)
    return config


def is_blind_holdout(item_ids: Sequence[str] | np.ndarray, *, share: float = 0.05) -> np.ndarray:
    """Whether each item belongs to the blind hold-out arm: a stable hash of its id.

    An item is in the arm when the 64-bit FNV-1a hash of its UTF-8 `item_id`, modulo 10,000,
    is below `share * 10_000` (rounded): the same item is always in the same arm, on any
    machine, whatever else is in the data.

    Parameters
    ----------
    item_ids : sequence of str
        The items' ids.
    share : float, default=0.05
        Share of items in the arm, in [0, 1].

    Returns
    -------
    ndarray of bool
        True for items in the arm.

    Examples
    --------
    >>> is_blind_holdout(["i-1", "i-2"], share=1.0).tolist()
    [True, True]
    """
    _check_share("share", share)
    encoded = [str(s).encode("utf-8") for s in item_ids]
    if not encoded:
        return np.zeros(0, dtype=bool)
    width = max(len(b) for b in encoded)
    raw = np.array(encoded, dtype=f"S{max(width, 1)}")
    matrix = raw.view(np.uint8).reshape(len(encoded), -1)
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    return _fnv1a(matrix, lengths) % np.uint64(10_000) < np.uint64(round(share * 10_000))


# --- validation and planning -----------------------------------------------------------------


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


def _prepare(out: Path, *, overwrite: bool) -> None:
    """Create the sub-folders; find (and with `overwrite`, delete) files of an earlier run."""
    stale: list[Path] = []
    for kind in Kind:
        folder = out / kind.value
        folder.mkdir(parents=True, exist_ok=True)
        for ext in FORMATS:
            stale += sorted(folder.glob(f"{kind.value}-????-??-??.{ext}"))
            stale += sorted(folder.glob(f"{kind.value}.{ext}"))
    if stale and not overwrite:
        raise FileExistsError(
            f"{stale[0].parent} already holds demo files (e.g. {stale[0].name}); "
            f"pass overwrite=True to replace them, or choose another out_dir"
        )
    for path in stale:
        path.unlink()


def _rng(seed: int, *key: int) -> np.random.Generator:
    """An independent stream per purpose, day and block: stable whatever else is drawn."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


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
    weak = segments.index("enterprise") if "enterprise" in segments else len(segments) - 1
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
        bad_day=max(days - 6, 0),
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


# --- simulation ----------------------------------------------------------------------------


@dataclass
class _Output:
    """What a run has written so far, and what waits to be written."""

    out: Path
    fmt: str
    files: dict[str, list[Path]] = field(default_factory=lambda: {k.value: [] for k in Kind})
    counts: dict[str, int] = field(default_factory=lambda: {k.value: 0 for k in Kind})
    pending: dict[int, list[dict[str, np.ndarray]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    """Decisions by the day they are made, until that day's file is written."""
    feedback: list[dict[str, np.ndarray]] = field(default_factory=list)


def _generate_day(
    plan: _Plan, day: int, output: _Output, stats: _Stats, background: _Background
) -> None:
    """Simulate one day block by block; write its predictions and the decisions made on it."""
    date = plan.start + dt.timedelta(days=day)
    path = output.out / "predictions" / f"predictions-{date.isoformat()}.{output.fmt}"
    writer = _Writer(path, PREDICTIONS, output.fmt)
    for block, items, arrival_us in _blocks(plan, day):
        pred, dec, fb = _simulate_block(plan, day, block, items, arrival_us, stats)
        rng = _rng(plan.seed, 4, day, block)
        background.submit(_write_predictions, writer, plan, pred, output.fmt, rng)
        output.counts["predictions"] += len(pred["pnum"])
        for target, chunk in _split_by_day(plan, dec):
            output.pending[target].append(chunk)
        output.feedback.append(fb)
    background.submit(writer.close, cleanup=True)
    output.files["predictions"].append(path)
    output.counts["decisions"] += _write_decisions(
        plan, day, output.pending.pop(day, []), output, background
    )
    stats.close_day(day)
    logger.debug("demo: simulated %s", date)


def _simulate_block(
    plan: _Plan, day: int, block: int, items: np.ndarray, arrival_us: np.ndarray, stats: _Stats
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Predictions, decisions and feedback for one block of items (one day)."""
    rng = _rng(plan.seed, 2, day, block)
    n = len(items)
    cust = (
        np.searchsorted(plan.cust_cdf, rng.random(n), side="right")
        .clip(max=len(plan.cust_cdf) - 1)
        .astype(np.int32)
    )
    seg = plan.cust_segment[cust]
    truth = _draw_labels(plan, rng.random(n))
    shared_u = rng.random(n)
    _, item_matrix = _fixed_width_ids(f"i-{plan.tag}-", items, plan.width)
    holdout = _fnv1a(item_matrix) % np.uint64(10_000) < np.uint64(plan.holdout_units)
    bad = plan.effects and day == plan.bad_day
    columns: list[dict[str, np.ndarray]] = []
    for v in range(len(plan.versions)):
        if plan.version_start[v] > day:
            continue
        pred = _predict(plan, rng, v, day, bad, cust, seg, truth, shared_u, holdout, arrival_us)
        pred["pnum"] = items * len(plan.versions) + v
        pred["inum"] = items
        columns.append(pred)
        stats.add(v, day, pred, seg == plan.weak)
    live = columns[0]
    if plan.class_probabilities:
        cp_rng = _rng(plan.seed, 3, day, block)
        for pred in columns:
            pred["probs"] = _class_probabilities(plan, cp_rng, pred["label"], pred["conf"], truth)
    decisions = _decide(plan, rng, items, arrival_us, truth, live)
    feedback = _feedback_rows(plan, rng, items, arrival_us, cust, seg, truth, live)
    merged = {k: np.concatenate([c[k] for c in columns]) for k in columns[0] if k != "correct"}
    order = np.lexsort((merged["pnum"], merged["t"]))
    return {k: a[order] for k, a in merged.items()}, decisions, feedback


def _draw_labels(plan: _Plan, u: np.ndarray) -> np.ndarray:
    return (
        np.searchsorted(plan.prior_cdf, u, side="right")
        .clip(max=len(plan.labels) - 1)
        .astype(np.int16)
    )


def _other_labels(plan: _Plan, rng: np.random.Generator, exclude: np.ndarray) -> np.ndarray:
    """A label different from `exclude`, drawn from the prior without it."""
    out = _draw_labels(plan, rng.random(len(exclude)))
    for _ in range(20):
        clash = out == exclude
        if not clash.any():
            break
        out[clash] = _draw_labels(plan, rng.random(int(clash.sum())))
    clash = out == exclude
    out[clash] = (exclude[clash] + 1) % len(plan.labels)
    return out


def _predict(
    plan: _Plan,
    rng: np.random.Generator,
    v: int,
    day: int,
    bad: bool,
    cust: np.ndarray,
    seg: np.ndarray,
    truth: np.ndarray,
    shared_u: np.ndarray,
    holdout: np.ndarray,
    arrival_us: np.ndarray,
) -> dict[str, np.ndarray]:
    """One version's predictions for the block's items."""
    n = len(truth)
    review, confirm, auto = plan.band_units
    auto = min(auto, 10_000)  # the confidence model's top band edge, also when auto is closed
    high = rng.random(n) < plan.version_high[v]
    conf_min = plan.conf_min / 10_000
    c = np.where(
        high,
        1 - (1 - auto / 10_000) * rng.beta(0.8, 2.0, n),
        conf_min + (auto / 10_000 - conf_min) * rng.beta(*_SPREAD_BETA, n),
    )
    conf = np.clip(np.round(c * 10_000), plan.conf_min, 10_000).astype(np.int32)
    chance = conf / 10_000
    if plan.effects:
        chance = chance - _BAND_GAP * ((conf >= confirm) & (conf < auto))
        chance = chance - _SEGMENT_GAP * (seg == plan.weak)
    u = np.where(rng.random(n) < _SHARED_DIFFICULTY, shared_u, rng.random(n))
    correct = u < chance
    label = np.where(correct, truth, _other_labels(plan, rng, truth)).astype(np.int16)

    error, timeout, fallback = _RATES[bad]
    s = rng.random(n)
    status = np.select(
        [s < error, s < error + timeout, s < error + timeout + fallback], [1, 2, 3], 0
    ).astype(np.int8)
    failed = (status == 1) | (status == 2)
    latency = rng.lognormal(np.log(_LATENCY_MEDIAN_MS * (1 + 0.08 * v)), _LATENCY_SIGMA, n)
    if bad:
        slow = rng.random(n) < _SLOW_SHARE
        latency = np.where(slow, rng.lognormal(np.log(_SLOW_MEDIAN_MS), _SLOW_SIGMA, n), latency)
    latency = np.where(status == 3, latency * 0.4, latency)
    latency = np.where(status == 1, rng.lognormal(np.log(150.0), 0.5, n), latency)
    latency = np.where(status == 2, _TIMEOUT_MS, latency)
    latency = np.round(np.clip(latency, 5.0, 60_000.0), 1)

    if v == 0 and day >= plan.live_from:
        mode = np.where(plan.cust_confirm[cust], 2, 1).astype(np.int8)
        mode[holdout] = 0
    else:
        mode = np.zeros(n, dtype=np.int8)
    band = np.select([conf >= auto, conf >= confirm, conf >= review], [0, 1, 2], 3)
    routed = np.where(_SHOWN[mode], np.where(failed, 3, band), -1).astype(np.int8)
    label[failed] = -1
    conf[failed] = -1
    queue_ms = rng.integers(50, 2_000, n) if v > 0 else np.zeros(n, dtype=np.int64)
    t = arrival_us + (np.round(latency).astype(np.int64) + queue_ms) * 1000
    return {
        "t": t,
        "ver": np.full(n, v, dtype=np.int8),
        "cust": cust,
        "seg": seg,
        "mode": mode,
        "label": label,
        "conf": conf,
        "latency": latency,
        "status": status,
        "routed": routed,
        "correct": correct & ~failed,
    }


def _class_probabilities(
    plan: _Plan, rng: np.random.Generator, label: np.ndarray, conf: np.ndarray, truth: np.ndarray
) -> np.ndarray:
    """(n, K) probabilities in units of 1e-4: the predicted label holds exactly `conf`, strictly
    above every other; the rest is spread at random, most of it to the true label when wrong."""
    n, k = len(label), len(plan.labels)
    top = np.where(conf < 0, 10_000, conf).astype(np.int64)
    pred = np.where(label < 0, 0, label).astype(np.int64)
    rest = 10_000 - top
    weight = rng.standard_exponential((n, k - 1)) + 1e-9
    truth_pos = (truth.astype(np.int64) - pred - 1) % k  # position of the truth among the others
    wrong = (label >= 0) & (truth_pos < k - 1)
    weight[np.flatnonzero(wrong), truth_pos[wrong]] += 3 * rng.standard_exponential(
        int(wrong.sum())
    )
    share = weight / weight.sum(axis=1, keepdims=True)
    # Mix towards the uniform split just enough that no other label reaches the top one, even
    # after the rounding remainder (< k units) goes to the biggest of them.
    uniform = 1.0 / (k - 1)
    cap = (top - k) / np.maximum(rest, 1)
    biggest = share.max(axis=1)
    mix = np.clip((biggest - cap) / np.maximum(biggest - uniform, 1e-12), 0.0, 1.0)
    share = mix[:, None] * uniform + (1 - mix[:, None]) * share
    units = np.floor(share * rest[:, None]).astype(np.int64)
    rows = np.arange(n)
    units[rows, units.argmax(axis=1)] += rest - units.sum(axis=1)
    out = np.empty((n, k), dtype=np.int64)
    out[rows, pred] = top
    for j in range(k - 1):
        out[rows, (pred + 1 + j) % k] = units[:, j]
    return out


def _decide(
    plan: _Plan,
    rng: np.random.Generator,
    items: np.ndarray,
    arrival_us: np.ndarray,
    truth: np.ndarray,
    live: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Human decisions on the block's items; the live (first) version's suggestion is what a
    human saw, when it was shown."""
    n = len(items)
    shown = _SHOWN[live["mode"]] & (live["label"] >= 0)
    wrong = live["label"] != truth
    decided = rng.random(n) < _DECIDED
    corrected = decided & (rng.random(n) < _CORRECTED)
    biased = shown & wrong & (rng.random(n) < _ACCEPT_WRONG) & ~corrected
    final = np.where(biased, live["label"], truth).astype(np.int16)
    mistaken = np.where(shown & wrong, live["label"], _other_labels(plan, rng, truth))
    soon = rng.exponential(2.5 * 3600, n)
    later = 7200 + rng.exponential(2 * 86_400, n)
    # At least 65 s: after every prediction of the item (latency <= 60 s, shadow queue < 2 s).
    delay_s = np.clip(np.where(rng.random(n) < 0.6, soon, later) + 65, 65, 9 * 86_400)
    first_us = arrival_us + (delay_s * 1000).astype(np.int64) * 1000
    second_us = np.minimum(
        first_us + (3600 + rng.exponential(1.5 * 86_400, n)).astype(np.int64) * 1_000_000,
        arrival_us + 10 * _DAY_US,
    )
    rows = np.concatenate([np.flatnonzero(decided), np.flatnonzero(corrected)])
    is_second = np.arange(len(rows)) >= int(decided.sum())
    label = np.where(is_second, final[rows], np.where(corrected[rows], mistaken[rows], final[rows]))
    accepted = label == live["label"][rows]
    changed = np.where(rng.random(len(rows)) < _EDITED, 2, 1)
    action = np.where(shown[rows], np.where(accepted, 0, changed), 3).astype(np.int8)
    median_s = np.array([25.0, 140.0, 140.0, 95.0])[action]
    review_s = np.round(median_s * rng.lognormal(0.0, 0.55, len(rows)), 1)
    return {
        "dnum": items[rows] * 2 + is_second,
        "inum": items[rows],
        "t": np.where(is_second, second_us[rows], first_us[rows]).astype(np.int64),
        "label": label.astype(np.int16),
        "reviewer": rng.integers(0, _N_REVIEWERS, len(rows)).astype(np.int32),
        "action": action,
        "review_s": review_s,
    }


def _split_by_day(
    plan: _Plan,
    dec: dict[str, np.ndarray],
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Decisions bucketed by the UTC day they were made; those after the window are dropped."""
    day = (dec["t"] - plan.start_us) // _DAY_US
    keep = day < plan.days
    order = np.argsort(day[keep], kind="stable")
    kept = {k: a[keep][order] for k, a in dec.items()}
    days_sorted = day[keep][order]
    bounds = np.flatnonzero(np.diff(days_sorted)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(days_sorted)], strict=True):
        if hi > lo:
            yield int(days_sorted[lo]), {k: a[lo:hi] for k, a in kept.items()}


def _feedback_rows(
    plan: _Plan,
    rng: np.random.Generator,
    items: np.ndarray,
    arrival_us: np.ndarray,
    cust: np.ndarray,
    seg: np.ndarray,
    truth: np.ndarray,
    live: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Feedback from internal users on some of their items, mostly positive."""
    pool = np.flatnonzero(seg == plan.feedback_segment)
    k = int(rng.binomial(len(pool), plan.feedback_rate)) if len(pool) else 0
    pick = np.sort(rng.choice(pool, size=k, replace=False)) if k else pool[:0]
    right = live["label"][pick] == truth[pick]
    positive = rng.random(k) < np.where(right, 0.89, 0.40)
    nps = np.where(
        positive,
        rng.choice([7, 8, 9, 10], k, p=[0.1, 0.25, 0.35, 0.3]),
        rng.choice(7, k, p=[0.05, 0.05, 0.1, 0.15, 0.2, 0.2, 0.25]),
    )
    nps = np.where(rng.random(k) < 0.2, -1, nps)
    comment = rng.integers(0, len(_COMMENTS[True]), k) + np.where(rng.random(k) < 0.6, 99, 0)
    delay_us = rng.integers(600, 36 * 3600, k) * 1_000_000
    return {
        "t": arrival_us[pick] + delay_us,
        "inum": items[pick],
        "linked": rng.random(k) < 0.7,
        "cust": cust[pick],
        "user": cust[pick].astype(np.int64) * 10 + rng.integers(0, 10, k),
        "positive": positive,
        "nps": nps.astype(np.int64),
        "comment": comment,
    }


class _Stats:
    """Realized truths, accumulated block by block (for the manifest)."""

    def __init__(self, n_versions: int, days: int, band_units: tuple[int, int, int]) -> None:
        self.band_units = band_units
        # [version, weak segment?, band] -> rows, correct, confidence sum
        self.cells = np.zeros((n_versions, 2, 4, 3))
        self.day_rows = np.zeros(days)
        self.day_failed = np.zeros(days)
        self.day_p95 = np.zeros(days)
        self._latency: list[np.ndarray] = []

    def add(self, v: int, day: int, pred: dict[str, np.ndarray], weak: np.ndarray) -> None:
        review, confirm, auto = self.band_units
        conf = pred["conf"]
        ok = conf >= 0
        band = np.select([conf >= auto, conf >= confirm, conf >= review], [0, 1, 2], 3)[ok]
        cell = weak[ok].astype(np.int64) * 4 + band
        for j, values in enumerate(
            (np.ones(len(cell)), pred["correct"][ok], pred["conf"][ok] / 10_000)
        ):
            self.cells[v, :, :, j] += np.bincount(cell, values, minlength=8).reshape(2, 4)
        self.day_rows[day] += len(ok)
        self.day_failed[day] += int((~ok).sum())
        self._latency.append(pred["latency"].astype(np.float32))

    def close_day(self, day: int) -> None:
        if self._latency:
            self.day_p95[day] = float(np.percentile(np.concatenate(self._latency), 95))
        self._latency = []

    def summary(self, plan: _Plan) -> dict[str, float]:
        def acc(c: np.ndarray) -> tuple[float, float, float]:
            rows, correct, conf = c.reshape(-1, 3).sum(axis=0)
            return rows, correct / max(rows, 1), conf / max(rows, 1)

        out: dict[str, float] = {}
        n, a, _ = acc(self.cells)
        out |= {"accuracy": a, "n_successful": n}
        for v, name in enumerate(plan.versions):
            out[f"accuracy_{name}"] = acc(self.cells[v])[1]
        for b, band in enumerate(_BANDS):
            n, a, c = acc(self.cells[:, 0, b])
            out |= {f"accuracy_{band}_band": a, f"confidence_{band}_band": c, f"n_{band}_band": n}
        for w, name in ((1, "weak_segment"), (0, "other_segments")):
            n, a, c = acc(self.cells[:, w])
            out |= {f"accuracy_{name}": a, f"confidence_{name}": c, f"n_{name}": n}
        rate = self.day_failed / np.maximum(self.day_rows, 1)
        others = np.arange(plan.days) != plan.bad_day
        out["error_rate_other_days"] = float(
            self.day_failed[others].sum() / max(self.day_rows[others].sum(), 1)
        )
        out["latency_p95_ms_median_day"] = (
            float(np.median(self.day_p95[others])) if others.any() else float("nan")
        )
        out["error_rate_bad_day"] = float(rate[plan.bad_day])
        out["latency_p95_ms_bad_day"] = float(self.day_p95[plan.bad_day])
        return {k: float(v) for k, v in out.items()}


def _describe(plan: _Plan, s: dict[str, float]) -> dict[str, str]:
    bad = plan.start + dt.timedelta(days=plan.bad_day)
    weak = plan.segments[plan.weak]
    return {
        "overconfident_band": (
            f"Confidence band [0.80, 0.95) is over-confident: the chance of a right answer there "
            f"is set {_BAND_GAP:.2f} below the stated confidence, for every version, segment and "
            f"day (realized outside segment {weak!r}: accuracy {s['accuracy_confirm_band']:.3f} at "
            f"mean confidence {s['confidence_confirm_band']:.3f}, n={s['n_confirm_band']:.0f}); "
            f"elsewhere the model is calibrated (band >= 0.95: accuracy "
            f"{s['accuracy_auto_band']:.3f} at mean confidence {s['confidence_auto_band']:.3f})."
        ),
        "weak_segment": (
            f"Segment {weak!r} is clearly worse: its chance of a right answer is set "
            f"{_SEGMENT_GAP:.2f} below the confidence at every confidence level (realized "
            f"accuracy {s['accuracy_weak_segment']:.3f} vs {s['accuracy_other_segments']:.3f} for "
            f"the other segments, at about the same mean confidence)."
        ),
        "bad_day": (
            f"{bad.isoformat()} (the 5th day before {(plan.start + dt.timedelta(plan.days - 1))}) "
            f"is a bad day: error + timeout rate set to ~10 % (realized "
            f"{s['error_rate_bad_day']:.3f} vs {s['error_rate_other_days']:.3f} on other days) "
            f"and latency p95 ~12 s (realized {s['latency_p95_ms_bad_day'] / 1000:.1f} s vs a "
            f"median daily p95 of {s['latency_p95_ms_median_day'] / 1000:.1f} s)."
        ),
    }


# --- feedback and incidents ----------------------------------------------------------------


def _feedback_columns(plan: _Plan, chunks: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    fb = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]} if chunks else {}
    if not fb or not len(fb["t"]):
        return {name: [] for name in FEEDBACK.names}
    keep = fb["t"] < plan.end_us
    order = np.lexsort((fb["inum"][keep], fb["t"][keep]))
    fb = {k: a[keep][order] for k, a in fb.items()}
    n = len(fb["t"])
    item_ids = [
        f"i-{plan.tag}-{i:0{plan.width}d}" if linked else None
        for i, linked in zip(fb["inum"].tolist(), fb["linked"].tolist(), strict=True)
    ]
    comments = []
    for positive, c in zip(fb["positive"].tolist(), fb["comment"].tolist(), strict=True):
        comments.append(_COMMENTS[positive][c] if c < 99 else None)
    return {
        "feedback_id": [f"fb-{plan.tag}-{i:06d}" for i in range(1, n + 1)],
        "submitted_at": fb["t"],
        "feature": [plan.feature] * n,
        "customer_id": [_customer_id(plan, c) for c in fb["cust"].tolist()],
        "segment": [plan.segments[plan.feedback_segment]] * n,
        "user_id": [f"u-{plan.tag}-{u:07d}" for u in fb["user"].tolist()],
        "rating": [
            Rating.POSITIVE.value if p else Rating.NEGATIVE.value for p in fb["positive"].tolist()
        ],
        "nps_score": [None if x < 0 else x for x in fb["nps"].tolist()],
        "comment": comments,
        "item_id": item_ids,
    }


def _incident_columns(plan: _Plan, open_critical: bool) -> dict[str, Any]:
    day0 = plan.start_us
    bad = plan.bad_day

    def at(day: int, hour: float) -> int:
        minutes = round(hour * 60)
        return day0 + min(max(day, 0), plan.days - 1) * _DAY_US + minutes * 60_000_000

    rows = [
        (
            at(bad, 9.2),
            at(bad + 1, 15.7),
            Severity.MAJOR,
            IncidentKind.BUG,
            "Model server returns 5xx and times out under load after a bad deploy",
        ),
        (
            at(plan.days - 3, 11.5),
            None,
            Severity.MINOR,
            IncidentKind.BUG,
            "Suggestion panel shows the label's internal code instead of its name",
        ),
    ]
    if open_critical:
        rows.append(
            (
                at(plan.days - 2, 8.0),
                None,
                Severity.CRITICAL,
                IncidentKind.BUG,
                "Suggestions shown for the wrong ticket after a page reload",
            )
        )
    return {
        "incident_id": [f"inc-{plan.tag}-{i:03d}" for i in range(1, len(rows) + 1)],
        "feature": [plan.feature] * len(rows),
        "opened_at": np.array([r[0] for r in rows], dtype=np.int64),
        "resolved_at": np.array([-1 if r[1] is None else r[1] for r in rows], dtype=np.int64),
        "severity": [r[2].value for r in rows],
        "kind": [r[3].value for r in rows],
        "title": [r[4] for r in rows],
    }


def _customer_id(plan: _Plan, number: int) -> str:
    return f"c-{plan.tag}-{number:0{plan.cust_width}d}"


# --- rendering to Arrow tables ---------------------------------------------------------------


def _fixed_width_ids(prefix: str, numbers: np.ndarray, width: int) -> tuple[pa.Array, np.ndarray]:
    """`prefix` + zero-padded numbers as an Arrow string array, built without Python strings;
    also returns the (n, length) byte matrix."""
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    n, length = len(numbers), len(head) + width
    matrix = np.empty((n, length), dtype=np.uint8)
    matrix[:, : len(head)] = head
    q = numbers.astype(np.uint64)
    for j in range(length - 1, len(head) - 1, -1):
        q, r = np.divmod(q, np.uint64(10))
        matrix[:, j] = r + 48
    return _string_array(matrix), matrix


def _string_array(matrix: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """An Arrow string array whose i-th value is the bytes of `matrix[i]` (zero-copy)."""
    n, length = matrix.shape
    offsets = pa.py_buffer(np.arange(0, (n + 1) * length, length, dtype=np.int64))
    data = pa.py_buffer(np.ascontiguousarray(matrix))
    if valid is None or valid.all():
        array = pa.LargeStringArray.from_buffers(n, offsets, data)
    else:
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        array = pa.LargeStringArray.from_buffers(
            n, offsets, data, bitmap, null_count=int((~valid).sum())
        )
    return array.cast(pa.string())


def _fnv1a(matrix: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """64-bit FNV-1a of each row's first `lengths` bytes (all bytes when None)."""
    h = np.full(len(matrix), _FNV_OFFSET, dtype=np.uint64)
    for j in range(matrix.shape[1]):
        step = (h ^ matrix[:, j].astype(np.uint64)) * _FNV_PRIME
        h = step if lengths is None else np.where(j < lengths, step, h)
    return h


def _probability_json(plan: _Plan, units: np.ndarray, valid: np.ndarray) -> pa.Array:
    """`{"billing": 0.0123, ...}` per row from units of 1e-4, built as a fixed-width byte
    matrix (every value has four decimals), null where `valid` is False."""
    pieces: list[bytes | int] = []
    for k, label in enumerate(plan.labels):
        pieces.append((("{" if k == 0 else ", ") + json.dumps(label) + ": ").encode())
        pieces.append(k)
    pieces.append(b"}")
    length = sum(6 if isinstance(p, int) else len(p) for p in pieces)
    matrix = np.empty((len(units), length), dtype=np.uint8)
    pos = 0
    for piece in pieces:
        if isinstance(piece, bytes):
            matrix[:, pos : pos + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
            pos += len(piece)
        else:
            matrix[:, pos : pos + 6] = _DECIMALS[units[:, piece]]
            pos += 6
    return _string_array(matrix, valid)


def _take(values: Sequence[str], index: np.ndarray) -> pa.Array:
    """Strings by index; a negative index is null."""
    return pa.array(list(values), type=pa.string()).take(pa.array(index, mask=index < 0))


def _timestamps(us: np.ndarray, fmt: str, rng: np.random.Generator) -> pa.Array:
    """Typed UTC timestamps for Parquet; ISO 8601 text for CSV and JSON Lines, most in UTC
    (`Z` or `+00:00`), 10 % at another offset (same instant) and 2 % without an offset.
    A negative value is null."""
    missing = us < 0
    if fmt == "parquet":
        return pa.array(us, type=pa.timestamp("us", tz="UTC"), mask=missing)
    choice = rng.choice(len(_SUFFIXES), size=len(us), p=_SUFFIX_P)
    local_ms = us // 1000 + _SUFFIX_MINUTES[choice] * 60_000
    text = pc.cast(pa.array(local_ms, type=pa.timestamp("ms"), mask=missing), pa.string())
    text = pc.utf8_replace_slice(text, start=10, stop=11, replacement="T")
    return pc.binary_join_element_wise(text, _take(_SUFFIXES, choice), "")


def _predictions_table(
    plan: _Plan, p: dict[str, np.ndarray], fmt: str, rng: np.random.Generator
) -> pa.Table:
    valid = p["conf"] >= 0
    probs = (
        _probability_json(plan, p["probs"], valid)
        if "probs" in p
        else pa.nulls(len(valid), pa.string())
    )
    return _assemble(
        PREDICTIONS,
        fmt,
        {
            "prediction_id": _fixed_width_ids(f"p-{plan.tag}-", p["pnum"], plan.width)[0],
            "item_id": _fixed_width_ids(f"i-{plan.tag}-", p["inum"], plan.width)[0],
            "feature": pa.repeat(plan.feature, len(valid)).cast(pa.string()),
            "model_version": _take(plan.versions, p["ver"]),
            "predicted_at": _timestamps(p["t"], fmt, rng),
            "segment": _take(plan.segments, p["seg"]),
            "customer_id": _fixed_width_ids(f"c-{plan.tag}-", p["cust"], plan.cust_width)[0],
            "mode": _take([m.value for m in _MODES], p["mode"]),
            "predicted_label": _take(plan.labels, p["label"]),
            "confidence": pa.array(p["conf"] / 10_000, mask=~valid),
            "class_probabilities": probs,
            "latency_ms": pa.array(p["latency"]),
            "status": _take([s.value for s in _STATUSES], p["status"]),
            "routed_to": _take([b.value for b in _BANDS], p["routed"]),
        },
    )


def _decisions_table(
    plan: _Plan, d: dict[str, np.ndarray], fmt: str, rng: np.random.Generator
) -> pa.Table:
    return _assemble(
        DECISIONS,
        fmt,
        {
            "decision_id": _fixed_width_ids(f"d-{plan.tag}-", d["dnum"], plan.width)[0],
            "item_id": _fixed_width_ids(f"i-{plan.tag}-", d["inum"], plan.width)[0],
            "decided_at": _timestamps(d["t"], fmt, rng),
            "human_label": _take(plan.labels, d["label"]),
            "reviewer_id": _fixed_width_ids(f"r-{plan.tag}-", d["reviewer"], 3)[0],
            "action": _take([a.value for a in _ACTIONS], d["action"]),
            "review_seconds": pa.array(d["review_s"]),
        },
    )


def _arrow_type(col_type: ColType, fmt: str) -> pa.DataType:
    if col_type is ColType.TIMESTAMP:
        return pa.timestamp("us", tz="UTC") if fmt == "parquet" else pa.string()
    return {ColType.FLOAT: pa.float64(), ColType.INT: pa.int64()}.get(col_type, pa.string())


def _schema(schema: Schema, fmt: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, _arrow_type(c.type, fmt)) for c in schema.columns])


def _assemble(schema: Schema, fmt: str, columns: dict[str, Any]) -> pa.Table:
    """A table with exactly the contract's columns, in its order, with the format's types."""
    if set(columns) != set(schema.names):
        raise AssertionError(
            f"demo {schema.kind} columns {sorted(columns)} differ from the "
            f"contract's {sorted(schema.names)}"
        )
    target = _schema(schema, fmt)
    arrays = [
        pa.array(columns[f.name], type=f.type)
        if not isinstance(columns[f.name], pa.Array)
        else columns[f.name].cast(f.type)
        for f in target
    ]
    return pa.Table.from_arrays(arrays, schema=target)


# --- writing -------------------------------------------------------------------------------


class _Writer:
    """Appends tables of one kind to one file in the chosen format."""

    def __init__(self, path: Path, schema: Schema, fmt: str) -> None:
        self.fmt = fmt
        self.schema = _schema(schema, fmt)
        # Columns whose text never needs JSON escaping: enums, timestamps and generated ids.
        self._plain = frozenset(
            c.name
            for c in schema.columns
            if c.type in (ColType.ENUM, ColType.TIMESTAMP) or c.name in _ID_COLUMNS
        )
        if fmt == "parquet":
            dictionary = [
                c.name
                for c in schema.columns
                if c.type is ColType.ENUM or c.name in _DICTIONARY_COLUMNS
            ]
            self._sink: Any = pq.ParquetWriter(
                path, self.schema, compression="zstd", use_dictionary=dictionary
            )
        elif fmt == "csv":
            self._sink = pacsv.CSVWriter(path, self.schema)
        else:
            self._sink = path.open("wb")

    def write(self, table: pa.Table) -> None:
        if self.fmt == "jsonl":
            self._sink.write(_json_lines(table, plain=self._plain))
        elif table.num_rows:
            self._sink.write_table(table)

    def close(self) -> None:
        self._sink.close()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_lines(table: pa.Table, *, plain: frozenset[str] = frozenset()) -> pa.Buffer:
    """One JSON object per row, built column-wise in Arrow (nulls as null; strings escaped,
    except in the `plain` columns, which hold no quote, backslash or control character)."""
    if table.num_rows == 0:
        return pa.py_buffer(b"")
    pieces: list[Any] = []
    for i, column_field in enumerate(table.schema):
        column = table.column(i).combine_chunks()
        if pa.types.is_string(column_field.type):
            if column_field.name not in plain:
                column = pc.replace_substring(
                    pc.replace_substring(column, "\\", "\\\\"), '"', '\\"'
                )
            value = pc.binary_join_element_wise('"', column, '"', "")
        else:
            value = pc.cast(column, pa.string())
            if pa.types.is_floating(column_field.type):  # 1.0 prints as "1": keep it a float
                whole = pc.invert(pc.match_substring_regex(value, "[.eEn]"))
                value = pc.if_else(whole, pc.binary_join_element_wise(value, ".0", ""), value)
        pieces += [
            ("{" if i == 0 else ", ") + json.dumps(column_field.name) + ": ",
            pc.fill_null(value, "null"),
        ]
    lines = pc.binary_join_element_wise(*pieces, "}\n", "").cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    return lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _write_predictions(
    writer: _Writer, plan: _Plan, pred: dict[str, np.ndarray], fmt: str, rng: np.random.Generator
) -> None:
    writer.write(_predictions_table(plan, pred, fmt, rng))


def _write_decisions(
    plan: _Plan,
    day: int,
    chunks: list[dict[str, np.ndarray]],
    output: _Output,
    background: _Background,
) -> int:
    """The decisions made on `day`, in time order."""
    date = plan.start + dt.timedelta(days=day)
    fmt = output.fmt
    path = output.out / "decisions" / f"decisions-{date.isoformat()}.{fmt}"
    writer = _Writer(path, DECISIONS, fmt)
    rows = 0
    if chunks:
        dec = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        order = np.lexsort((dec["dnum"], dec["t"]))
        rows = len(order)
        for block, lo in enumerate(range(0, rows, 2 * _BLOCK_ITEMS)):
            part = {k: a[order[lo : lo + 2 * _BLOCK_ITEMS]] for k, a in dec.items()}
            background.submit(
                _write_decisions_part, writer, plan, part, fmt, _rng(plan.seed, 5, day, block)
            )
    background.submit(writer.close, cleanup=True)
    output.files["decisions"].append(path)
    return rows


def _write_decisions_part(
    writer: _Writer, plan: _Plan, part: dict[str, np.ndarray], fmt: str, rng: np.random.Generator
) -> None:
    writer.write(_decisions_table(plan, part, fmt, rng))


_Task = tuple[Callable[..., None], tuple[Any, ...], bool]


class _Background:
    """Runs writes in order on one background thread, so that Arrow (which releases the GIL)
    renders and writes a block while numpy simulates the next one. At most two tasks wait,
    which bounds memory; the first failure is raised in the caller."""

    def __init__(self) -> None:
        self._tasks: queue.Queue[_Task | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="trustramp-demo-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            fn, args, cleanup = task
            if self._error is None or cleanup:  # after a failure, only close files
                try:
                    fn(*args)
                except BaseException as e:  # handed to the caller
                    self._error = self._error or e

    def submit(self, fn: Callable[..., None], *args: Any, cleanup: bool = False) -> None:
        """Queue `fn(*args)`; `cleanup` tasks (closing files) run even after a failure."""
        self._raise()
        self._tasks.put((fn, args, cleanup))

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def __enter__(self) -> _Background:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._tasks.put(None)
        self._thread.join()
        if exc_type is None:
            self._raise()


def _write_small(
    plan: _Plan,
    schema: Schema,
    columns: dict[str, Any],
    out: Path,
    fmt: str,
    files: dict[str, list[Path]],
    *,
    seed_key: int,
) -> int:
    rng = _rng(plan.seed, seed_key)
    for column in schema.columns:
        if column.type is ColType.TIMESTAMP:
            columns[column.name] = _timestamps(
                np.asarray(columns[column.name], dtype=np.int64), fmt, rng
            )
    table = _assemble(schema, fmt, columns)
    path = out / schema.kind.value / f"{schema.kind.value}.{fmt}"
    with _Writer(path, schema, fmt) as writer:
        writer.write(table)
    files[schema.kind.value].append(path)
    return table.num_rows
