"""A small static SVG line chart: time on x, one line per VM, hover titles instead of script.

Why our own renderer and not a plotting library: the report must open offline,
from an e-mail or a CI artifact, with no script and nothing fetched; a few
hundred lines of SVG per chart do that, cost no dependency, and are tested
like any other pure function (see the README, "soak report"). Each line is
one ``<path>``; it is broken where the data has a gap (the VM was down), and
its points are drawn as dots while there are few of them, so a series of one
sample still shows. Coordinates are rounded to 0.1 px: a 256-point line costs
about 3 KiB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from soak.report.axes import Formatter, elapsed, px, time_ticks, value_ticks
from soak.report.markup import Markup, el, void

WIDTH = 960
HEIGHT = 230
LEFT, RIGHT, TOP, BOTTOM = 70, 14, 10, 26
DOTS_UP_TO = 40
"""A line with at most this many points also shows each point as a dot."""

PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#79706e",
)
"""Tableau 10: distinguishable, also in grey-scale print."""


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    """Shown on hover (a VM name: untrusted text, escaped)."""
    color: str
    points: Sequence[tuple[float, float]]
    """(seconds since the run started, value), in time order."""
    gap_s: float | None = None
    """Consecutive points farther apart than this are not joined (None: always joined)."""


@dataclass(frozen=True, slots=True)
class Scale:
    """Maps data to pixels inside the plot area."""

    span_s: float
    low: float
    high: float
    width: float = WIDTH - LEFT - RIGHT
    height: float = HEIGHT - TOP - BOTTOM

    def x(self, t: float) -> float:
        return LEFT + self.width * min(1.0, max(0.0, t / self.span_s))

    def y(self, value: float) -> float:
        fraction = (value - self.low) / (self.high - self.low)
        return TOP + self.height * (1.0 - min(1.0, max(0.0, fraction)))


def line_chart(chart_id: str, title: str, lines: Sequence[Line], *, span_s: float, fmt: Formatter,
               zero: bool = True, binary: bool = False) -> Markup:
    """One chart; ``zero``: the value axis starts at 0 (else at the lowest value, to show a slope);
    ``binary``: ticks round in KiB / MiB / GiB."""
    values = [v for line in lines for _, v in line.points if math.isfinite(v)]
    low = min(values, default=0.0)
    high = max(values, default=1.0)
    if zero:
        low = min(0.0, low)
    ticks = value_ticks(low, high, binary=binary)
    scale = Scale(max(span_s, 1.0), ticks[0], ticks[-1] if ticks[-1] > ticks[0] else ticks[0] + 1.0)
    body = [
        el("title", title),
        _value_axis(scale, ticks, fmt),
        _time_axis(scale),
        *(_line(line, scale) for line in lines if line.points),
    ]
    return el(
        "svg", *body, xmlns="http://www.w3.org/2000/svg", class_="plot", id=chart_id, role="img",
        viewBox=f"0 0 {WIDTH} {HEIGHT}", preserveAspectRatio="xMinYMin meet",
        data_lines=sum(1 for line in lines if line.points),
        data_points=sum(len(line.points) for line in lines),
    )


def _value_axis(scale: Scale, ticks: Sequence[float], fmt: Formatter) -> Markup:
    parts: list[Markup] = []
    for tick in ticks:
        y = px(scale.y(tick))
        parts.append(void("line", x1=LEFT, x2=LEFT + px(scale.width), y1=y, y2=y, class_="grid"))
        parts.append(el("text", fmt(tick), x=LEFT - 6, y=px(y + 4), class_="tick", text_anchor="end"))
    return el("g", parts)


def _time_axis(scale: Scale) -> Markup:
    parts: list[Markup] = []
    bottom = TOP + scale.height
    for tick in time_ticks(scale.span_s):
        x = px(scale.x(tick))
        parts.append(void("line", x1=x, x2=x, y1=TOP, y2=px(bottom), class_="grid"))
        parts.append(el("text", elapsed(tick), x=x, y=px(bottom + 16), class_="tick", text_anchor="middle"))
    return el("g", parts)


def _line(line: Line, scale: Scale) -> Markup:
    """One path for the line (broken at gaps); dots where points are few or stand alone."""
    commands: list[str] = []
    dots: list[tuple[float, float]] = []
    run: list[tuple[float, float]] = []
    previous: float | None = None
    for t, value in line.points:
        if not math.isfinite(value):
            continue
        if previous is not None and line.gap_s is not None and t - previous > line.gap_s:
            _flush(run, commands, dots)
            run = []
        run.append((scale.x(t), scale.y(value)))
        previous = t
    _flush(run, commands, dots)
    if len(line.points) <= DOTS_UP_TO:
        dots = [(scale.x(t), scale.y(v)) for t, v in line.points if math.isfinite(v)]
    parts: list[Markup] = [el("title", line.label)]
    if commands:
        parts.append(void("path", d="".join(commands), stroke=line.color, class_="line"))
    parts += [void("circle", cx=px(x), cy=px(y), r=2.5, fill=line.color) for x, y in dots]
    return el("g", parts, class_="series", data_label=line.label)


def _flush(run: list[tuple[float, float]], commands: list[str], dots: list[tuple[float, float]]) -> None:
    if len(run) == 1:
        dots.append(run[0])
    elif run:
        kept = _without_flat_interiors([(px(x), px(y)) for x, y in run])
        x0, y0 = kept[0]
        rest = " ".join(f"{x} {y}" for x, y in kept[1:])
        commands.append(f"M{x0} {y0}L{rest}")


def _without_flat_interiors(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Drops the inner points of horizontal stretches (same pixel row): the same picture, far
    smaller for the flat lines most threads and fds series are."""
    kept = points[:1]
    for i in range(1, len(points) - 1):
        if not points[i - 1][1] == points[i][1] == points[i + 1][1]:
            kept.append(points[i])
    return [*kept, points[-1]] if len(points) > 1 else kept

