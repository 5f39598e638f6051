"""The evidence a verdict is decided from: plain numbers the pipeline fills from counts.

Nothing here computes a metric. The pipeline (SQL plus the metrics package) reduces the logs to
these small frozen records; `trustramp.decide` turns them into a verdict. Keeping the boundary
at plain numbers lets tests build the exact evidence whose right verdict is known.

Conventions
-----------
- Segment keys are the configured segment names plus ``"all"`` (overall).
- A proportion is a `Count` (``k`` of ``n``); the decide package computes its exact bounds.
- ``rolling_24h`` is keyed by ``(metric, segment)`` with metric one of `ROLLING_METRICS`;
  proportions (accuracy, error_rate, override_rate, availability) should be given as `Count`,
  latency_p95 (milliseconds) as `Observed`. An `Observed` proportion is accepted too: its
  ``ci_low``/``ci_high`` then stand in for the exact bounds.
- A missing key means "no data", never "fine".
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from trustramp.contract import IncidentKind, Severity

__all__ = [
    "ALL",
    "ROLLING_METRICS",
    "Calibration",
    "Count",
    "DataSummary",
    "Drift",
    "Evidence",
    "Incident",
    "Observed",
    "Regression",
    "SegmentFlag",
]

ALL = "all"
"""The segment key for overall (all segments pooled)."""

ROLLING_METRICS: tuple[str, ...] = (
    "accuracy",
    "latency_p95",
    "error_rate",
    "override_rate",
    "availability",
)


def _whole(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Count:
    """``k`` successes (or events) out of ``n`` trials, e.g. correct of labeled items.

    ``design_effect`` (>= 1; 1 = independent items) says how much the items' clustering by
    customer widens the rate's variance (`trustramp.metrics.intervals.design_effect`); gates
    take their bounds on the counts deflated by it. ``clusters`` is how many customers the
    items come from (items without a customer id not counted), None when not known.
    """

    k: int
    n: int
    design_effect: float = 1.0
    clusters: int | None = None

    def __post_init__(self) -> None:
        k, n = _whole("Count.k", self.k), _whole("Count.n", self.n)
        if not 0 <= k <= n:
            raise ValueError(f"Count needs 0 <= k <= n, got k={self.k!r}, n={self.n!r}")
        deff = self.design_effect
        if isinstance(deff, bool) or not isinstance(deff, int | float) or not deff >= 1.0:
            raise ValueError(f"Count.design_effect must be >= 1, got {deff!r}")
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "design_effect", float(deff))
        if self.clusters is not None:
            object.__setattr__(self, "clusters", _whole("Count.clusters", self.clusters))

    @property
    def rate(self) -> float | None:
        """``k / n``; None when ``n == 0``."""
        return self.k / self.n if self.n else None


@dataclass(frozen=True)
class Observed:
    """A measured value (e.g. p95 latency in ms) over ``n`` observations, with an optional CI."""

    value: float | None
    n: int
    ci_low: float | None = None
    ci_high: float | None = None

    def __post_init__(self) -> None:
        n = _whole("Observed.n", self.n)
        if n < 0:
            raise ValueError(f"Observed.n must be >= 0, got {self.n!r}")
        object.__setattr__(self, "n", n)
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError(f"Observed.value must be finite or None, got {self.value!r}")


@dataclass(frozen=True)
class Incident:
    """One incident (SPEC 1.1 `incidents`). Timestamps without tzinfo are UTC."""

    incident_id: str
    severity: Severity | str
    kind: IncidentKind | str
    title: str
    opened_at: dt.datetime
    resolved_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "kind", IncidentKind(self.kind))
        if self.resolved_at is not None and _utc_date(self.resolved_at) < _utc_date(self.opened_at):
            raise ValueError(
                f"incident {self.incident_id!r}: resolved_at {self.resolved_at} is "
                f"before opened_at {self.opened_at}"
            )

    def open_at_end_of(self, day: dt.date) -> bool:
        """Opened on or before ``day`` and not resolved by the end of it (UTC)."""
        if _utc_date(self.opened_at) > day:
            return False
        return self.resolved_at is None or _utc_date(self.resolved_at) > day

    def active_on(self, day: dt.date) -> bool:
        """Open at any moment of ``day`` (UTC): opened by its end and not resolved before it."""
        if _utc_date(self.opened_at) > day:
            return False
        return self.resolved_at is None or _utc_date(self.resolved_at) >= day


def _utc_date(ts: dt.datetime) -> dt.date:
    if ts.tzinfo is not None:
        ts = ts.astimezone(dt.UTC)
    return ts.date()


@dataclass(frozen=True)
class Calibration:
    """Top-label calibration of the certified version on the matured window.

    ``ece`` is None when too few labels to show it (SPEC 3.5: below 500); ``p_value`` is the
    consistency-resampling test's; ``noise_floor`` is the ECE a perfectly calibrated model would
    show at this ``n``. ``ece_debiased_l2`` (Kumar, Liang & Ma 2019) and ``smece`` with its
    bandwidth ``smece_sigma`` (Błasiok & Nakkiran 2023) are shown beside the ECE (None below
    500 labels).
    """

    ece: float | None
    p_value: float | None
    noise_floor: float | None
    n: int
    ece_debiased_l2: float | None = None
    smece: float | None = None
    smece_sigma: float | None = None


@dataclass(frozen=True)
class Regression:
    """A paired comparison of the candidate version against the previous one on shared items."""

    candidate: str
    previous: str
    n: int
    acc_candidate: float
    acc_previous: float
    p_value: float
    regression: bool
    """True when the candidate is significantly worse (the metrics package decides)."""


@dataclass(frozen=True)
class SegmentFlag:
    """The bias audit's finding for one segment: ``ok``, ``worse`` or ``insufficient``.

    ``p_holm`` is the Holm-adjusted p-value the flag is decided on, ``q_bh`` the
    Benjamini–Hochberg q-value shown beside it (None when not tested).
    """

    segment: str
    flag: Literal["ok", "worse", "insufficient"]
    reason: str
    n: int
    p_holm: float | None = None
    q_bh: float | None = None

    def __post_init__(self) -> None:
        if self.flag not in ("ok", "worse", "insufficient"):
            raise ValueError(
                f"SegmentFlag.flag must be ok, worse or insufficient, got {self.flag!r}"
            )


@dataclass(frozen=True)
class DataSummary:
    """The verdict's ``data`` block (besides the window): how much data there was."""

    predictions: int = 0
    labeled: int = 0
    quarantined: int = 0
    label_coverage: float | None = None
    """labeled / predictions when None."""

    @property
    def coverage(self) -> float | None:
        if self.label_coverage is not None:
            return self.label_coverage
        return self.labeled / self.predictions if self.predictions else None


@dataclass(frozen=True)
class Drift:
    """Confidence-distribution drift of one model version: PSI of the last 7 days against the
    baseline week, with the sample-size-aware levels of `trustramp.metrics.psi_result`.

    ``status`` is ``ok``, ``warning``, ``critical`` or ``insufficient``.
    """

    model_version: str
    psi: float
    warning: float
    critical: float
    status: str
    n_baseline: int
    n_current: int


@dataclass(frozen=True)
class Evidence:
    """Everything a verdict needs, for one feature on one as-of date.

    Attributes
    ----------
    feature, as_of
        The feature and the evaluated day.
    model_version
        The one version whose evidence this is; None when the window mixes versions or has none
        (a gate then holds: versions are never pooled).
    window_start, window_end
        The label-matured window the gate counts come from.
    accuracy
        Correct of labeled *unshown* items in the window, for that version: ``"all"`` and each
        segment.
    error
        Failed (error + timeout) of all predictions in the window, by segment.
    override
        Overridden of shown suggestions in the window, by segment.
    rolling_24h
        ``(metric, segment) -> Count | Observed`` for the last 24 h (alerts, rollback).
    positive_feedback
        Positive of all ratings in the window (dogfood criterion); None when no feedback.
    nps
        Net promoter score, for display.
    incidents
        The feature's incidents; None when no incident log is kept (then "no open critical
        incident" cannot be shown).
    calibration, regression
        Model-readiness evidence; ``regression`` None means there is no previous version.
    bias
        The bias audit's flag per segment.
    edge_cases
        Accuracy (unshown, matured) per configured edge-case slice name.
    baseline_accuracy
        The baseline a ``threshold: baseline`` criterion compares with; None falls back to the
        config's ``statistics.baseline.accuracy``.
    data
        Counts for the verdict's ``data`` block.
    """

    feature: str
    as_of: dt.date
    window_start: dt.date
    window_end: dt.date
    model_version: str | None = None
    accuracy: Mapping[str, Count] = field(default_factory=dict)
    error: Mapping[str, Count] = field(default_factory=dict)
    override: Mapping[str, Count] = field(default_factory=dict)
    rolling_24h: Mapping[tuple[str, str], Count | Observed] = field(default_factory=dict)
    positive_feedback: Count | None = None
    nps: float | None = None
    incidents: Sequence[Incident] | None = None
    calibration: Calibration | None = None
    regression: Regression | None = None
    bias: Mapping[str, SegmentFlag] = field(default_factory=dict)
    edge_cases: Mapping[str, Count] = field(default_factory=dict)
    baseline_accuracy: float | None = None
    data: DataSummary = DataSummary()
    rolling_24h_by_version: Mapping[str, Mapping[tuple[str, str], Count | Observed]] = field(
        default_factory=dict
    )
    """Per model version (the one being rolled out first, then production), the same keys as
    ``rolling_24h`` restricted to that version's traffic; alerts are checked per version. Empty:
    alerts fall back to ``rolling_24h`` (versions pooled)."""
    drift: Sequence[Drift] = ()
    """Confidence drift per model version (alerts and the thresholds' re-certification)."""

    def __post_init__(self) -> None:
        if self.window_start > self.window_end:
            raise ValueError(
                f"window_start {self.window_start} is after window_end {self.window_end}"
            )
        keys = [*self.rolling_24h, *(k for v in self.rolling_24h_by_version.values() for k in v)]
        for metric, _segment in keys:
            if metric not in ROLLING_METRICS:
                raise ValueError(
                    f"rolling_24h has unknown metric {metric!r}; expected one of "
                    f"{', '.join(ROLLING_METRICS)}"
                )
        for name, mapping in (
            ("accuracy", self.accuracy),
            ("error", self.error),
            ("override", self.override),
            ("edge_cases", self.edge_cases),
        ):
            for key, value in mapping.items():
                if not isinstance(value, Count):
                    raise ValueError(f"{name}[{key!r}] must be a Count, got {value!r}")
        if self.baseline_accuracy is not None and not 0.0 <= self.baseline_accuracy <= 1.0:
            raise ValueError(f"baseline_accuracy must be in [0, 1], got {self.baseline_accuracy!r}")

    def open_incidents(
        self, *, severity: str | None = None, kind: str | None = None
    ) -> list[Incident] | None:
        """Incidents open at the end of ``as_of``, filtered; None when no incident log."""
        if self.incidents is None:
            return None
        return [
            i
            for i in self.incidents
            if i.open_at_end_of(self.as_of)
            and (severity is None or i.severity == severity)
            and (kind is None or i.kind == kind)
        ]
