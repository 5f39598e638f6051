"""Inline SVG charts for the readiness report, drawn in Python (no JavaScript, prints well).

Every function returns a `markupsafe.Markup` holding one ``<svg>`` element whose text (titles,
legends, tick labels, annotations) is escaped here, so data never reaches the page as markup.
Coordinates are rounded to 0.1 px and series are drawn as single paths with SVG markers, so a
chart's size grows with the points it shows, not with the data behind them.

The palette is Okabe–Ito (colour-blind safe); series also differ by dash pattern and marker
shape, and alert levels carry their names as text, so nothing is told by colour alone.

The canvas they draw on, the palette, the data holders (`Series`, `Level`) and the axis helpers
are in `trustramp.report.svg`; this module re-exports what the report uses of them. Imports
markupsafe only.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from markupsafe import Markup

from trustramp.report.svg import (
    AXIS,
    BLACK,
    CRITICAL,
    FONT,
    GRID,
    PALETTE,
    VERDICT_COLOURS,
    WARNING,
    Level,
    Series,
    _as_x,
    _Canvas,
    _date_ticks,
    _finite,
    _Legend,
    _Scale,
    _text_width,
    _ticks,
    compact,
    nice_range,
    nice_step,
    num_format,
    pct_format,
)

# Re-exported: the report styles its series with them (`charts.DASHES`, `charts.MARKERS`).
from trustramp.report.svg import DASHES as DASHES
from trustramp.report.svg import MARKERS as MARKERS

__all__ = [
    "BLACK",
    "CRITICAL",
    "PALETTE",
    "VERDICT_COLOURS",
    "WARNING",
    "Level",
    "Series",
    "bar_histogram_chart",
    "empty_chart",
    "history_chart",
    "line_chart",
    "nice_range",
    "reliability_chart",
    "tradeoff_chart",
    "y_domain",
]


def empty_chart(uid: str, message: str, *, width: float = 640, height: float = 90) -> Markup:
    """A placeholder that says why there is no chart (so the figure keeps its place)."""
    c = _Canvas(uid, width, height, message)
    c.rect(1, 1, width - 1, height - 1, fill="#fafafa", stroke=GRID)
    c.text(width / 2, height / 2 + 4, message, anchor="middle", colour=AXIS)
    return c.svg()


def y_domain(
    series: Sequence[Series],
    levels: Sequence[Level],
    y_range: tuple[float | None, float | None] | None,
) -> tuple[float, float]:
    vals: list[float] = []
    for s in series:
        for seq in (s.y, s.lo, s.hi):
            if seq is not None:
                vals.extend(float(v) for v in seq if _finite(v))
    vals.extend(lv.value for lv in levels)
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    fixed_lo, fixed_hi = y_range if y_range else (None, None)
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad
    if fixed_lo is not None:
        lo = max(lo, fixed_lo) if fixed_hi is None or lo < fixed_hi else fixed_lo
    if fixed_hi is not None:
        hi = min(hi, fixed_hi)
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    return lo, hi


def line_chart(
    uid: str,
    series: Sequence[Series],
    *,
    title: str,
    y_label: str,
    x_label: str = "day (UTC)",
    y_format: str = "pct",
    levels: Sequence[Level] = (),
    y_range: tuple[float | None, float | None] | None = None,
    y_fixed: tuple[float, float] | None = None,
    shade_after: dt.date | None = None,
    shade_label: str = "provisional",
    width: float = 960,
    height: float = 300,
) -> Markup:
    """Lines over days (or numbers) with interval bands and named horizontal levels.

    Parameters
    ----------
    uid : str
        Unique prefix for ids inside the SVG (marker definitions).
    series : sequence of Series
        The lines; the first ones are drawn last (on top).
    title, y_label, x_label : str
        Accessible title and axis labels.
    y_format : {"pct", "num"}, default "pct"
        Tick labels as percentages of a proportion, or plain numbers.
    levels : sequence of Level
        Horizontal reference lines (e.g. warning and critical alert levels).
    y_range : (low, high), optional
        Clips the automatic y range (e.g. ``(0, 1)`` for a proportion).
    y_fixed : (low, high), optional
        The exact y range (e.g. shared by small multiples); overrides ``y_range``.
    shade_after : date, optional
        Days after this one are shaded and labelled ``shade_label``.
    """
    xs_all = [_as_x(v) for s in series for v in s.x]
    if not xs_all:
        return empty_chart(uid, f"No data for {title.lower()}.")
    c = _Canvas(uid, width, height, title)
    c.legend = [
        _Legend(s.label, s.colour, s.dash, s.marker, width=max(s.width, 1.4)) for s in series
    ]
    c.legend += [_Legend(lv.label, lv.colour, lv.dash) for lv in levels]
    x_lo, x_hi = min(xs_all), max(xs_all)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    is_date = any(isinstance(v, dt.date) for s in series for v in s.x)
    xpad = 0.5 if is_date else 0.0
    xs = _Scale(x_lo - xpad, x_hi + xpad, c.left, c.width - c.right)
    if y_fixed is not None:
        lo, hi = y_fixed
        step = nice_step(hi - lo, 5)
    else:
        lo, hi = y_domain(series, levels, y_range)
        lo, hi, step = nice_range(lo, hi, 5)
        if y_range and y_range[0] is not None:
            lo = max(lo, y_range[0])
        if y_range and y_range[1] is not None:
            hi = min(hi, y_range[1])
    ys = _Scale(lo, hi, c.plot_bottom, c.plot_top)
    fmt = pct_format(step) if y_format == "pct" else num_format(step)
    first = math.ceil(lo / step - 1e-9) * step
    c.y_axis(ys, _ticks(first, math.floor(hi / step + 1e-9) * step, step), fmt, y_label)
    if shade_after is not None:
        x0 = xs(_as_x(shade_after) + 0.5)
        if x0 < xs.r1:
            c.rect(x0, c.plot_top, xs.r1, c.plot_bottom, fill="#000000", fill_opacity="0.06")
            c.text(xs.r1 - 4, c.plot_bottom - 6, shade_label, anchor="end", size=FONT - 1)
    if is_date:
        c.x_axis(xs, _date_ticks(x_lo, x_hi), x_label)
    else:
        _, _, xstep = nice_range(x_lo, x_hi, 6)
        xf = num_format(xstep)
        c.x_axis(
            xs,
            [
                (t, xf(t))
                for t in _ticks(*nice_range(x_lo, x_hi, 6)[:2], xstep)
                if x_lo <= t <= x_hi
            ],
            x_label,
        )
    for s in reversed(series):
        if s.lo is not None and s.hi is not None:
            runs: list[list[tuple[float, float, float]]] = [[]]
            for x, a, b in zip(s.x, s.lo, s.hi, strict=True):
                if _finite(a) and _finite(b):
                    runs[-1].append((xs(_as_x(x)), ys.clamp(float(a)), ys.clamp(float(b))))
                elif runs[-1]:
                    runs.append([])
            c.band(runs, colour=s.colour, opacity=0.13)
    ordered = sorted(levels, key=lambda lv: lv.value)
    for i, lv in enumerate(ordered):
        # two levels close together: the lower label goes under its line, the upper one above
        c.hlevel(xs, ys, lv, fmt, below=len(ordered) > 1 and i == 0)
    for s in reversed(series):
        points = [
            (xs(_as_x(x)), ys.clamp(float(y))) if _finite(y) else None
            for x, y in zip(s.x, s.y, strict=True)
        ]
        marker = s.marker if len(points) <= 90 else None
        c.path(points, colour=s.colour, width=s.width, dash=s.dash, marker=marker)
    return c.svg()


def reliability_chart(
    uid: str,
    bins: Sequence[dict[str, float]],
    *,
    title: str = "Reliability diagram",
    width: float = 460,
    height: float = 440,
) -> Markup:
    """Accuracy per confidence bin against the diagonal, with the bin counts in a lower panel.

    ``bins``: dicts with ``lo, hi, n, accuracy, mean_confidence`` (empty bins may be left out or
    have ``n`` 0).
    """
    used = [b for b in bins if _finite(b.get("n")) and b["n"] > 0]
    if not used:
        return empty_chart(uid, "No labeled items for the reliability diagram.", width=width)
    c = _Canvas(uid, width, height, title, bottom=40)
    c.legend = [
        _Legend("accuracy in bin", PALETTE[0], kind="box"),
        _Legend("mean confidence", CRITICAL, marker="diamond", width=0.01),
        _Legend("perfect calibration", AXIS, "4 3", width=1.2),
    ]
    counts_h = 78.0
    gap = 26.0
    xs = _Scale(0.0, 1.0, c.left, c.width - c.right)
    top = c.plot_top
    main_bottom = c.plot_bottom - counts_h - gap
    ys = _Scale(0.0, 1.0, main_bottom, top)
    fmt = pct_format(0.1)
    c.y_axis(ys, _ticks(0, 1, 0.2), fmt, "accuracy")
    c.line(xs(0), ys(0), xs(1), ys(1), stroke=AXIS, stroke_width="1.2", stroke_dasharray="4 3")
    c.line(xs.r0, main_bottom, xs.r1, main_bottom, stroke=AXIS, stroke_width="1")
    conf_points: list[tuple[float, float] | None] = []
    for b in used:
        x0, x1 = xs(float(b["lo"])) + 0.6, xs(float(b["hi"])) - 0.6
        acc = float(b["accuracy"]) if _finite(b.get("accuracy")) else 0.0
        c.rect(x0, ys(0), x1, ys(acc), fill=PALETTE[0], fill_opacity="0.55", stroke=PALETTE[0])
        if _finite(b.get("mean_confidence")):
            conf_points.append((xs(float(b["mean_confidence"])), ys(float(b["mean_confidence"]))))
            conf_points.append(None)
    c.path(conf_points, colour=CRITICAL, width=0.01, marker="diamond")
    # counts panel
    cb_top = main_bottom + gap
    n_max = max(float(b["n"]) for b in used)
    cs = _Scale(0.0, n_max, c.plot_bottom, cb_top + 12)
    for b in used:
        x0, x1 = xs(float(b["lo"])) + 0.6, xs(float(b["hi"])) - 0.6
        c.rect(x0, cs(0), x1, cs(float(b["n"])), fill=AXIS, fill_opacity="0.45")
        c.text(
            (x0 + x1) / 2,
            cs(float(b["n"])) - 3,
            compact(float(b["n"])),
            anchor="middle",
            size=FONT - 2,
            colour=BLACK,
        )
    c.text(14, (cb_top + c.plot_bottom) / 2, "items", anchor="middle", rotate=-90, colour=AXIS)
    c.x_axis(xs, [(t, fmt(t)) for t in _ticks(0, 1, 0.2)], "confidence (top-label)")
    return c.svg()


def bar_histogram_chart(
    uid: str,
    bins: Sequence[dict[str, float]],
    *,
    title: str = "Confidence distribution",
    current_label: str = "current",
    baseline_label: str = "baseline",
    width: float = 460,
    height: float = 440,
) -> Markup:
    """Shares per confidence bin: current as bars, baseline as a step outline.

    ``bins``: dicts with ``lo, hi, current, baseline`` (shares; baseline may be NaN).
    """
    if not bins:
        return empty_chart(uid, "No confidence distribution.")
    c = _Canvas(uid, width, height, title)
    has_base = any(_finite(b.get("baseline")) for b in bins)
    c.legend = [_Legend(current_label, PALETTE[0], kind="box")]
    if has_base:
        c.legend.append(_Legend(baseline_label, PALETTE[1], "5 3", width=2.2))
    x_lo = min(float(b["lo"]) for b in bins)
    x_hi = max(float(b["hi"]) for b in bins)
    xs = _Scale(x_lo, x_hi, c.left, c.width - c.right)
    top = max(
        max((float(b["current"]) for b in bins if _finite(b.get("current"))), default=0.0),
        max((float(b["baseline"]) for b in bins if _finite(b.get("baseline"))), default=0.0),
    )
    _, hi, step = nice_range(0.0, max(top * 1.05, 1e-3), 5)
    ys = _Scale(0.0, hi, c.plot_bottom, c.plot_top)
    fmt = pct_format(step)
    c.y_axis(ys, _ticks(0.0, hi, step), fmt, "share of predictions")
    for b in bins:
        if _finite(b.get("current")):
            c.rect(
                xs(float(b["lo"])) + 0.6,
                ys(0),
                xs(float(b["hi"])) - 0.6,
                ys(float(b["current"])),
                fill=PALETTE[0],
                fill_opacity="0.55",
                stroke=PALETTE[0],
            )
    if has_base:
        pts: list[tuple[float, float] | None] = []
        for b in sorted(bins, key=lambda b: float(b["lo"])):
            v = float(b["baseline"]) if _finite(b.get("baseline")) else None
            if v is None:
                pts.append(None)
                continue
            pts += [(xs(float(b["lo"])), ys(v)), (xs(float(b["hi"])), ys(v))]
        c.path(pts, colour=PALETTE[1], width=2.2, dash="5 3")
    _, _, xstep = nice_range(x_lo, x_hi, 5)
    xf = pct_format(xstep)
    c.x_axis(
        xs,
        [(t, xf(t)) for t in _ticks(*nice_range(x_lo, x_hi, 5)[:2], xstep) if x_lo <= t <= x_hi],
        "confidence (top-label)",
    )
    return c.svg()


def tradeoff_chart(
    uid: str,
    points: Sequence[dict[str, float]],
    *,
    target: float | None,
    current: float | None,
    recommended: float | None,
    title: str = "Automation vs accuracy (auto band)",
    width: float = 900,
    height: float = 340,
) -> Markup:
    """Accuracy of auto-processed items against the share of traffic automated, per threshold.

    ``points``: dicts with ``threshold, share, accuracy, ci_low, ci_high``. Thresholds on
    multiples of 0.05 are labelled; the current and the recommended threshold are marked.
    """
    pts = sorted(
        (p for p in points if _finite(p.get("share")) and _finite(p.get("accuracy"))),
        key=lambda p: float(p["share"]),
    )
    if not pts:
        return empty_chart(uid, "No labeled items for the trade-off curve.")
    c = _Canvas(uid, width, height, title, bottom=42)
    c.legend = [
        _Legend(
            "accuracy of auto-processed items (Wilson interval)", PALETTE[0], marker=None, width=2
        )
    ]
    if current is not None:
        c.legend.append(_Legend("current threshold", PALETTE[1], marker="square", width=0.01))
    if recommended is not None:
        c.legend.append(_Legend("recommended threshold", PALETTE[2], marker="diamond", width=0.01))
    if target is not None:
        c.legend.append(_Legend("target", CRITICAL, "6 4"))
    share_hi = max(float(p["share"]) for p in pts)
    xlo, xhi, xstep = nice_range(0.0, max(share_hi, 0.01), 5)
    xs = _Scale(0.0, xhi, c.left, c.width - c.right)
    ylo_data = min(
        [float(p["ci_low"]) for p in pts if _finite(p.get("ci_low"))]
        + [float(p["accuracy"]) for p in pts]
        + ([target] if target is not None else [])
    )
    ylo, yhi, ystep = nice_range(max(ylo_data - 0.01, 0.0), 1.0, 5)
    yhi = min(yhi, 1.0)
    ys = _Scale(ylo, yhi, c.plot_bottom, c.plot_top)
    yf = pct_format(ystep)
    c.y_axis(ys, [t for t in _ticks(ylo, yhi, ystep) if t <= yhi + 1e-9], yf, "accuracy")
    xf = pct_format(xstep)
    c.x_axis(xs, [(t, xf(t)) for t in _ticks(xlo, xhi, xstep)], "share of traffic auto-processed")
    band = [
        (xs(float(p["share"])), ys.clamp(float(p["ci_low"])), ys.clamp(float(p["ci_high"])))
        for p in pts
        if _finite(p.get("ci_low")) and _finite(p.get("ci_high"))
    ]
    c.band([band], colour=PALETTE[0], opacity=0.15)
    if target is not None:
        c.hlevel(xs, ys, Level(target, "target", CRITICAL, "6 4"), yf)
    c.path(
        [(xs(float(p["share"])), ys.clamp(float(p["accuracy"]))) for p in pts],
        colour=PALETTE[0],
        width=2,
    )
    last_x = -1e9
    for p in pts:
        t = float(p["threshold"])
        x, y = xs(float(p["share"])), ys.clamp(float(p["accuracy"]))
        if abs(t * 20 - round(t * 20)) < 1e-6 and abs(x - last_x) >= 34:
            c.line(x, y, x, y + 5, stroke=PALETTE[0], stroke_width="1")
            c.text(x, y + 15, f"{t:.2f}", anchor="middle", size=FONT - 2, colour=AXIS, halo=True)
            last_x = x

    def mark(t: float | None, colour: str, kind: str, name: str, above: bool) -> None:
        if t is None:
            return
        near = [p for p in pts if abs(float(p["threshold"]) - t) < 1e-6]
        if not near:
            return
        p = near[0]
        x, y = xs(float(p["share"])), ys.clamp(float(p["accuracy"]))
        c.path([(x, y)], colour=colour, width=0.01, marker=kind)
        # the label on a short leader, up-left for one mark and down-right for the other
        label = f"{name} {t:.2f}"
        dx, dy = (-14, -22) if above else (14, 30)
        anchor = "end" if above else "start"
        if above and x + dx - _text_width(label) < c.left:
            dx, anchor = 14, "start"
        elif not above and x + dx + _text_width(label) > c.width - c.right:
            dx, anchor = -14, "end"
        c.line(x, y, x + dx * 0.7, y + dy * 0.7, stroke=colour, stroke_width="1")
        c.text(
            x + dx,
            y + dy + (0 if above else 4),
            label,
            anchor=anchor,
            colour=colour,
            weight="600",
            halo=True,
        )

    mark(current, PALETTE[1], "square", "current", True)
    mark(recommended, PALETTE[2], "diamond", "recommended", False)
    return c.svg()


VERDICT_LEVELS: tuple[str, ...] = ("ROLLBACK", "PAUSE", "HOLD", "GO")


def history_chart(
    uid: str,
    runs: Sequence[tuple[str, Sequence[tuple[dt.date, str]]]],
    *,
    title: str = "Verdict history",
    width: float = 760,
    panel: float = 110,
) -> Markup:
    """One small panel per feature: verdict (ROLLBACK … GO) per as-of date, as a step line."""
    dates = [d for _, rs in runs for d, _ in rs]
    if not dates:
        return empty_chart(uid, "No runs yet.")
    height = 10 + 22 + panel * len(runs) + 40
    c = _Canvas(uid, width, height, title, left=92, top=10)
    c.legend = [_Legend(v, VERDICT_COLOURS[v], marker="circle", width=0.01) for v in VERDICT_LEVELS]
    x_lo, x_hi = min(d.toordinal() for d in dates), max(d.toordinal() for d in dates)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    xs = _Scale(x_lo - 0.5, x_hi + 0.5, c.left, c.width - c.right)
    y0 = c.plot_top
    for i, (feature, rs) in enumerate(runs):
        top, bottom = y0 + i * panel + 30, y0 + (i + 1) * panel - 6
        ys = _Scale(0, len(VERDICT_LEVELS) - 1, bottom, top)
        c.text(c.left, top - 14, feature, weight="600")
        for j, v in enumerate(VERDICT_LEVELS):
            c.line(xs.r0, ys(j), xs.r1, ys(j), stroke=GRID, stroke_width="1")
            c.text(c.left - 6, ys(j) + 3.5, v, anchor="end", size=FONT - 2, colour=AXIS)
        ordered = sorted(rs, key=lambda r: r[0])
        pts: list[tuple[float, float] | None] = []
        for d, v in ordered:
            if v in VERDICT_LEVELS:
                pts.append((xs(d.toordinal()), ys(VERDICT_LEVELS.index(v))))
        c.path(pts, colour=AXIS, width=1)
        for d, v in ordered:
            if v in VERDICT_LEVELS:
                c.path(
                    [(xs(d.toordinal()), ys(VERDICT_LEVELS.index(v)))],
                    colour=VERDICT_COLOURS[v],
                    width=0.01,
                    marker="circle",
                )
    c.x_axis(xs, _date_ticks(x_lo, x_hi), "as-of date", y=c.height - 40)
    return c.svg()
