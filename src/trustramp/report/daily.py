"""The charts over days: the daily accuracy small multiples of the segments section and the
operations charts (p95 latency, error rate, override rate, label coverage). One point per day over
the last `MAX_DAYS` days, the overall line and at most `MAX_SERIES` segments (rollout order
first), the alert levels drawn and named, the days whose labels are still maturing shaded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from trustramp.report import charts as ch
from trustramp.report.formatting import MAX_DAYS, _date, fmt_pct
from trustramp.report.frames import _rows

if TYPE_CHECKING:
    from trustramp.report import ReportInputs


MAX_SERIES = 6
"""Segments drawn in the charts (rollout order first, then by traffic)."""


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
    # Each group's rows placed on the axis with numpy (a day's last row wins, as
    # drop_duplicates(keep="last") would; days before the axis left out, as reindex would):
    # pandas' per-group filtering, indexing and reindexing cost milliseconds per line drawn.
    at = {day: i for i, day in enumerate(axis)}
    cols = ["value", "ci_low", "ci_high", "n"]
    values = d[cols].to_numpy(dtype=float)
    where = [at.get(day) for day in d["day"]]
    segment = d["segment"]
    out: dict[str | None, pd.DataFrame] = {}
    groups: list[tuple[str | None, np.ndarray]] = [(None, segment.isna().to_numpy())]
    groups += [(s, (segment == s).to_numpy(dtype=bool, na_value=False)) for s in segments]
    for key, mask in groups:
        rows = np.flatnonzero(mask)
        if not len(rows):
            continue
        g = np.full((len(axis), len(cols)), np.nan)
        for r in rows:
            i = where[r]
            if i is not None:
                g[i] = values[r]
        g[:, :3] *= scale
        out[key] = pd.DataFrame(g, index=pd.Index(axis, name="day"), columns=cols)
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
