"""How values read on the report's pages, and the vocabulary every section shares.

Numbers in their natural unit (`fmt_value`: percent, ms or s, count, score), days, spans and
moments for people (`fmt_date`, `fmt_span`, `fmt_datetime`, and `readable` for text trustramp
wrote with ISO dates in it), the rollout's phase names, and the two page-size caps more than one
section uses (`MAX_DAYS`, `MAX_SEGMENT_ROWS`). The bottom of the report's modules: imports pandas
and nothing of trustramp.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from typing import TypeGuard

import pandas as pd

MAX_DAYS = 60
"""Days shown in the time series (the most recent ones)."""


MAX_SEGMENT_ROWS = 30


PHASES: tuple[str, ...] = ("shadow", "dogfood", "limited_beta", "controlled", "ga")
PHASE_LABELS: dict[str, str] = {
    "shadow": "Shadow mode",
    "dogfood": "Internal dogfood",
    "limited_beta": "Limited beta",
    "controlled": "Controlled rollout",
    "ga": "General availability",
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
