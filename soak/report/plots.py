"""The report's plots, from the run model's detail: which series, which lines, which scale.

Every plot is a view of `RunDetail` (``soak.runmodel.detail``): per VM, the
bounded series of heartbeat lateness, QEMU RSS / threads / fds and bogo-ops/s
per stressor. Each VM keeps one colour in every plot (its place in the fleet).
A series is drawn from its bucket means, except heartbeat lateness, drawn from
each bucket's worst value: a stall of seconds must not be averaged away.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from soak.report.axes import Formatter, plain, seconds, size_bytes
from soak.report.markup import Markup
from soak.report.svg import Line, color, line_chart
from soak.runmodel import Buckets, Point, VmDetail

JOURNAL_SAMPLE_S = 60.0
"""The journal keeps one heartbeat and one process sample per VM per minute (soak.journal)."""


@dataclass(frozen=True, slots=True)
class Plot:
    """One chart of the report, with the VMs that have a line in it (for its legend)."""

    chart_id: str
    title: str
    svg: Markup
    vms: tuple[tuple[str, str], ...]
    """(VM name, colour) of each line."""

    @property
    def empty(self) -> bool:
        return not self.vms


@dataclass(frozen=True, slots=True)
class Fleet:
    """What every plot shares: the VMs in order, the time axis."""

    vms: Sequence[tuple[str, VmDetail | None]]
    t0: float
    span_s: float

    def colour(self, index: int) -> str:
        return color(index)


def series_plot(fleet: Fleet, chart_id: str, title: str, pick: Callable[[VmDetail], Buckets | None],
                fmt: Formatter, *, worst: bool = False, zero: bool = True, joined: bool = False,
                binary: bool = False) -> Plot:
    """One line per VM that has points in the series ``pick`` chooses."""
    lines: list[Line] = []
    for index, (name, detail) in enumerate(fleet.vms):
        series = pick(detail) if detail is not None else None
        points = series.points() if series is not None else []
        if not points:
            continue
        gap = None if joined else 3 * max(points[0].width_s, JOURNAL_SAMPLE_S)
        lines.append(Line(name, fleet.colour(index), [_xy(p, fleet.t0, worst) for p in points], gap))
    svg = line_chart(chart_id, title, lines, span_s=fleet.span_s, fmt=fmt, zero=zero, binary=binary)
    return Plot(chart_id, title, svg, tuple((line.label, line.color) for line in lines))


def _xy(point: Point, t0: float, worst: bool) -> tuple[float, float]:
    return point.t + point.width_s / 2 - t0, point.high if worst else point.mean


def all_plots(fleet: Fleet) -> list[Plot]:
    """Lateness, throughput per stressor, then the leak view (RSS, threads, fds)."""
    plots = [series_plot(fleet, "lateness", "Heartbeat lateness (worst per interval)",
                         lambda d: d.lateness, seconds, worst=True)]
    stressors = sorted({s for _, d in fleet.vms if d is not None for s in d.throughput})
    for number, stressor in enumerate(stressors):
        plots.append(series_plot(
            fleet, f"throughput-{number}", f"Throughput: {stressor} bogo-ops/s (mean per interval)",
            _throughput(stressor), plain, joined=True))
    plots += [
        series_plot(fleet, "rss", "QEMU resident memory (mean per interval)", lambda d: d.rss, size_bytes,
                    zero=False, binary=True),
        series_plot(fleet, "threads", "QEMU threads (mean per interval)", lambda d: d.threads, plain,
                    zero=False),
        series_plot(fleet, "fds", "QEMU open file descriptors (mean per interval)", lambda d: d.fds, plain,
                    zero=False),
    ]
    return plots


def _throughput(stressor: str) -> Callable[[VmDetail], Buckets | None]:
    return lambda detail: detail.throughput.get(stressor)
