"""The SVG canvas the report's charts are drawn on, and the chart vocabulary they share.

The palette (Okabe–Ito, colour-blind safe), dash patterns and marker shapes; the data holders a
chart takes (`Series`, `Level`); axis helpers (nice ranges and steps, tick labels for
proportions, numbers and days, `compact` counts); and `_Canvas`, one ``<svg>`` with scales, a
legend strip and drawn parts, whose text is escaped here, so data never reaches the page as
markup. Imports markupsafe only; the charts themselves are in `trustramp.report.charts`.
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
    "DASHES",
    "MARKERS",
    "PALETTE",
    "VERDICT_COLOURS",
    "WARNING",
    "Level",
    "Series",
    "compact",
    "nice_range",
    "nice_step",
    "num_format",
    "pct_format",
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
