"""The page around the sections: the Jinja2 environment (autoescaping on) that loads the HTML
skeleton and stylesheet from the templates beside this package (``readiness.html.j2``,
``index.html.j2``, ``_style.css``), the sections and figures the report carries, in page order,
and the legend of the windows the page's numbers come from (`WINDOWS`, `_windows_view`).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import jinja2

from trustramp.report.formatting import MAX_DAYS, _date, fmt_span

if TYPE_CHECKING:
    from trustramp.report import ReportInputs


SECTIONS: tuple[tuple[str, str], ...] = (
    ("verdict", "Verdict"),
    ("timeline", "Phase timeline"),
    ("criteria", "Criteria"),
    ("checklists", "Checklists"),
    ("alerts", "Alerts"),
    ("thresholds", "Thresholds"),
    ("segments", "Segments"),
    ("calibration", "Calibration"),
    ("operations", "Operations"),
    ("feedback", "Feedback"),
    ("data-quality", "Data quality"),
    ("provenance", "Provenance"),
)
"""Section ids of the report, in page order."""
CHART_IDS: tuple[str, ...] = (
    "chart-accuracy",
    "chart-tradeoff",
    "chart-workload",
    "chart-reliability",
    "chart-confidence",
    "chart-latency",
    "chart-error-rate",
    "chart-override-rate",
    "chart-label-coverage",
)
"""Figure ids of the report's charts."""


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("trustramp.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["slug"] = lambda s: re.sub(r"[^a-z0-9]+", "-", str(s).lower()).strip("-")
    return env


WINDOWS: dict[str, tuple[str, str]] = {
    "gate": (
        "gate window",
        "label-matured days: phase criteria, the model checklist, thresholds, data quality",
    ),
    "rolling_24h": ("last 24 h", "alerts and rollback triggers"),
    "monitoring": (
        "monitoring window",
        "segment, mode, version and customer tables, calibration scores, feedback",
    ),
    "replay": ("replay window", "the what-if replay of the logged traffic"),
    "recent": ("last 7 days", "confidence distribution and PSI, against the baseline week"),
    "baseline": ("baseline week", "what the confidence distribution is compared with"),
    "aggregated": ("all aggregated days", "Cohen's kappa"),
    "daily": ("charted days", "the charts over time, one point per day"),
}
"""Window key -> (name, what on the page comes from it), in the order of the page's legend."""


def _day_range(days: Iterable[object]) -> tuple[dt.date, dt.date] | None:
    ds = [d for d in (_date(x) for x in days) if d is not None]
    return (min(ds), max(ds)) if ds else None


def _windows_view(inputs: ReportInputs) -> dict[str, dict[str, str]]:
    """Per window key: its name, its days (readable) and the label numbers carry."""
    v = inputs.verdict
    spans: dict[str, Any] = {k: tuple(s) for k, s in inputs.windows.items()}
    data = v.get("data") or {}
    if "gate" not in spans and (data.get("window_start") or data.get("window_end")):
        spans["gate"] = (data.get("window_start"), data.get("window_end"))
    spans.setdefault("rolling_24h", (v.get("as_of"), v.get("as_of")))
    rp = inputs.whatif
    replay = _day_range(rp.workload["day"]) if rp is not None and len(rp.workload) else None
    if replay:
        spans["replay"] = replay
    elif "monitoring" in spans:
        spans["replay"] = spans["monitoring"]
    m = inputs.metrics
    daily = _day_range(m.loc[m["window"] == "day", "day"].drop_duplicates())
    if daily:
        first = max(daily[0], daily[1] - dt.timedelta(days=MAX_DAYS - 1))
        spans["daily"] = (first, daily[1])
    out: dict[str, dict[str, str]] = {}
    for key, (name, what) in WINDOWS.items():
        lo, hi = spans.get(key) or (None, None)
        dates = fmt_span(lo, hi) if (_date(lo) or _date(hi)) else ""
        out[key] = {
            "key": key,
            "name": name,
            "dates": dates,
            "label": f"{name}, {dates}" if dates else name,
            "what": what,
            "known": str(bool(dates or key in spans)).lower(),
        }
    return out
