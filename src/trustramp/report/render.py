"""Render the readiness report and the index of past runs (SPEC 4).

`render_report` turns `ReportInputs` into one HTML page: one module per section reduces the
inputs to small, already formatted *views* (plain dicts and lists of strings): `verdict`
(verdict, timeline, criteria, checklists), `alerts`, `thresholds` (routing bands and the what-if
replay), `segments`, `calibration`, `feedback`, `provenance` (data quality and provenance); the
charts module draws the SVG (`daily` prepares the charts over days), and the Jinja2 templates
(autoescaping on; `page`) lay them out. Only the SVG reaches the templates as markup; every other
value is escaped by the template engine. This module assembles the page; the index of past runs
is `trustramp.report.index`.

The page stays small whatever the data size: time series show the last `MAX_DAYS` days and at
most `MAX_SERIES` segments, tables are capped (`MAX_SEGMENT_ROWS`, `MAX_CUSTOMER_ROWS`,
`MAX_CRITERIA_ROWS`, `MAX_ALERT_ROWS`, `MAX_REASONS`) and say how many rows they leave out;
``verdict.json`` beside the page has them all.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustramp.report import charts as ch
from trustramp.report.alerts import _alerts_view
from trustramp.report.calibration import _calibration_view
from trustramp.report.daily import MAX_SERIES, _accuracy_panels, _chart_segments, _ops_chart
from trustramp.report.feedback import _feedback_view
from trustramp.report.formatting import (
    MAX_DAYS,
    MAX_SEGMENT_ROWS,
    MISSING,
    fmt_date,
    fmt_datetime,
    fmt_pct,
    fmt_span,
    readable,
)
from trustramp.report.frames import _frame_records
from trustramp.report.index import render_index, write_index
from trustramp.report.page import CHART_IDS, SECTIONS, _env, _windows_view
from trustramp.report.provenance import _data_view, _provenance_view
from trustramp.report.segments import (
    MAX_CUSTOMER_ROWS,
    _customers_view,
    _modes_view,
    _segment_table,
    _versions_view,
)
from trustramp.report.thresholds import (
    _recertify,
    _segment_thresholds_view,
    _thresholds_view,
    _tradeoff_chart,
    _whatif_view,
    _workload_chart,
)
from trustramp.report.verdict import (
    _checklists_view,
    _criteria_view,
    _timeline_view,
    _verdict_view,
)

if TYPE_CHECKING:
    from trustramp.report import ReportInputs

__all__ = [
    "CHART_IDS",
    "MAX_CUSTOMER_ROWS",
    "MAX_DAYS",
    "MAX_SEGMENT_ROWS",
    "MAX_SERIES",
    "MISSING",
    "SECTIONS",
    "fmt_date",
    "fmt_datetime",
    "fmt_span",
    "readable",
    "render_index",
    "render_report",
    "write_index",
    "write_report",
]


def _figures(inputs: ReportInputs, segments: Sequence[str]) -> dict[str, Any]:
    rel = _frame_records(inputs.reliability)
    return {
        "accuracy": _accuracy_panels(inputs, segments),
        "tradeoff": _tradeoff_chart(inputs),
        "workload": _workload_chart(inputs),
        "reliability": ch.reliability_chart("chart-reliability", rel),
        "confidence": ch.bar_histogram_chart(
            "chart-confidence", _frame_records(inputs.confidence_hist)
        ),
        "latency": _ops_chart(
            inputs,
            "chart-latency",
            "latency_p95",
            segments,
            title="Daily p95 latency",
            y_label="p95 latency (s)",
            scale=1 / 1000,
            y_format="num",
            y_range=(0.0, None),
        ),
        "error_rate": _ops_chart(
            inputs,
            "chart-error-rate",
            "error_rate",
            segments,
            title="Daily error rate (errors and timeouts)",
            y_label="error rate",
        ),
        "override_rate": _ops_chart(
            inputs,
            "chart-override-rate",
            "override_rate",
            segments,
            title="Daily override rate of shown suggestions",
            y_label="override rate",
        ),
        "label_coverage": _ops_chart(
            inputs,
            "chart-label-coverage",
            "label_coverage",
            segments,
            title="Daily label coverage",
            y_label="labeled / predicted",
            shade=True,
        ),
    }


def render_report(inputs: ReportInputs) -> str:
    """The readiness report for one run as a self-contained HTML page.

    Parameters
    ----------
    inputs : ReportInputs
        The run's computed results.

    Returns
    -------
    str
        The HTML document (no scripts; styles inline; charts as inline SVG).
    """
    from trustramp.report import ReportInputs

    if not isinstance(inputs, ReportInputs):
        raise TypeError(f"inputs must be a ReportInputs, got {type(inputs).__name__}")
    v = inputs.verdict
    segments, more = _chart_segments(inputs.metrics, v)
    ctx = {
        "v": _verdict_view(v),
        "timeline": _timeline_view(v, inputs.controlled_steps),
        "criteria": _criteria_view(v),
        "checklists": _checklists_view(v),
        "alerts": _alerts_view(v, inputs.escalation),
        "thresholds": _thresholds_view(inputs),
        "recertify": _recertify(v),
        "segment_thresholds": _segment_thresholds_view(inputs),
        "whatif": _whatif_view(inputs),
        "segments": _segment_table(inputs),
        "modes": _modes_view(inputs.metrics),
        "versions": _versions_view(inputs.metrics),
        "customers": _customers_view(inputs.metrics),
        "calibration": _calibration_view(inputs),
        "data": _data_view(inputs),
        "feedback": _feedback_view(inputs),
        "provenance": _provenance_view(inputs),
        "fig": _figures(inputs, segments),
        "chart_segments": segments,
        "more_segments": more,
        "max_days": MAX_DAYS,
        "level": fmt_pct(v.get("confidence_level") or 0.95, 0),
        "W": _windows_view(inputs),
        "sections": SECTIONS,
        "colours": ch.VERDICT_COLOURS,
    }
    return _env().get_template("readiness.html.j2").render(**ctx)


def write_report(inputs: ReportInputs, path: str | os.PathLike[str]) -> Path:
    """Render the report and write it to ``path``.

    ``path`` is the file to write, or a folder (an existing one, or a path without a suffix such
    as ``reports/<feature>/<as-of>``) to write ``readiness.html`` into; folders are created.

    The file is written next to its final name and renamed into place, so a reader never sees
    half a page.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    target = Path(path)
    if target.is_dir() or not target.suffix:
        target = target / "readiness.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    html = render_report(inputs)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, target)
    return target
