"""The fleet timeline: one row per VM, its boots, fault windows and failures on one time axis.

The model keeps up to 1,000 boots, failures and fault windows per VM; the
chart draws at most one mark per `MERGE_PX` pixels of each kind per row:
intervals closer than that are merged into one (titled with what they hold),
failures in the same column become one marker with a count. So a row costs at
most a few hundred elements whatever the run's length, and a week of faults
every 90 s reads as one band instead of thousands of slivers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from soak.report.axes import elapsed, px, time_ticks
from soak.report.markup import Markup, el, void
from soak.runmodel import FailureMark, VmDetail

WIDTH = 960
LABEL = 130
RIGHT = 14
ROW = 18
AXIS = 24
MERGE_PX = 3.0
"""Marks closer than this many pixels are drawn as one."""
LABEL_CHARS = 18


@dataclass(slots=True)
class Span:
    """An interval on the timeline, possibly several merged ones."""

    start: float
    end: float
    names: Counter[str] = field(default_factory=Counter)

    @property
    def title(self) -> str:
        what = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in self.names.most_common(4))
        more = len(self.names) - 4
        return what + (f" and {more} more" if more > 0 else "")


def merge_spans(spans: Iterable[Span], min_gap_s: float) -> list[Span]:
    """Spans sorted by start, those that overlap or lie closer than ``min_gap_s`` merged."""
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: s.start):
        if merged and span.start - merged[-1].end <= min_gap_s:
            last = merged[-1]
            last.end = max(last.end, span.end)
            last.names.update(span.names)
        else:
            merged.append(Span(span.start, span.end, Counter(span.names)))
    return merged


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    detail: VmDetail | None


def fleet_timeline(rows: Sequence[Row], *, t0: float, span_s: float, end: float,
                   anchors: Mapping[tuple[str, str], str]) -> Markup:
    """The timeline of every VM; ``end``: where a boot still up is drawn to;
    ``anchors``: (kind, title) -> the id of its row in the failures table."""
    span_s = max(span_s, 1.0)
    plot = WIDTH - LABEL - RIGHT
    seconds_per_px = span_s / plot
    height = AXIS + ROW * len(rows) + 4

    def x(t: float) -> float:
        return LABEL + plot * min(1.0, max(0.0, (t - t0) / span_s))

    body: list[Markup] = [el("title", "Fleet timeline")]
    for tick in time_ticks(span_s):
        tx = px(x(t0 + tick))
        body.append(void("line", x1=tx, x2=tx, y1=AXIS - 4, y2=height, class_="grid"))
        body.append(el("text", elapsed(tick), x=tx, y=AXIS - 8, class_="tick", text_anchor="middle"))
    marks = 0
    for i, row in enumerate(rows):
        y = AXIS + i * ROW
        shown = row.label if len(row.label) <= LABEL_CHARS else row.label[: LABEL_CHARS - 1] + "…"
        body.append(el("text", el("title", row.label), shown, x=LABEL - 6, y=y + 13, class_="vm",
                       text_anchor="end"))
        if row.detail is None:
            continue
        row_marks = _row(row.detail, y, x, seconds_per_px, end, anchors)
        marks += len(row_marks)
        body += row_marks
    return el("svg", *body, xmlns="http://www.w3.org/2000/svg", class_="plot timeline", id="timeline",
              role="img", viewBox=f"0 0 {WIDTH} {height}", preserveAspectRatio="xMinYMin meet",
              data_lines=len(rows), data_points=marks)


def _row(detail: VmDetail, y: float, x: Callable[[float], float], seconds_per_px: float, end: float,
         anchors: Mapping[tuple[str, str], str]) -> list[Markup]:
    gap = MERGE_PX * seconds_per_px
    booting = merge_spans((Span(b.start, b.ready if b.ready is not None else (b.stop or end),
                                Counter({f"boot {b.boot}": 1})) for b in detail.boots), gap)
    running = merge_spans((Span(b.ready, b.stop if b.stop is not None else end,
                                Counter({f"boot {b.boot}" + (f" ({b.reason})" if b.reason else ""): 1}))
                           for b in detail.boots if b.ready is not None), gap)
    faults = merge_spans((Span(f.start, f.end, Counter({f.fault: 1})) for f in detail.faults), gap)
    out: list[Markup] = []
    out += _bars(booting, "booting", "booting: ", y + 4, 10, x)
    out += _bars(running, "running", "up: ", y + 4, 10, x)
    out += _bars(faults, "fault", "fault: ", y + 1, 16, x)
    out += _failure_marks(detail.failures, y, x, anchors)
    return out


def _bars(spans: Sequence[Span], css: str, prefix: str, y: float, height: float,
          x: Callable[[float], float]) -> list[Markup]:
    bars = []
    for span in spans:
        left = x(span.start)
        width = max(1.5, x(span.end) - left)
        bars.append(el("rect", el("title", prefix + span.title), x=px(left), y=y, width=px(width),
                       height=height, class_=css))
    return bars


def _failure_marks(failures: Iterable[FailureMark], y: float, x: Callable[[float], float],
                   anchors: Mapping[tuple[str, str], str]) -> list[Markup]:
    """One marker per `MERGE_PX` column: a triangle over the row, linked to its signature."""
    columns: dict[int, list[FailureMark]] = {}
    for mark in failures:
        columns.setdefault(int(x(mark.t) // MERGE_PX), []).append(mark)
    out = []
    for column in sorted(columns):
        marks = columns[column]
        first = marks[0]
        cx = px(x(first.t))
        titles = Counter(f"{m.kind}: {m.title}" + (" (expected)" if m.expected else "") for m in marks)
        text = "; ".join(f"{t} x{n}" if n > 1 else t for t, n in titles.most_common(3))
        if len(titles) > 3:
            text += f"; and {len(titles) - 3} more"
        css = "failure expected" if all(m.expected for m in marks) else "failure"
        shape = void("path", d=f"M{cx} {y + 2}l5 0l-5 13l-5 -13z", class_=css)
        anchor = anchors.get((first.kind, first.title))
        marker = el("g", el("title", text), shape)
        out.append(el("a", marker, href=f"#{anchor}") if anchor else marker)
    return out

