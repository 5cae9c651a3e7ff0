"""A bounded time series: values folded into at most `limit` equal-width time buckets.

Each bucket keeps the count, sum, lowest and highest value of what fell in it,
so a plot can draw the mean and the range (a leak shows in the lows, a stall
in the highs). When a value falls past the last bucket, neighbouring buckets
are merged pairwise and the width doubles: a series costs at most `limit`
buckets whether the run lasts a minute or a week, and a run that overruns its
planned duration keeps working.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SERIES_BUCKETS = 256
"""Buckets per series: a plot of a few hundred points per line stays readable and light."""


@dataclass(frozen=True, slots=True)
class Point:
    """One non-empty bucket of a series."""

    t: float
    """Start of the bucket (Unix time)."""
    width_s: float
    mean: float
    low: float
    high: float
    count: int


class Buckets:
    """A time series bounded to ``limit`` buckets (see the module docstring)."""

    __slots__ = ("count", "high", "limit", "low", "t0", "total", "width_s")

    def __init__(self, t0: float, width_s: float, limit: int = SERIES_BUCKETS) -> None:
        if limit < 2 or not width_s > 0:
            raise ValueError("a series needs at least 2 buckets of a positive width")
        self.t0 = t0
        self.width_s = width_s
        self.limit = limit
        self.count: list[int] = []
        self.total: list[float] = []
        self.low: list[float] = []
        self.high: list[float] = []

    def add(self, t: float, value: float) -> None:
        if math.isnan(value) or math.isnan(t):
            return
        i = self._index(t)
        while i >= self.limit:
            self._coarsen()
            i = self._index(t)
        if i >= len(self.count):
            grow = i + 1 - len(self.count)
            self.count += [0] * grow
            self.total += [0.0] * grow
            self.low += [math.inf] * grow
            self.high += [-math.inf] * grow
        self.count[i] += 1
        self.total[i] += value
        self.low[i] = min(self.low[i], value)
        self.high[i] = max(self.high[i], value)

    def points(self) -> list[Point]:
        return [
            Point(self.t0 + i * self.width_s, self.width_s, self.total[i] / n, self.low[i], self.high[i], n)
            for i, n in enumerate(self.count)
            if n
        ]

    def _index(self, t: float) -> int:
        return max(0, int((t - self.t0) // self.width_s))

    def _coarsen(self) -> None:
        pairs = range(0, len(self.count), 2)
        self.count = [sum(self.count[i : i + 2]) for i in pairs]
        self.total = [sum(self.total[i : i + 2]) for i in pairs]
        self.low = [min(self.low[i : i + 2]) for i in pairs]
        self.high = [max(self.high[i : i + 2]) for i in pairs]
        self.width_s *= 2
