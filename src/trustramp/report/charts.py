"""Inline SVG charts for the readiness report, drawn in Python (no JavaScript, prints well).

Every function returns a `markupsafe.Markup` holding one ``<svg>`` element whose text (titles,
legends, tick labels, annotations) is escaped here, so data never reaches the page as markup.
Coordinates are rounded to 0.1 px and series are drawn as single paths with SVG markers, so a
chart's size grows with the points it shows, not with the data behind them.

The palette is Okabe–Ito (colour-blind safe); series also differ by dash pattern and marker
shape, and alert levels carry their names as text, so nothing is told by colour alone.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from markupsafe import Markup, escape

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

PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#7F7F7F",  # grey
    "#F0C000",  # yellow (darkened for contrast on white)
)
"""Okabe–Ito colours for series, in order."""
BLACK = "#222222"
WARNING = "#B07000"
"""Warning level lines (a dark orange that stays readable in print)."""
CRITICAL = "#D55E00"
VERDICT_COLOURS: dict[str, str] = {
    "GO": "#009E73",
    "HOLD": "#E69F00",
    "PAUSE": "#D55E00",
    "ROLLBACK": "#8B1A1A",
}
DASHES: tuple[str, ...] = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4", "4 2 1 2", "3 5")
MARKERS: tuple[str, ...] = ("circle", "square", "triangle", "diamond")

FONT = 11
"""Base font size in px; text widths are estimated at 0.6 em per character."""
GRID = "#E3E3E3"
AXIS = "#666666"


# --------------------------------------------------------------------------------------------
# Data holders
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One line of a chart: ``x`` values (dates or numbers), ``y`` and an optional band.

    NaN (or None) in ``y`` leaves a gap; ``lo``/``hi`` draw a shaded interval band where both are
    finite.
    """

    label: str
    x: Sequence[dt.date | float]
    y: Sequence[float | None]
    lo: Sequence[float | None] | None = None
    hi: Sequence[float | None] | None = None
    colour: str = BLACK
    dash: str = ""
    marker: str | None = "circle"
    width: float = 1.6


@dataclass(frozen=True)
class Level:
    """A horizontal reference line with a name (an alert level, a target)."""

    value: float
    label: str
    colour: str = WARNING
    dash: str = "6 4"


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _f(v: float) -> str:
    """A coordinate, rounded to 0.1 px, without a trailing ``.0``."""
    s = f"{v:.1f}"
    return s[:-2] if s.endswith(".0") else s


def _finite(v: object) -> TypeGuard[float]:
    """A finite real number (numpy scalars included; bools and None are not numbers here)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _text_width(text: str, size: float = FONT) -> float:
    return 0.6 * size * len(text)


def _text(
    x: float,
    y: float,
    text: str,
    *,
    anchor: str = "start",
    size: float = FONT,
    colour: str = BLACK,
    weight: str | None = None,
    rotate: float | None = None,
    cls: str | None = None,
    halo: bool = False,
) -> str:
    attrs = [f'x="{_f(x)}"', f'y="{_f(y)}"', f'font-size="{_f(size)}"', f'fill="{colour}"']
    if halo:  # a white outline keeps a label readable over lines and bands
        attrs.append(
            'stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke"'
        )
    if anchor != "start":
        attrs.append(f'text-anchor="{anchor}"')
    if weight:
        attrs.append(f'font-weight="{weight}"')
    if rotate is not None:
        attrs.append(f'transform="rotate({_f(rotate)} {_f(x)} {_f(y)})"')
    if cls:
        attrs.append(f'class="{cls}"')
    return f"<text {' '.join(attrs)}>{escape(text)}</text>"


def nice_step(span: float, target: int = 5) -> float:
    """A 1-2-5 × 10^k step that cuts ``span`` into about ``target`` intervals.

    Examples
    --------
    >>> nice_step(0.12), nice_step(23_000)
    (0.05, 5000.0)
    """
    if not _finite(span) or span <= 0:
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * mag >= raw * 0.999:
            return m * mag
    return 10 * mag  # pragma: no cover


def nice_range(lo: float, hi: float, target: int = 5) -> tuple[float, float, float]:
    """``lo``/``hi`` widened to multiples of a nice step; returns (lo, hi, step)."""
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, target)
    return math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step, step


def _ticks(lo: float, hi: float, step: float) -> list[float]:
    n = round((hi - lo) / step)
    return [lo + i * step for i in range(n + 1)]


def _decimals(step: float) -> int:
    """Decimals that print every multiple of ``step`` exactly (up to 4)."""
    for d in range(5):
        if abs(step * 10**d - round(step * 10**d)) < 1e-6:
            return d
    return 4


def pct_format(step: float) -> Callable[[float], str]:
    """Percent tick labels with as many decimals as the step needs."""
    decimals = _decimals(step * 100)
    return lambda v: f"{100 * v:.{decimals}f}%"


def num_format(step: float) -> Callable[[float], str]:
    decimals = _decimals(step)
    return lambda v: f"{v:,.{decimals}f}"


def compact(n: float) -> str:
    """A count in at most five characters, for labels on bars.

    Examples
    --------
    >>> [compact(n) for n in (12, 1234, 12_345, 1_234_567)]
    ['12', '1.2k', '12k', '1.2M']
    """
    if not _finite(n):
        return ""
    a = abs(n)
    if a < 1000:
        return f"{n:.0f}"
    if a < 10_000:
        return f"{n / 1000:.1f}k"
    if a < 1_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.1f}M"


class _Scale:
    """A linear map from a data interval to a pixel interval."""

    def __init__(self, d0: float, d1: float, r0: float, r1: float) -> None:
        self.d0, self.d1, self.r0, self.r1 = d0, d1, r0, r1
        self.k = (r1 - r0) / (d1 - d0) if d1 != d0 else 0.0

    def __call__(self, v: float) -> float:
        return self.r0 + (v - self.d0) * self.k

    def clamp(self, v: float) -> float:
        lo, hi = min(self.r0, self.r1), max(self.r0, self.r1)
        return min(max(self(v), lo), hi)


def _as_x(v: dt.date | float) -> float:
    if isinstance(v, dt.datetime):
        return float(v.date().toordinal())
    if isinstance(v, dt.date):
        return float(v.toordinal())
    return float(v)


def _date_ticks(lo: float, hi: float, max_ticks: int = 8) -> list[tuple[float, str]]:
    span = max(hi - lo, 1.0)
    step = 1
    for s in (1, 2, 7, 14, 28, 56, 91, 182, 364):
        step = s
        if span / s <= max_ticks - 1:
            break
    first = math.ceil(lo)
    if step >= 7:  # weekly ticks fall on Mondays
        first += (7 - dt.date.fromordinal(first).weekday()) % 7
    out = []
    v = first
    while v <= hi + 1e-9:
        d = dt.date.fromordinal(int(v))
        out.append((float(v), d.strftime("%b %d").replace(" 0", " ")))
        v += step
    return out


# --------------------------------------------------------------------------------------------
# The canvas
# --------------------------------------------------------------------------------------------


@dataclass
class _Legend:
    label: str
    colour: str
    dash: str = ""
    marker: str | None = None
    kind: str = "line"  # line | box | outline
    width: float = 1.6


@dataclass
class _Canvas:
    """One SVG: a plot rectangle with scales, a legend strip above it, and drawn parts."""

    uid: str
    width: float
    height: float
    title: str
    left: float = 58
    right: float = 16
    top: float = 10
    bottom: float = 40
    parts: list[str] = field(default_factory=list)
    defs: list[str] = field(default_factory=list)
    legend: list[_Legend] = field(default_factory=list)
    _markers: dict[tuple[str, str], str] = field(default_factory=dict)

    # -- layout ------------------------------------------------------------------------------

    def legend_height(self) -> float:
        if not self.legend:
            return 0.0
        return 18.0 * len(self._legend_rows()) + 4

    def _legend_rows(self) -> list[list[tuple[_Legend, float]]]:
        rows: list[list[tuple[_Legend, float]]] = [[]]
        x, avail = self.left, self.width - self.right
        for item in self.legend:
            w = 28 + _text_width(item.label) + 14
            if x + w > avail and rows[-1]:
                rows.append([])
                x = self.left
            rows[-1].append((item, x))
            x += w
        return rows

    @property
    def plot_top(self) -> float:
        return self.top + self.legend_height()

    @property
    def plot_bottom(self) -> float:
        return self.height - self.bottom

    # -- primitives --------------------------------------------------------------------------

    def marker(self, kind: str | None, colour: str) -> str | None:
        """The id of a marker definition (shared by every vertex of a path)."""
        if kind is None:
            return None
        key = (kind, colour)
        if key not in self._markers:
            mid = f"{self.uid}-m{len(self._markers)}"
            shape = {
                "circle": f'<circle cx="5" cy="5" r="3" fill="{colour}"/>',
                "square": f'<rect x="2" y="2" width="6" height="6" fill="{colour}"/>',
                "triangle": f'<path d="M5 1.5L8.6 8H1.4Z" fill="{colour}"/>',
                "diamond": f'<path d="M5 1L9 5L5 9L1 5Z" fill="{colour}"/>',
                "ring": f'<circle cx="5" cy="5" r="3" fill="#fff" stroke="{colour}" stroke-width="1.5"/>',
            }[kind]
            self.defs.append(
                f'<marker id="{mid}" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="8" '
                f'markerHeight="8" markerUnits="userSpaceOnUse">{shape}</marker>'
            )
            self._markers[key] = mid
        return self._markers[key]

    def path(
        self,
        points: Sequence[tuple[float, float] | None],
        *,
        colour: str,
        width: float = 1.6,
        dash: str = "",
        marker: str | None = None,
        cls: str | None = None,
    ) -> None:
        """A polyline; None points break it into runs (a lone point is drawn as a dot)."""
        d: list[str] = []
        run: list[tuple[float, float]] = []

        def flush() -> None:
            if not run:
                return
            d.append(f"M{_f(run[0][0])} {_f(run[0][1])}")
            if len(run) == 1:
                d.append("l0 0")
            d.extend(f"L{_f(x)} {_f(y)}" for x, y in run[1:])
            run.clear()

        for p in points:
            if p is None:
                flush()
            else:
                run.append(p)
        flush()
        if not d:
            return
        attrs = [f'd="{"".join(d)}"', 'fill="none"', f'stroke="{colour}"']
        attrs.append(f'stroke-width="{_f(width)}"')
        attrs.append('stroke-linejoin="round" stroke-linecap="round"')
        if dash:
            attrs.append(f'stroke-dasharray="{dash}"')
        mid = self.marker(marker, colour)
        if mid:
            attrs.append(
                f'marker-start="url(#{mid})" marker-mid="url(#{mid})" marker-end="url(#{mid})"'
            )
        if cls:
            attrs.append(f'class="{cls}"')
        self.parts.append(f"<path {' '.join(attrs)}/>")

    def band(
        self, runs: Sequence[Sequence[tuple[float, float, float]]], *, colour: str, opacity: float
    ) -> None:
        """Shaded areas between (x, y_low, y_high) triples, one polygon per run."""
        d = []
        for run in runs:
            if not run:
                continue
            if len(run) == 1:  # a single day: a short vertical bar
                x, lo, hi = run[0]
                run = [(x - 2, lo, hi), (x + 2, lo, hi)]
            top = [f"{_f(x)} {_f(hi)}" for x, _, hi in run]
            bottom = [f"{_f(x)} {_f(lo)}" for x, lo, _ in reversed(run)]
            d.append("M" + "L".join(top + bottom) + "Z")
        if d:
            self.parts.append(
                f'<path d="{"".join(d)}" fill="{colour}" fill-opacity="{opacity}" stroke="none"/>'
            )

    def rect(self, x0: float, y0: float, x1: float, y1: float, **style: str) -> None:
        x, y = min(x0, x1), min(y0, y1)
        w, h = abs(x1 - x0), abs(y1 - y0)
        extra = " ".join(f'{k.replace("_", "-")}="{v}"' for k, v in style.items())
        self.parts.append(
            f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}" {extra}/>'
        )

    def line(self, x0: float, y0: float, x1: float, y1: float, **style: str) -> None:
        extra = " ".join(f'{k.replace("_", "-")}="{v}"' for k, v in style.items())
        self.parts.append(
            f'<line x1="{_f(x0)}" y1="{_f(y0)}" x2="{_f(x1)}" y2="{_f(y1)}" {extra}/>'
        )

    def text(self, x: float, y: float, text: str, **kw: Any) -> None:
        self.parts.append(_text(x, y, text, **kw))

    # -- axes --------------------------------------------------------------------------------

    def y_axis(
        self,
        ys: _Scale,
        ticks: Sequence[float],
        fmt: Callable[[float], str],
        label: str,
        *,
        x0: float | None = None,
        x1: float | None = None,
    ) -> None:
        x0 = self.left if x0 is None else x0
        x1 = self.width - self.right if x1 is None else x1
        for t in ticks:
            y = ys(t)
            self.line(x0, y, x1, y, stroke=GRID, stroke_width="1")
            self.text(x0 - 6, y + 3.5, fmt(t), anchor="end", size=FONT - 1, colour=AXIS)
        mid = (ys.r0 + ys.r1) / 2
        self.text(14, mid, label, anchor="middle", rotate=-90, colour=AXIS)

    def x_axis(
        self,
        xs: _Scale,
        ticks: Sequence[tuple[float, str]],
        label: str,
        *,
        y: float | None = None,
    ) -> None:
        y = self.plot_bottom if y is None else y
        self.line(xs.r0, y, xs.r1, y, stroke=AXIS, stroke_width="1")
        for v, lab in ticks:
            x = xs(v)
            self.line(x, y, x, y + 4, stroke=AXIS, stroke_width="1")
            self.text(x, y + 15, lab, anchor="middle", size=FONT - 1, colour=AXIS)
        if label:
            self.text((xs.r0 + xs.r1) / 2, y + 30, label, anchor="middle", colour=AXIS)

    def hlevel(
        self,
        xs: _Scale,
        ys: _Scale,
        level: Level,
        fmt: Callable[[float], str],
        *,
        below: bool = False,
    ) -> None:
        """A named horizontal line; its label sits above it (or ``below``) at the right end."""
        y = ys(level.value)
        if not min(ys.r0, ys.r1) - 0.5 <= y <= max(ys.r0, ys.r1) + 0.5:
            return
        self.line(
            xs.r0, y, xs.r1, y, stroke=level.colour, stroke_width="1.4", stroke_dasharray=level.dash
        )
        label = f"{level.label} {fmt(level.value)}"
        ty = y + 12 if below else y - 4
        self.text(
            xs.r1 - 3,
            ty,
            label,
            anchor="end",
            size=FONT - 1,
            colour=level.colour,
            weight="600",
            halo=True,
        )

    # -- output ------------------------------------------------------------------------------

    def _legend_svg(self) -> str:
        out = []
        for r, row in enumerate(self._legend_rows()):
            y = self.top + 18 * r + 9
            for item, x in row:
                if item.kind == "box":
                    out.append(
                        f'<rect x="{_f(x + 4)}" y="{_f(y - 5)}" width="14" height="10" '
                        f'fill="{item.colour}" fill-opacity="0.55" stroke="{item.colour}"/>'
                    )
                else:
                    dash = f' stroke-dasharray="{item.dash}"' if item.dash else ""
                    out.append(
                        f'<line x1="{_f(x)}" y1="{_f(y)}" x2="{_f(x + 22)}" y2="{_f(y)}" '
                        f'stroke="{item.colour}" stroke-width="{_f(item.width)}"{dash}/>'
                    )
                    mid = self.marker(item.marker, item.colour)
                    if mid:
                        out.append(
                            f'<path d="M{_f(x + 11)} {_f(y)}l0 0" marker-start="url(#{mid})"/>'
                        )
                out.append(_text(x + 28, y + 4, item.label, colour=BLACK))
        return "".join(out)

    def svg(self) -> Markup:
        legend = self._legend_svg()  # may add marker definitions
        defs = f"<defs>{''.join(self.defs)}</defs>" if self.defs else ""
        return Markup(
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart{" wide" if self.width > 600 else ""}" viewBox="0 0 '
            f'{_f(self.width)} {_f(self.height)}" width="{_f(self.width)}" '
            f'height="{_f(self.height)}" role="img" aria-label="{escape(self.title)}" '
            f'font-family="system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif">'
            f"<title>{escape(self.title)}</title>{defs}{legend}{''.join(self.parts)}</svg>"
        )


# --------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------


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
