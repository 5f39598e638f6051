"""Render the readiness report and the index of past runs (SPEC 4).

`render_report` turns `ReportInputs` into one HTML page: the functions below reduce the inputs
to small, already formatted *views* (plain dicts and lists of strings), the charts module draws
the SVG, and the Jinja2 templates (autoescaping on) lay them out. Only the SVG reaches the
templates as markup; every other value is escaped by the template engine.

The page stays small whatever the data size: time series show the last `MAX_DAYS` days and at
most `MAX_SERIES` segments, tables are capped (`MAX_SEGMENT_ROWS`, `MAX_CUSTOMER_ROWS`,
`MAX_CRITERIA_ROWS`, `MAX_ALERT_ROWS`, `MAX_REASONS`) and say how many rows they leave out;
``verdict.json`` beside the page has them all.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from trustramp.report import charts as ch

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

log = logging.getLogger(__name__)

MAX_DAYS = 60
"""Days shown in the time series (the most recent ones)."""
MAX_SERIES = 6
"""Segments drawn in the charts (rollout order first, then by traffic)."""
MAX_SEGMENT_ROWS = 30
MAX_CUSTOMER_ROWS = 12
MAX_CRITERIA_ROWS = 60
MAX_ALERT_ROWS = 40
MAX_REASONS = 30
MAX_COMMENTS = 8
MAX_INCIDENTS = 10
MAX_INDEX_RUNS = 120
"""Runs listed per feature on the index page (newest first)."""

PHASES: tuple[str, ...] = ("shadow", "dogfood", "limited_beta", "controlled", "ga")
PHASE_LABELS: dict[str, str] = {
    "shadow": "Shadow mode",
    "dogfood": "Internal dogfood",
    "limited_beta": "Limited beta",
    "controlled": "Controlled rollout",
    "ga": "General availability",
}
PHASE_NOTES: dict[str, str] = {
    "shadow": "AI runs silently on all traffic",
    "dogfood": "internal users",
    "limited_beta": "5–10 opted-in customers, suggestion mode",
    "controlled": "of eligible users",
    "ga": "100% of eligible users",
}
CHECKLIST_TITLES: dict[str, str] = {
    "model": "Model readiness",
    "infrastructure": "Infrastructure readiness",
    "user": "User readiness",
}
STAGE_TEXT: dict[str, str] = {
    "conservative": "weeks 1–2 of the phase: conservative, everything to human review",
    "moderate": "weeks 3–4 of the phase: moderate, auto-process only at high confidence",
    "optimized": "week 5 on: optimized from observed performance",
}
PROPORTIONS = frozenset(
    {
        "accuracy",
        "label_coverage",
        "override_rate",
        "error_rate",
        "availability",
        "positive_feedback_share",
        "accepted_wrong_rate",
    }
)
SCORES = frozenset({"ece", "ece_equal_mass", "mce", "brier", "log_loss", "kappa", "psi"})
DIMS: tuple[str, ...] = ("model_version", "segment", "customer_id", "mode")
COMPARATORS = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "="}

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


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def _finite(v: object) -> TypeGuard[float]:
    """True for a finite number (bools, None, NaN, infinities and text are not)."""
    if v is None or isinstance(v, bool | str):
        return False
    try:
        return math.isfinite(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def fmt_pct(v: object, digits: int = 1) -> str:
    """``0.9234`` → ``92.3%``; missing → ``n/a``."""
    return f"{100 * float(v):.{digits}f}%" if _finite(v) else "n/a"


def fmt_int(v: object) -> str:
    return f"{float(v):,.0f}" if _finite(v) else "n/a"


def fmt_threshold(v: object) -> str:
    return f"{float(v):.2f}" if _finite(v) else "none"


def fmt_value(metric: str | None, v: object) -> str:
    """A metric value in its natural unit (percent, ms or s, count, score).

    Examples
    --------
    >>> fmt_value("accuracy", 0.9234), fmt_value("latency_p95", 5200.0), fmt_value("ece", 0.0412)
    ('92.3%', '5.20 s', '0.041')
    >>> fmt_value("open_critical_bugs", 0), fmt_value("accuracy", None)
    ('0', 'n/a')
    """
    if not _finite(v):
        return "n/a"
    x = float(v)
    metric = metric or ""
    if metric in PROPORTIONS or metric.endswith(("_rate", "_share", "_coverage")):
        return fmt_pct(x)
    if metric.startswith("latency"):
        return f"{x / 1000:.2f} s" if x >= 1000 else f"{x:.0f} ms"
    if metric.startswith(("open_", "n_")):
        return f"{x:,.0f}"
    if metric in SCORES:
        return f"{x:.3f}"
    return f"{x:.3g}"


def fmt_interval(metric: str | None, lo: object, hi: object) -> str:
    if not (_finite(lo) and _finite(hi)):
        return ""
    return f"[{fmt_value(metric, lo)}, {fmt_value(metric, hi)}]"


def phase_label(phase: str | None, step: object = None) -> str:
    """The phase's name for people, with the percentage in the controlled phase.

    Examples
    --------
    >>> phase_label("controlled", 25), phase_label("limited_beta")
    ('Controlled rollout 25%', 'Limited beta')
    """
    label = PHASE_LABELS.get(str(phase), str(phase))
    return f"{label} {step}%" if phase == "controlled" and _finite(step) else label


def _date(v: object) -> dt.date | None:
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    try:
        ts = pd.Timestamp(v)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(ts) else ts.date()


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MISSING = "—"
"""What the page shows for a missing date or time."""


def _missing(v: object) -> bool:
    if v is None or (isinstance(v, str) and not v.strip()):
        return True
    try:
        return bool(pd.isna(v))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False


def fmt_date(v: object) -> str:
    """A day for people: ``20 Nov 2026``; missing → ``—``.

    Examples
    --------
    >>> fmt_date("2026-11-20"), fmt_date(dt.datetime(2026, 1, 2, 3, 4)), fmt_date(None)
    ('20 Nov 2026', '2 Jan 2026', '—')
    """
    d = None if _missing(v) else _date(v)
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year}" if d else MISSING


def fmt_datetime(v: object) -> str:
    """A moment for people, in UTC to the minute: ``2026-11-20 14:03 UTC``; a plain date as
    `fmt_date`; missing (None, NaN, NaT, empty) → ``—``.

    Examples
    --------
    >>> fmt_datetime("2026-11-20T14:03:59.9+01:00"), fmt_datetime("2026-11-20")
    ('2026-11-20 13:03 UTC', '20 Nov 2026')
    >>> fmt_datetime(pd.NaT), fmt_datetime(float("nan"))
    ('—', '—')
    """
    if _missing(v):
        return MISSING
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return fmt_date(v)
    if isinstance(v, str) and re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", v):
        return fmt_date(v)
    try:
        ts = pd.Timestamp(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)
    if pd.isna(ts):
        return MISSING
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%d %H:%M UTC")


def fmt_span(start: object, end: object) -> str:
    """Days from `start` to `end` (inclusive) for people: ``4–13 Nov 2026``, ``28 Oct – 3 Nov
    2026``, one day as ``20 Nov 2026``; both missing → ``—``.

    Examples
    --------
    >>> fmt_span("2026-11-04", "2026-11-13"), fmt_span("2026-10-28", "2026-11-03")
    ('4–13 Nov 2026', '28 Oct – 3 Nov 2026')
    >>> fmt_span("2025-12-30", "2026-01-02"), fmt_span("2026-11-20", "2026-11-20")
    ('30 Dec 2025 – 2 Jan 2026', '20 Nov 2026')
    """
    a = None if _missing(start) else _date(start)
    b = None if _missing(end) else _date(end)
    if a is None or b is None:
        return fmt_date(a or b)
    if a == b:
        return fmt_date(a)
    if (a.year, a.month) == (b.year, b.month):
        return f"{a.day}–{b.day} {_MONTHS[b.month - 1]} {b.year}"
    if a.year == b.year:
        return f"{a.day} {_MONTHS[a.month - 1]} – {fmt_date(b)}"
    return f"{fmt_date(a)} – {fmt_date(b)}"


_ISO_TIME = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
_ISO_DAY = r"\d{4}-\d{2}-\d{2}"
_READABLE = re.compile(
    rf"(?P<span>(?<![\w-])(?P<a>{_ISO_DAY})\s*(?:\.\.|to|–)\s*(?P<b>{_ISO_DAY})(?![\w:-]))"
    rf"|(?P<time>(?<![\w-]){_ISO_TIME}(?![\w:-]))"
    rf"|(?P<day>(?<![\w-]){_ISO_DAY}(?![\w:-]))"
)


def readable(text: object) -> str:
    """Text written by trustramp with its ISO dates, spans and timestamps made readable.

    Examples
    --------
    >>> readable("items of model v2, 2026-11-04..2026-11-13, as of 2026-11-20")
    'items of model v2, 4–13 Nov 2026, as of 20 Nov 2026'
    >>> readable("opened 2026-11-18T11:30:00+00:00")
    'opened 2026-11-18 11:30 UTC'
    """

    def one(m: re.Match[str]) -> str:
        if m["span"]:
            return fmt_span(m["a"], m["b"])
        return fmt_datetime(m["time"]) if m["time"] else fmt_date(m["day"])

    return _READABLE.sub(one, _text(text))


def _text(v: object) -> str:
    """A value as display text (None, NaN and NaT as empty; dates and times readable)."""
    if not isinstance(v, Mapping | list | tuple) and _missing(v):
        return ""
    if isinstance(v, dt.datetime | pd.Timestamp):
        return fmt_datetime(v)
    if isinstance(v, dt.date):
        return fmt_date(v)
    if isinstance(v, Mapping | list | tuple):
        return json.dumps(v, default=str, ensure_ascii=False)
    return str(v)


# --------------------------------------------------------------------------------------------
# Views: verdict, timeline, criteria, checklists, alerts
# --------------------------------------------------------------------------------------------


def _next_label(v: Mapping[str, Any]) -> str:
    nxt = v.get("next") or {}
    return phase_label(nxt.get("phase"), nxt.get("step"))


_SHOWN_IN_ROLLBACK_BLOCK = (
    "Rollback (",
    "Engage the kill switch now",
    "The kill switch is already engaged",
)


def _verdict_view(v: Mapping[str, Any]) -> dict[str, Any]:
    kind = v["verdict"]
    here = phase_label(v.get("phase"), v.get("step"))
    nxt = _next_label(v)
    reasons = [readable(r) for r in v.get("reasons") or []]
    lead = ""
    fired = [t for t in v.get("rollback_triggers") or [] if t.get("fired")]
    procedure = [str(p) for p in v.get("procedure") or []]
    kill = bool(v.get("kill_switch"))
    if kind == "GO":
        if v.get("phase") == "ga":
            headline = "sustained at general availability; stay at 100%"
        else:
            headline = f"advance from {here} to {nxt}"
    elif kind == "HOLD":
        headline = f"stay in {here}; do not advance to {nxt} yet"
        if reasons and reasons[0].startswith("The rollout holds"):
            lead, reasons = reasons[0], reasons[1:]
    elif kind == "PAUSE":
        headline = f"do not widen the audience beyond {here}"
    else:
        headline = (
            "keep the kill switch engaged and finish the manual rollback procedure"
            if kill
            else "engage the kill switch now and roll back"
        )
        # The triggers and the kill-switch instruction have their own block above the reasons.
        reasons = [r for r in reasons if not r.startswith(_SHOWN_IN_ROLLBACK_BLOCK)]
    return {
        "kind": kind,
        "css": kind.lower(),
        "headline": headline,
        "lead": lead,
        "reasons": reasons[:MAX_REASONS],
        "more_reasons": max(0, len(reasons) - MAX_REASONS),
        "triggers": [
            {"trigger": _text(t.get("trigger")), "evidence": readable(t.get("evidence"))}
            for t in fired
        ],
        "procedure": procedure,
        "kill_switch": kill,
        "feature": _text(v.get("feature")),
        "as_of": fmt_date(v.get("as_of")),
        "where": here,
        "model_version": _text(v.get("model_version")),
    }


def _timeline_steps(
    phase: str, step: object, nxt: Mapping[str, Any], configured: Sequence[int]
) -> list[tuple[str, Any]]:
    steps: list[int] = [int(s) for s in configured]
    for s in (step if phase == "controlled" else None, nxt.get("step")):
        if _finite(s) and int(s) not in steps:
            steps.append(int(s))
    out: list[tuple[str, Any]] = []
    for p in PHASES:
        if p == "controlled":
            out += [(p, s) for s in sorted(steps)]
        else:
            out.append((p, None))
    return out


def _blocking_items(v: Mapping[str, Any], target_phase: str | None) -> list[dict[str, str]]:
    if target_phase not in PHASES:
        return []
    t = PHASES.index(target_phase)
    out = []
    for name, items in (v.get("checklists") or {}).items():
        for i in items or []:
            blocks = i.get("blocks")
            if i.get("status") != "done" and blocks in PHASES and t >= PHASES.index(blocks):
                out.append(
                    {
                        "checklist": CHECKLIST_TITLES.get(name, str(name)),
                        "item": _text(i.get("item")),
                        "status": _text(i.get("status")),
                    }
                )
    return out


def _timeline_view(v: Mapping[str, Any], controlled_steps: Sequence[int]) -> dict[str, Any]:
    phase, step = v.get("phase"), v.get("step")
    nxt = v.get("next") or {}
    steps = _timeline_steps(str(phase), step, nxt, controlled_steps)
    here = (phase, int(step) if phase == "controlled" and _finite(step) else None)
    there = (nxt.get("phase"), int(nxt["step"]) if _finite(nxt.get("step")) else None)
    cur = steps.index(here) if here in steps else -1
    out = []
    for i, (p, s) in enumerate(steps):
        if i == cur:
            state = "current"
        elif (p, s) == there and i > cur:
            state = "next"
        elif i < cur:
            state = "done"
        else:
            state = "later"
        note = f"{s}% {PHASE_NOTES[p]}" if p == "controlled" else PHASE_NOTES.get(p, "")
        out.append({"label": phase_label(p, s), "note": note, "state": state})
    criteria = [
        {
            "name": _text(c.get("name")),
            "segment": _text(c.get("segment")),
            "outcome": _text(c.get("outcome")),
        }
        for c in v.get("criteria") or []
    ]
    days, min_days = v.get("days_in_phase"), v.get("min_days")
    if _finite(min_days):
        so_far = f"{int(days)} so far" if _finite(days) else "phase start unknown"
        duration = f"at least {int(min_days)} days in the phase ({so_far})"
    else:
        duration = ""
    final = phase == "ga"
    return {
        "steps": out,
        "next": _next_label(v),
        "final": final,
        "criteria": _summarize_criteria(criteria),
        "duration": duration,
        "blocking": _blocking_items(v, nxt.get("phase")),
        "mode": _text(v.get("mode")),
        "audience": _text(v.get("audience")),
    }


def _summarize_criteria(criteria: list[dict[str, str]]) -> list[dict[str, str]]:
    """Per criterion name: how many segments pass (so 'each segment' rows read as one line)."""
    by_name: dict[str, list[str]] = {}
    for c in criteria:
        by_name.setdefault(c["name"], []).append(c["outcome"])
    out = []
    for name, outcomes in by_name.items():
        n_pass = sum(o == "pass" for o in outcomes)
        if len(outcomes) == 1:
            status = outcomes[0]
        elif n_pass == len(outcomes):
            status = "pass"
        else:
            status = "fail" if "fail" in outcomes else "insufficient"
        detail = f"{n_pass} of {len(outcomes)} segments pass" if len(outcomes) > 1 else ""
        out.append({"name": name, "outcome": status, "detail": detail})
    return out


def _criterion_row(c: Mapping[str, Any]) -> dict[str, str]:
    metric = c.get("metric")
    comp = COMPARATORS.get(str(c.get("comparator")), _text(c.get("comparator")))
    needed = c.get("needed")
    return {
        "name": _text(c.get("name")),
        "metric": _text(metric),
        "segment": _text(c.get("segment")),
        "value": fmt_value(metric, c.get("value")),
        "interval": fmt_interval(metric, c.get("ci_low"), c.get("ci_high")),
        "n": fmt_int(c.get("n")),
        "requirement": f"{comp} {fmt_value(metric, c.get('threshold'))}",
        "outcome": _text(c.get("outcome")),
        "detail": readable(c.get("detail")),
        "window": _text(c.get("window")),
        "needed": f"needs ≈{int(needed):,} items" if _finite(needed) else "",
    }


_OUTCOME_ORDER = {"fail": 0, "insufficient": 1, "pass": 2}


def _criteria_view(v: Mapping[str, Any]) -> dict[str, Any]:
    rows = [_criterion_row(c) for c in v.get("criteria") or []]
    omitted: dict[str, int] = {}
    if len(rows) > MAX_CRITERIA_ROWS:  # keep what blocks; leave out passing rows first
        rows.sort(key=lambda r: _OUTCOME_ORDER.get(r["outcome"], 3))
        for r in rows[MAX_CRITERIA_ROWS:]:
            omitted[r["outcome"]] = omitted.get(r["outcome"], 0) + 1
        rows = rows[:MAX_CRITERIA_ROWS]
    level = v.get("confidence_level")
    return {
        "rows": rows,
        "omitted": ", ".join(f"{n} {o}" for o, n in omitted.items()),
        "level": fmt_pct(level, 0) if _finite(level) else "the configured",
    }


def _checklists_view(v: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    lists = v.get("checklists") or {}
    for name in ("model", "infrastructure", "user"):
        items = [
            {
                "item": _text(i.get("item")),
                "status": _text(i.get("status")),
                "css": _text(i.get("status")).replace(" ", "-"),
                "evidence": readable(i.get("evidence")),
                "owner": _text(i.get("owner")),
                "blocks": phase_label(i.get("blocks")),
            }
            for i in lists.get(name) or []
        ]
        done = sum(i["status"] == "done" for i in items)
        out.append(
            {"title": CHECKLIST_TITLES[name], "entries": items, "done": done, "total": len(items)}
        )
    return out


_LEVEL_ORDER = {"critical": 0, "warning": 1}


def _escalation_steps(steps: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    out = []
    for e in steps:
        within = e.get("within_minutes")
        out.append(
            {
                "role": _text(e.get("role")),
                "what": _text(e.get("what")),
                "within": (
                    "immediately"
                    if within == 0
                    else (f"within {int(within)} min" if _finite(within) else "")
                ),
            }
        )
    return out


def _bound(a: Mapping[str, Any]) -> str:
    """An alert's one-sided bound on its alerting side: ``≤ 86.1%`` for accuracy (the upper
    bound), ``≥ 4.0%`` for the others; '' without one."""
    if not _finite(a.get("bound")):
        return ""
    return ("≤ " if a.get("metric") == "accuracy" else "≥ ") + fmt_value(
        a.get("metric"), a["bound"]
    )


def _alerts_view(v: Mapping[str, Any], escalation: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    alerts = list(v.get("alerts") or [])
    alerts.sort(key=lambda a: (_LEVEL_ORDER.get(a.get("level") or "", 2), str(a.get("metric"))))
    rows = []
    for a in alerts[:MAX_ALERT_ROWS]:
        metric = a.get("metric")
        firing = a.get("level") in ("warning", "critical")
        rows.append(
            {
                "level": _text(a.get("level")) if firing else "no data",
                "css": _text(a.get("level")) if firing else "insufficient",
                "metric": _text(metric),
                "segment": _text(a.get("segment")),
                "model_version": _text(a.get("model_version")),
                "value": fmt_value(metric, a.get("value")),
                "threshold": fmt_value(metric, a.get("threshold")),
                "bound": _bound(a),
                "n": fmt_int(a.get("n")),
                "action": _text(a.get("action")) if firing else "collect more data",
                "message": readable(a.get("message")),
            }
        )
    path = next((a.get("escalation") for a in alerts if a.get("escalation")), None) or escalation
    triggers = [
        {
            "trigger": _text(t.get("trigger")),
            "fired": bool(t.get("fired")),
            "evidence": readable(t.get("evidence")),
        }
        for t in v.get("rollback_triggers") or []
    ]
    return {
        "rows": rows,
        "versions": any(r["model_version"] for r in rows),
        "bounds": any(r["bound"] for r in rows),
        "omitted": max(0, len(alerts) - MAX_ALERT_ROWS),
        "firing": sum(r["css"] in ("warning", "critical") for r in rows),
        "escalation": _escalation_steps(path or []),
        "triggers": triggers,
    }


# --------------------------------------------------------------------------------------------
# Metrics helpers
# --------------------------------------------------------------------------------------------


def _rows(
    m: pd.DataFrame,
    *,
    window: str,
    metrics: str | Sequence[str] | None = None,
    present: Sequence[str] = (),
) -> pd.DataFrame:
    """Rows of one window whose dimensions in ``present`` are set and all others null."""
    mask = m["window"] == window
    if metrics is not None:
        mask &= m["metric"].isin([metrics] if isinstance(metrics, str) else list(metrics))
    for d in DIMS:
        mask &= m[d].notna() if d in present else m[d].isna()
    return m[mask]


def _by(frame: pd.DataFrame, key: str | None) -> dict[Any, dict[str, dict[str, Any]]]:
    """``{key value: {metric: {value, ci_low, ci_high, n}}}`` (key None: one group)."""
    out: dict[Any, dict[str, dict[str, Any]]] = {}
    for rec in frame.to_dict("records"):
        k = rec[key] if key else None
        out.setdefault(k, {})[rec["metric"]] = rec
    return out


def _chart_segments(m: pd.DataFrame, v: Mapping[str, Any]) -> tuple[list[str], int]:
    """Segments to draw: rollout order first, then by labeled items; and how many are left."""
    day = _rows(m, window="day", metrics="accuracy", present=("segment",))
    win = _rows(m, window="window", metrics="accuracy", present=("segment",))
    n = pd.concat([day, win])[["segment", "n"]].groupby("segment")["n"].max()
    present = [str(s) for s in n.index]
    order = [s for s in (v.get("segments") or {}).get("order") or [] if s in present]
    rest = sorted((s for s in present if s not in order), key=lambda s: (-int(n[s]), s))
    chosen = (order + rest)[:MAX_SERIES]
    return chosen, len(present) - len(chosen)


def _style(i: int) -> dict[str, str]:
    return {
        "colour": ch.PALETTE[i % len(ch.PALETTE)],
        "dash": ch.DASHES[i % len(ch.DASHES)],
        "marker": ch.MARKERS[i % len(ch.MARKERS)],
    }


def _daily(
    m: pd.DataFrame, metric: str, segments: Sequence[str], *, scale: float = 1.0
) -> tuple[list[dt.date], dict[str | None, pd.DataFrame]]:
    """Per-day rows of a metric (overall under None), reindexed on the last `MAX_DAYS` days."""
    keep = (m["window"] == "day") & (m["metric"] == metric)
    for dim in ("model_version", "mode", "customer_id"):
        keep &= m[dim].isna()
    # One filter, of the columns used (filtering the whole table's string columns again and
    # again was most of the report's rendering time).
    d = m.loc[keep, ["segment", "day", "value", "ci_low", "ci_high", "n"]]
    if d.empty:
        return [], {}
    days = d["day"].map(_date)
    d = d.assign(day=days).dropna(subset=["day"])
    if d.empty:
        return [], {}
    last = max(d["day"])
    first = max(min(d["day"]), last - dt.timedelta(days=MAX_DAYS - 1))
    axis = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    out: dict[str | None, pd.DataFrame] = {}
    groups: list[tuple[str | None, pd.DataFrame]] = [(None, d[d["segment"].isna()])]
    groups += [(s, d[d["segment"] == s]) for s in segments]
    for key, g in groups:
        if g.empty:
            continue
        g = g.drop_duplicates("day", keep="last").set_index("day")
        g = g[["value", "ci_low", "ci_high", "n"]].astype(float).reindex(axis)
        g[["value", "ci_low", "ci_high"]] *= scale
        out[key] = g
    return axis, out


def _series(
    axis: list[dt.date], frame: pd.DataFrame, label: str, style: Mapping[str, Any], **kw: Any
) -> ch.Series:
    band = kw.pop("band", True)
    return ch.Series(
        label=label,
        x=axis,
        y=frame["value"].tolist(),
        lo=frame["ci_low"].tolist() if band else None,
        hi=frame["ci_high"].tolist() if band else None,
        colour=style["colour"],
        dash=style.get("dash", ""),
        marker=style.get("marker"),
        **kw,
    )


OVERALL = {"colour": ch.BLACK, "dash": "", "marker": "ring"}


def _levels(
    alert_levels: Mapping[str, tuple[float, float]], metric: str, scale: float = 1.0
) -> list[ch.Level]:
    if metric not in alert_levels:
        return []
    warn, crit = alert_levels[metric]
    return [
        ch.Level(float(warn) * scale, "warning", ch.WARNING, "6 4"),
        ch.Level(float(crit) * scale, "critical", ch.CRITICAL, "2 3"),
    ]


def _provisional(v: Mapping[str, Any]) -> dt.date | None:
    return _date((v.get("data") or {}).get("window_end"))


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


# --------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------


def _accuracy_panels(inputs: ReportInputs, segments: Sequence[str]) -> list[Markup]:
    """Small multiples: overall, then one panel per segment with the overall as reference."""
    v = inputs.verdict
    axis, daily = _daily(inputs.metrics, "accuracy", segments)
    if not daily:
        return [ch.empty_chart("chart-accuracy-0", "No daily accuracy in the metrics table.")]
    levels = _levels(inputs.alert_levels, "accuracy")
    level_txt = fmt_pct((v.get("confidence_level") or 0.95), 0)
    panels: list[tuple[str, pd.DataFrame, Mapping[str, str]]] = []
    if None in daily:
        panels.append(("all segments", daily[None], OVERALL))
    for i, s in enumerate(segments):
        if s in daily:
            panels.append((s, daily[s], _style(i)))
    # The shared range follows the daily values and the alert levels; bands of thin days are
    # clipped to it rather than stretching every panel.
    points = [_series(axis, f, label, st, band=False) for label, f, st in panels]
    lo, hi = ch.y_domain(points, levels, (0.0, 1.0))
    lo, hi, _ = ch.nice_range(lo, hi, 5)
    fixed = (max(lo, 0.0), min(hi, 1.0))
    out = []
    shade = _provisional(v)
    for k, (label, frame, st) in enumerate(panels):
        series = [_series(axis, frame, label, st, band=True, width=1.8)]
        if label != "all segments" and None in daily:
            ref: dict[str, Any] = {"colour": "#999999", "dash": "3 3", "marker": None}
            series.append(_series(axis, daily[None], "all segments", ref, band=False, width=1.2))
        out.append(
            ch.line_chart(
                f"chart-accuracy-{k}",
                series,
                title=f"Daily accuracy, {label}, with {level_txt} Wilson intervals",
                y_label="accuracy",
                levels=levels,
                y_fixed=fixed,
                shade_after=shade,
                shade_label="labels maturing",
                width=360,
                height=250,
            )
        )
    return out


def _ops_chart(
    inputs: ReportInputs,
    uid: str,
    metric: str,
    segments: Sequence[str],
    *,
    title: str,
    y_label: str,
    scale: float = 1.0,
    y_format: str = "pct",
    y_range: tuple[float | None, float | None] = (0.0, 1.0),
    shade: bool = False,
) -> Markup:
    axis, daily = _daily(inputs.metrics, metric, segments, scale=scale)
    if not daily:
        return ch.empty_chart(uid, f"No daily {metric.replace('_', ' ')} in the metrics table.")
    series = []
    if None in daily:
        series.append(_series(axis, daily[None], "all segments", OVERALL, band=True, width=2.4))
    for i, s in enumerate(segments):
        if s in daily:
            series.append(_series(axis, daily[s], s, _style(i), band=False, width=1.3))
    return ch.line_chart(
        uid,
        series,
        title=title,
        y_label=y_label,
        y_format=y_format,
        levels=_levels(inputs.alert_levels, metric, scale),
        y_range=y_range,
        shade_after=_provisional(inputs.verdict) if shade else None,
        shade_label="labels maturing",
    )


def _frame_records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    return frame.replace({np.nan: None}).to_dict("records")


# --------------------------------------------------------------------------------------------
# Views: thresholds, what-if, segments, calibration, data quality
# --------------------------------------------------------------------------------------------


def _band_row(b: Any) -> dict[str, str]:
    offered = b.threshold is not None
    if b.band == "human":
        rng = f"below {fmt_threshold(b.upper)}" if b.upper is not None else "everything"
    elif not offered:
        rng = "not offered"
    else:
        rng = f"[{fmt_threshold(b.threshold)}, {fmt_threshold(b.upper) if b.upper is not None else '1.00'}]"
    return {
        "band": b.band,
        "change": b.change if b.band != "human" else "",
        "range": rng,
        "target": fmt_pct(b.target) if b.target is not None else "",
        "share": fmt_pct(b.share),
        "current_share": fmt_pct(b.current_share),
        "per_day": fmt_int(b.items_per_day) if b.items_per_day is not None else "",
        "accuracy": fmt_pct(b.accuracy) if b.n else "n/a",
        "interval": fmt_interval("accuracy", b.ci_low, b.ci_high) if b.n else "",
        "n": fmt_int(b.n),
        "current_accuracy": fmt_pct(b.current_accuracy),
        "words": readable(b.guarantee or b.reason or ""),
        "certified": bool(b.guarantee),
    }


def _recertify(v: Mapping[str, Any]) -> str:
    """The verdict's re-certification reason when a critical confidence drift requires it."""
    rc = v.get("thresholds_recertify")
    if not isinstance(rc, Mapping) or not rc.get("required"):
        return ""
    return readable(rc.get("reason") or "a critical confidence drift")


def _thresholds_view(inputs: ReportInputs) -> dict[str, Any] | None:
    rec = inputs.thresholds
    if rec is None:
        return None
    stage = str(inputs.stage or (rec.stage.value if rec.stage is not None else "") or "")
    workload = current_workload = ""
    if rec.human_workload_per_day is not None:
        workload = fmt_int(rec.human_workload_per_day)
        if rec.current_human_workload_per_day is not None:
            current_workload = fmt_int(rec.current_human_workload_per_day)
    return {
        "rows": [_band_row(b) for b in rec.bands],
        "guarantee": readable(rec.guarantee),
        "notes": [readable(n) for n in rec.notes],
        "population": readable(rec.population),
        "n_labeled": fmt_int(rec.n_labeled),
        "n_total": fmt_int(rec.n_total),
        "stage": stage,
        "stage_text": STAGE_TEXT.get(stage, ""),
        "workload": workload,
        "current_workload": current_workload,
        "delta": fmt_pct(rec.delta, 0),
    }


def _segment_thresholds_view(inputs: ReportInputs) -> dict[str, Any] | None:
    grp = inputs.segment_thresholds
    if grp is None:
        return None
    rows = []
    for name, rec in list(grp.by_group.items())[:MAX_SEGMENT_ROWS]:
        cells = {}
        for band in ("auto", "confirm", "review"):
            b = rec.band(band)
            cells[band] = {
                "change": b.change,
                "share": fmt_pct(b.share),
                "accuracy": fmt_pct(b.accuracy) if b.n else "n/a",
                "certified": bool(b.guarantee),
            }
        note = "; ".join(rec.notes) if rec.notes else ""
        rows.append({"segment": str(name), "n": fmt_int(rec.n_labeled), "note": note, **cells})
    return {
        "rows": rows,
        "omitted": max(0, len(grp.by_group) - MAX_SEGMENT_ROWS) + grp.omitted,
        "min_labels": fmt_int(grp.min_labels),
        "by": grp.by,
    }


def _tradeoff_chart(inputs: ReportInputs) -> Markup:
    rec = inputs.thresholds
    target = current = recommended = None
    if rec is not None:
        auto = rec.band("auto")
        target, current, recommended = auto.target, auto.current_threshold, auto.threshold
    return ch.tradeoff_chart(
        "chart-tradeoff",
        _frame_records(inputs.tradeoff),
        target=target,
        current=current,
        recommended=recommended,
    )


def _whatif_view(inputs: ReportInputs) -> dict[str, Any] | None:
    rp = inputs.whatif
    if rp is None:
        return None
    summary = rp.summary
    policies = [p for p in ("current", "proposed") if p in set(summary["policy"])]
    rows = []
    for band in ("auto", "confirm", "review", "human"):
        row: dict[str, Any] = {"band": band}
        for p in policies:
            r = summary[(summary["policy"] == p) & (summary["band"] == band)]
            if r.empty:
                row[p] = None
                continue
            r0 = r.iloc[0]
            n = r0["n"]
            row[p] = {
                "threshold": fmt_threshold(r0["threshold"]) if band != "human" else "",
                "per_day": fmt_int(r0["items_per_day"]),
                "share": fmt_pct(r0["share"]),
                "accuracy": fmt_pct(r0["accuracy"]) if n else "n/a",
                "interval": fmt_interval("accuracy", r0["ci_low"], r0["ci_high"]) if n else "",
            }
        rows.append(row)
    load = rp.workload.groupby("policy")["human_workload"].mean()
    days = rp.workload["day"].nunique()
    workload = {p: fmt_int(load.get(p)) for p in policies}
    diff = ""
    if {"current", "proposed"} <= set(load.index):
        delta = float(load["proposed"] - load["current"])
        word = "fewer" if delta < 0 else "more"
        diff = f"{abs(delta):,.0f} {word} items per day for people under the proposed policy"
    return {"policies": policies, "rows": rows, "workload": workload, "diff": diff, "days": days}


def _workload_chart(inputs: ReportInputs) -> Markup:
    rp = inputs.whatif
    if rp is None or rp.workload.empty:
        return ch.empty_chart("chart-workload", "No what-if replay.")
    series = []
    for i, p in enumerate(("proposed", "current")):
        w = rp.workload[rp.workload["policy"] == p]
        if w.empty:
            continue
        w = w.assign(day=w["day"].map(_date)).dropna(subset=["day"]).sort_values("day")
        w = w.tail(MAX_DAYS)
        st = {"colour": ch.PALETTE[2 * i], "dash": "" if i == 0 else "6 3", "marker": ch.MARKERS[i]}
        series.append(
            ch.Series(
                label=f"{p} policy",
                x=list(w["day"]),
                y=w["human_workload"].astype(float).tolist(),
                colour=st["colour"],
                dash=st["dash"],
                marker=st["marker"],
                width=2,
            )
        )
    return ch.line_chart(
        "chart-workload",
        series,
        title="Human workload per day under each policy",
        y_label="items not auto-processed",
        y_format="num",
        y_range=(0.0, None),
        height=260,
    )


def _fmt_p(v: object) -> str:
    """A p- or q-value: three decimals, ``< 0.001`` below that, '' when missing."""
    if not _finite(v):
        return ""
    return "< 0.001" if float(v) < 0.001 else f"{float(v):.3f}"


def _segment_table(inputs: ReportInputs) -> dict[str, Any]:
    m = inputs.metrics
    v = inputs.verdict
    per = _by(_rows(m, window="window", present=("segment",)), "segment")
    overall = _by(_rows(m, window="window"), None).get(None, {})
    plan = {s.get("segment"): s for s in (v.get("segments") or {}).get("segments") or []}
    names = list(dict.fromkeys([*[s for s in plan if s in per], *per]))
    names.sort(  # rollout order first, then the segments outside the plan by labeled items
        key=lambda s: (
            float(plan[s]["rank"]) if _finite(plan.get(s, {}).get("rank")) else math.inf,
            -float(per[s].get("accuracy", {}).get("n") or 0),
        )
    )
    base = overall.get("accuracy", {}).get("value")
    rows = []
    for s in names[:MAX_SEGMENT_ROWS]:
        mm = per[s]
        acc = mm.get("accuracy", {})
        p = plan.get(s, {})
        gap = ""
        if _finite(acc.get("value")) and _finite(base):
            gap = f"{100 * (float(acc['value']) - float(base)):+.1f} pp"
        rows.append(
            {
                "segment": str(s),
                "rank": _text(p.get("rank")),
                "accuracy": fmt_pct(acc.get("value")),
                "interval": fmt_interval("accuracy", acc.get("ci_low"), acc.get("ci_high")),
                "n": fmt_int(acc.get("n")),
                "gap": gap,
                "coverage": fmt_pct(mm.get("label_coverage", {}).get("value")),
                "ece": fmt_value("ece", mm.get("ece", {}).get("value")),
                "error_rate": fmt_pct(mm.get("error_rate", {}).get("value"), 2),
                "override_rate": fmt_pct(mm.get("override_rate", {}).get("value")),
                "latency": fmt_value("latency_p95", mm.get("latency_p95", {}).get("value")),
                "flag": _text(p.get("flag")) or "not audited",
                "p_holm": _fmt_p(p.get("p_holm")),
                "q_bh": _fmt_p(p.get("q_bh")),
                "flag_css": (_text(p.get("flag")) or "none").replace(" ", "-"),
                "eligible": "yes" if p.get("eligible") else ("no" if p else ""),
                "detail": readable(p.get("detail")),
                "opted_out": bool(p.get("opted_out")),
            }
        )
    overall_row = {
        "accuracy": fmt_pct(base),
        "interval": fmt_interval(
            "accuracy",
            overall.get("accuracy", {}).get("ci_low"),
            overall.get("accuracy", {}).get("ci_high"),
        ),
        "n": fmt_int(overall.get("accuracy", {}).get("n")),
        "coverage": fmt_pct(overall.get("label_coverage", {}).get("value")),
        "ece": fmt_value("ece", overall.get("ece", {}).get("value")),
        "error_rate": fmt_pct(overall.get("error_rate", {}).get("value"), 2),
        "override_rate": fmt_pct(overall.get("override_rate", {}).get("value")),
        "latency": fmt_value("latency_p95", overall.get("latency_p95", {}).get("value")),
    }
    seg_info = v.get("segments") or {}
    return {
        "tested": any(r["q_bh"] for r in rows),
        "rows": rows,
        "overall": overall_row,
        "omitted": max(0, len(names) - MAX_SEGMENT_ROWS),
        "next": _text(seg_info.get("next")),
        "order": [str(s) for s in seg_info.get("order") or []],
    }


def _modes_view(m: pd.DataFrame) -> list[dict[str, str]]:
    rows = _rows(m, window="window", metrics=("accuracy", "override_rate"), present=("mode",))
    out = []
    for mode, mm in _by(rows, "mode").items():
        acc = mm.get("accuracy", {})
        out.append(
            {
                "mode": str(mode),
                "accuracy": fmt_pct(acc.get("value")),
                "interval": fmt_interval("accuracy", acc.get("ci_low"), acc.get("ci_high")),
                "n": fmt_int(acc.get("n")),
                "override_rate": fmt_pct(mm.get("override_rate", {}).get("value")),
                "shown": "no" if str(mode) == "shadow" else "yes",
            }
        )
    return out


def _versions_view(m: pd.DataFrame) -> list[dict[str, str]]:
    rows = _rows(
        m,
        window="window",
        metrics=("accuracy", "ece", "kappa", "psi", "error_rate"),
        present=("model_version",),
    )
    out = []
    for version, mm in sorted(_by(rows, "model_version").items(), key=lambda kv: str(kv[0])):
        acc = mm.get("accuracy", {})
        out.append(
            {
                "version": str(version),
                "accuracy": fmt_pct(acc.get("value")),
                "interval": fmt_interval("accuracy", acc.get("ci_low"), acc.get("ci_high")),
                "n": fmt_int(acc.get("n")),
                "ece": fmt_value("ece", mm.get("ece", {}).get("value")),
                "kappa": fmt_value("kappa", mm.get("kappa", {}).get("value")),
                "psi": fmt_value("psi", mm.get("psi", {}).get("value")),
                "error_rate": fmt_pct(mm.get("error_rate", {}).get("value"), 2),
            }
        )
    return out[:MAX_SEGMENT_ROWS]


def _customers_view(m: pd.DataFrame) -> dict[str, Any]:
    acc = m[(m["window"] == "window") & (m["metric"] == "accuracy") & m["customer_id"].notna()]
    acc = acc[acc["model_version"].isna() & acc["mode"].isna()]
    total = len(acc)
    key = acc["ci_high"].where(acc["ci_high"].notna(), acc["value"]).astype(float)
    worst = acc.assign(_key=key).sort_values(["_key", "customer_id"]).head(MAX_CUSTOMER_ROWS)
    rows = [
        {
            "customer": _text(r["customer_id"]),
            "segment": _text(r["segment"]),
            "accuracy": fmt_pct(r["value"]),
            "interval": fmt_interval("accuracy", r["ci_low"], r["ci_high"]),
            "n": fmt_int(r["n"]),
        }
        for r in worst.to_dict("records")
    ]
    return {"rows": rows, "total": total}


def _calibration_view(inputs: ReportInputs) -> dict[str, Any]:
    m = inputs.metrics
    overall = _by(_rows(m, window="window", metrics=tuple(SCORES)), None).get(None, {})
    items = []
    for metric, name in (
        ("ece", "ECE (top-label)"),
        ("ece_equal_mass", "ECE (equal-mass bins)"),
        ("mce", "MCE"),
        ("brier", "Brier score"),
        ("log_loss", "log loss"),
    ):
        r = overall.get(metric)
        if r is None:
            continue
        n = r.get("n")
        note = ""
        if metric.startswith("ece") and _finite(n) and float(n) < 1000:
            note = "noisy: fewer than 1,000 labeled items"
        items.append(
            {
                "name": name,
                "metric": metric,
                "value": fmt_value(metric, r.get("value")),
                "n": fmt_int(n),
                "note": note,
            }
        )
    psi = _rows(m, window="window", metrics="psi", present=("model_version",))
    psi_rows = [
        {
            "version": _text(r["model_version"]),
            "value": fmt_value("psi", r["value"]),
            "n": fmt_int(r["n"]),
        }
        for r in psi.to_dict("records")
    ][:MAX_SEGMENT_ROWS]
    recal = None
    rc = inputs.recalibration
    if rc is not None:
        chosen = getattr(getattr(rc, "chosen", None), "name", None)
        recal = {
            "map": _text(chosen) or "identity",
            "before": fmt_value("ece", getattr(rc, "ece_before", None)),
            "after": fmt_value("ece", getattr(rc, "ece_after", None)),
            "n": fmt_int(getattr(rc, "n_holdout", None)),
            "recommended": chosen not in (None, "identity"),
        }
    n_bins = 0 if inputs.reliability is None else len(inputs.reliability)
    gate = None
    cal = inputs.verdict.get("calibration")
    if isinstance(cal, Mapping) and _finite(cal.get("ece")):
        gate = {
            "n": fmt_int(cal.get("n")),
            "ece": fmt_value("ece", cal.get("ece")),
            "debiased": fmt_value("ece", cal.get("ece_debiased_l2")),
            "smece": fmt_value("ece", cal.get("smece")),
            "sigma": f"{float(cal['smece_sigma']):.3f}" if _finite(cal.get("smece_sigma")) else "",
        }
    return {
        "entries": items,
        "psi": psi_rows,
        "recalibration": recal,
        "bins": n_bins,
        "gate": gate,
    }


def _data_view(inputs: ReportInputs) -> dict[str, Any]:
    v = inputs.verdict
    data = v.get("data") or {}
    ingest = inputs.ingest or {}
    quarantined = ingest.get("quarantined")
    if quarantined is None:
        quarantined = data.get("quarantined_by_reason") or {}
    q_rows = sorted(
        ((str(k), int(n)) for k, n in quarantined.items() if _finite(n)), key=lambda kv: -kv[1]
    )
    ingested = ingest.get("ingested") or {}
    return {
        "window": fmt_span(data.get("window_start"), data.get("window_end")),
        "predictions": fmt_int(data.get("predictions")),
        "labeled": fmt_int(data.get("labeled")),
        "coverage": fmt_pct(data.get("label_coverage")),
        "quarantined": fmt_int(data.get("quarantined")),
        "ingested": [(str(k), fmt_int(n)) for k, n in ingested.items()],
        "quarantine": [(k, fmt_int(n)) for k, n in q_rows[:MAX_SEGMENT_ROWS]],
        "quarantine_omitted": max(0, len(q_rows) - MAX_SEGMENT_ROWS),
    }


def _feedback_view(inputs: ReportInputs) -> dict[str, Any]:
    fb = inputs.feedback or {}
    positive, ratings = fb.get("positive"), fb.get("ratings")
    share = (
        fmt_pct(float(positive) / float(ratings))
        if _finite(positive) and _finite(ratings) and float(ratings) > 0
        else "n/a"
    )
    comments = [
        {
            "when": fmt_datetime(c.get("submitted_at")),
            "segment": _text(c.get("segment")),
            "customer": _text(c.get("customer_id")),
            "rating": _text(c.get("rating")),
            "comment": _text(c.get("comment")),
        }
        for c in list(fb.get("comments") or [])[:MAX_COMMENTS]
    ]
    incidents = [
        {
            "id": _text(i.get("incident_id")),
            "severity": _text(i.get("severity")),
            "kind": _text(i.get("kind")),
            "title": _text(i.get("title")),
            "opened": fmt_datetime(i.get("opened_at")),
            "resolved": "open"
            if _missing(i.get("resolved_at"))
            else fmt_datetime(i["resolved_at"]),
        }
        for i in list(inputs.incidents)[:MAX_INCIDENTS]
    ]
    nps = fb.get("nps")
    return {
        "present": bool(fb),
        "share": share,
        "ratings": fmt_int(ratings),
        "nps": f"{float(nps):+.0f}" if _finite(nps) else "n/a",
        "comments": comments,
        "incidents": incidents,
        "incidents_omitted": max(0, len(inputs.incidents) - MAX_INCIDENTS),
    }


_PROVENANCE_ORDER = (
    ("run_id", "run id"),
    ("generated_at", "generated at"),
    ("config_hash", "config hash"),
    ("trustramp_version", "trustramp version"),
    ("data_window", "data window"),
    ("home", "home"),
)


def _provenance_view(inputs: ReportInputs) -> list[tuple[str, str]]:
    v = inputs.verdict
    prov = dict(inputs.provenance or {})
    prov.setdefault("config_hash", v.get("config_hash"))
    prov.setdefault("trustramp_version", v.get("trustramp_version"))
    if "run_id" in v:
        prov.setdefault("run_id", v.get("run_id"))
    out = [("feature", _text(v.get("feature"))), ("as of", fmt_date(v.get("as_of")))]
    if v.get("model_version"):
        out.append(("model version", _text(v.get("model_version"))))
    for key, label in _PROVENANCE_ORDER:
        if prov.get(key) is not None:
            out.append((label, _provenance_text(prov.pop(key))))
        else:
            prov.pop(key, None)
    out += [(str(k).replace("_", " "), _provenance_text(val)) for k, val in prov.items()]
    return out


def _provenance_text(v: object) -> str:
    """Dates and times readable; paths (which may hold dates) as they are."""
    text = _text(v)
    return text if "/" in text or "\\" in text else readable(text)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Index of past runs
# --------------------------------------------------------------------------------------------


def _scan_runs(reports: Path) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """``{feature: [run, ...]}`` newest first, and the verdict files that could not be read."""
    runs: dict[str, list[dict[str, Any]]] = {}
    bad: list[str] = []
    for vpath in sorted(reports.glob("*/*/verdict.json")):
        run_dir, feature_dir = vpath.parent, vpath.parent.parent
        if run_dir.name.startswith(".") or feature_dir.name.startswith("."):
            continue  # a run being written or replaced
        try:
            doc = json.loads(vpath.read_text("utf-8"))
            as_of = _date(doc.get("as_of")) or _date(run_dir.name)
            if (
                not isinstance(doc, dict)
                or as_of is None
                or doc.get("verdict") not in ch.VERDICT_COLOURS
            ):
                raise ValueError("not a verdict document")
        except (OSError, ValueError, AttributeError) as e:
            log.warning("index: skipping %s: %s", vpath, e)
            bad.append(vpath.relative_to(reports).as_posix())
            continue
        rel = run_dir.relative_to(reports).as_posix()
        html = run_dir / "readiness.html"
        reasons = [readable(r) for r in doc.get("reasons") or []]
        runs.setdefault(feature_dir.name, []).append(
            {
                "as_of": as_of,
                "as_of_text": fmt_date(as_of),
                "verdict": doc["verdict"],
                "css": str(doc["verdict"]).lower(),
                "where": phase_label(doc.get("phase"), doc.get("step")),
                "next": _next_label(doc),
                "reason": reasons[1]
                if len(reasons) > 1 and reasons[0].startswith("The rollout holds")
                else (reasons[0] if reasons else ""),
                "href": urllib.parse.quote(f"{rel}/readiness.html") if html.exists() else None,
                "json": urllib.parse.quote(f"{rel}/verdict.json"),
                "version": _text(doc.get("model_version")),
            }
        )
    for rs in runs.values():
        rs.sort(key=lambda r: r["as_of"], reverse=True)
    return dict(sorted(runs.items())), bad


def render_index(reports_dir: str | os.PathLike[str]) -> str:
    """The index page of ``reports_dir``: every feature's runs, newest first, with links."""
    reports = Path(reports_dir)
    runs, bad = _scan_runs(reports)
    history = [
        (f, [(r["as_of"], r["verdict"]) for r in rs[:MAX_INDEX_RUNS]]) for f, rs in runs.items()
    ]
    features = [
        {
            "name": f,
            "runs": rs[:MAX_INDEX_RUNS],
            "omitted": max(0, len(rs) - MAX_INDEX_RUNS),
            "latest": rs[0],
        }
        for f, rs in runs.items()
    ]
    chart = ch.history_chart("chart-verdict-history", history)
    return (
        _env()
        .get_template("index.html.j2")
        .render(
            features=features,
            chart=chart,
            bad=bad,
            generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            colours=ch.VERDICT_COLOURS,
        )
    )


def write_index(reports_dir: str | os.PathLike[str]) -> Path:
    """Write ``reports_dir/index.html`` listing the runs under ``<feature>/<as-of>/verdict.json``.

    Returns
    -------
    pathlib.Path
        The written ``index.html``.
    """
    reports = Path(reports_dir)
    if not reports.is_dir():
        raise FileNotFoundError(f"reports_dir {str(reports)!r} is not a folder")
    html = render_index(reports)
    target = reports / "index.html"
    tmp = reports / ".index.html.tmp"
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, target)
    return target
