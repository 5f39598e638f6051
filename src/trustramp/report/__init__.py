"""The HTML readiness report (SPEC 4): one self-contained, offline page per run, and an index.

The report reads only computed results (`ReportInputs`): the verdict document, the tidy metrics
table, the threshold recommendation and a few small frames the pipeline prepares. It never opens
the lake or the catalog. Charts are inline SVG drawn in Python (`trustramp.report.charts`); the
page carries no script, font, image or style from anywhere else, and everything that came from
the data is escaped (Jinja2 autoescaping, and `markupsafe.escape` inside the SVG).

The package is split by the page's sections: `render` assembles the page from one module per
section (`verdict`: verdict, timeline, criteria, checklists; `alerts`; `thresholds`: routing bands
and the what-if replay; `segments`; `calibration`; `feedback`; `provenance`: data quality and
provenance), `daily` prepares the charts over days, `charts` draws them on `svg`'s canvas, `page`
holds the templates' environment and the legend of windows, and `index` writes the index of past
runs; `formatting` and `frames` are the bottom every section imports. Imports numpy, pandas,
Jinja2, markupsafe and `trustramp.contract` (`trustramp.decide` for type hints only); never
DuckDB, Prefect, `trustramp.store` or the lake.

Typical use::

    from trustramp.report import ReportInputs, write_index, write_report

    inputs = ReportInputs(verdict=verdict.to_dict(), metrics=table, thresholds=rec, ...)
    write_report(inputs, run_dir / "readiness.html")
    write_index(reports_dir)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from trustramp.decide.thresholds import (
        GroupRecommendation,
        Replay,
        ThresholdRecommendation,
    )

__all__ = [
    "METRIC_COLUMNS",
    "ReportInputs",
    "render_index",
    "render_report",
    "write_index",
    "write_report",
]

from trustramp.contract import METRIC_COLUMNS

VERDICT_KEYS: tuple[str, ...] = ("feature", "as_of", "verdict", "phase", "reasons")
"""Keys of the verdict document the report cannot do without."""
VERDICTS: tuple[str, ...] = ("GO", "HOLD", "PAUSE", "ROLLBACK")

_FRAME_COLUMNS: dict[str, tuple[str, ...]] = {
    "reliability": ("bin", "lo", "hi", "n", "accuracy", "mean_confidence"),
    "confidence_hist": ("bin", "lo", "hi", "current", "baseline"),
    "tradeoff": ("threshold", "share", "accuracy", "ci_low", "ci_high"),
}


@dataclass(frozen=True)
class ReportInputs:
    """Everything the readiness report shows: computed results only, no raw rows.

    Attributes
    ----------
    verdict : mapping
        ``Verdict.to_dict()`` (``verdict.json``): the SPEC 2 keys plus its extras (``segments``,
        ``procedure``, ``confidence_level``, ``min_days``, ``days_in_phase``, ``kill_switch``,
        ``model_version``, ``mode``, ``audience``); ``data.quarantined_by_reason`` when present.
    metrics : pandas.DataFrame
        The tidy metrics table (`METRIC_COLUMNS`). Rows with ``window == "day"`` feed the time
        series (``segment`` set and ``model_version``/``mode``/``customer_id`` null: per segment;
        all null: overall); rows with ``window == "window"`` feed the tables.
    thresholds : ThresholdRecommendation, optional
        The recommended routing thresholds (after the progression stage).
    segment_thresholds : GroupRecommendation, optional
        Per-segment recommendations (``by="segment"``).
    whatif : Replay, optional
        The recommended policy replayed against the current one (``policy`` proposed/current).
    stage : str, optional
        The playbook's progression stage: ``conservative``, ``moderate`` or ``optimized``.
    reliability : pandas.DataFrame, optional
        One row per ECE bin of the gate population: ``bin, lo, hi, n, accuracy,
        mean_confidence``.
    confidence_hist : pandas.DataFrame, optional
        ``bin, lo, hi, current, baseline``: shares of predictions per confidence bin (each
        column sums to 1; baseline may be NaN when there is no baseline window).
    tradeoff : pandas.DataFrame, optional
        The auto band's automation/accuracy curve, one row per grid threshold: ``threshold,
        share, accuracy, ci_low, ci_high`` (and ``p_value``).
    alert_levels : mapping of str to (float, float)
        Metric → (warning, critical) levels drawn on the time series (latency in ms).
    ingest : mapping
        ``{"ingested": {kind: rows}, "quarantined": {reason: rows}}``; without ``quarantined``
        the verdict's ``data.quarantined_by_reason`` is shown.
    provenance : mapping
        ``run_id, generated_at, config_hash, trustramp_version, data_window, home`` (any other
        keys are shown too).
    escalation : sequence of mapping
        The escalation path (``step, role, what, within_minutes``), shown when no alert carries
        it; defaults to the path of the first alert.
    feedback : mapping, optional
        ``positive, ratings, nps`` and optionally ``comments`` (at most the first 8 are shown:
        ``submitted_at, segment, customer_id, rating, comment``).
    incidents : sequence of mapping
        Open incidents: ``incident_id, severity, kind, title, opened_at, resolved_at`` (at most 10
        are shown).
    recalibration : object, optional
        A `trustramp.decide.recalibration.Recalibration` (``chosen.name, ece_before, ece_after,
        n_holdout``) when calibration is poor.
    controlled_steps : sequence of int, default (10, 25, 50)
        The controlled phase's rollout percentages (``config.phases[controlled].steps``), for
        the phase timeline.
    windows : mapping of str to (date, date)
        The first and last day (inclusive) of each window the numbers come from: ``gate``
        (label-matured; criteria, checklists, thresholds), ``monitoring`` (the tables),
        ``rolling_24h`` (alerts), ``recent`` and ``baseline`` (confidence distribution and
        PSI), ``aggregated`` (every day aggregated: kappa). The page names each number's window
        with these dates; a missing window is named without them (``gate`` falls back to the
        verdict's ``data.window_start/end``, ``rolling_24h`` to ``as_of``).
    """

    verdict: Mapping[str, Any]
    metrics: pd.DataFrame
    thresholds: ThresholdRecommendation | None = None
    segment_thresholds: GroupRecommendation | None = None
    whatif: Replay | None = None
    stage: str | None = None
    reliability: pd.DataFrame | None = None
    confidence_hist: pd.DataFrame | None = None
    tradeoff: pd.DataFrame | None = None
    alert_levels: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    ingest: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    escalation: Sequence[Mapping[str, Any]] = ()
    feedback: Mapping[str, Any] | None = None
    incidents: Sequence[Mapping[str, Any]] = ()
    recalibration: Any | None = None
    controlled_steps: Sequence[int] = (10, 25, 50)
    windows: Mapping[str, Sequence[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.verdict, Mapping):
            raise TypeError(
                f"verdict must be a mapping (Verdict.to_dict()), got {type(self.verdict).__name__}"
            )
        missing = [k for k in VERDICT_KEYS if k not in self.verdict]
        if missing:
            raise ValueError(f"verdict is missing key(s) {missing}; expected Verdict.to_dict()")
        if self.verdict["verdict"] not in VERDICTS:
            raise ValueError(
                f"verdict['verdict'] must be one of {', '.join(VERDICTS)}, "
                f"got {self.verdict['verdict']!r}"
            )
        _check_frame("metrics", self.metrics, METRIC_COLUMNS)
        for name, columns in _FRAME_COLUMNS.items():
            frame = getattr(self, name)
            if frame is not None:
                _check_frame(name, frame, columns)
        for name, span in self.windows.items():
            if not (isinstance(span, Sequence) and not isinstance(span, str) and len(span) == 2):
                raise ValueError(f"windows[{name!r}] must be (first day, last day), got {span!r}")
        for metric, levels in self.alert_levels.items():
            if not (isinstance(levels, Sequence) and len(levels) == 2):
                raise ValueError(
                    f"alert_levels[{metric!r}] must be (warning, critical), got {levels!r}"
                )


def _check_frame(name: str, frame: object, columns: Sequence[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; got {list(frame.columns)}")


# The renderer needs ReportInputs defined above; import it last.
from trustramp.report.render import (  # noqa: E402
    render_index,
    render_report,
    write_index,
    write_report,
)
