"""Bounded building blocks of the run model: capped label values, histograms, thinned lists.

Kept apart from prometheus_client's own metric objects on purpose: the model
must be copyable under a lock in microseconds, replayable from a journal, and
free of any global registry. Each of these holds a fixed amount of memory
however long the run, which is what lets the model live for days.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

OTHER = "other"
"""The label value that stands for every value past a label's cap."""


class LabelCap:
    """Keeps a label's values bounded: past ``limit`` distinct values, new ones become ``other``.

    For labels whose values come from profiles or other code (fault names,
    stressors, infra problems): a bug there must not flood Prometheus.
    """

    def __init__(self, limit: int, known: Iterable[str] = ()) -> None:
        self._limit = limit
        self._seen: set[str] = set(known)

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self._limit:
            self._seen.add(value)
            return value
        return OTHER


class Histogram:
    """Bucket counts of one histogram series (non-cumulative; made cumulative when rendered)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        if math.isnan(value):
            return
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def copy(self) -> Histogram:
        twin = Histogram(self.bounds)
        twin.counts = list(self.counts)
        twin.sum = self.sum
        return twin

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs as Prometheus wants them, ending with ``+Inf``."""
        pairs: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            total += count
            pairs.append(("+Inf" if bound == math.inf else repr(bound), float(total)))
        return pairs


class LabeledHistograms:
    """One `Histogram` per value of one bounded label."""

    def __init__(self, bounds: tuple[float, ...], cap: LabelCap) -> None:
        self._bounds = bounds
        self._cap = cap
        self.series: dict[str, Histogram] = {}

    def copy(self) -> dict[str, Histogram]:
        return {label: h.copy() for label, h in self.series.items()}

    def get(self, label: str) -> Histogram:
        label = self._cap(label)
        histogram = self.series.get(label)
        if histogram is None:
            histogram = self.series[label] = Histogram(self._bounds)
        return histogram


class Thinned(Generic[T]):
    """At most ``limit`` items, spread evenly over everything added.

    When the list fills up every other item is dropped and from then on only
    every ``stride``-th added item is kept (the stride doubles each time), so
    the kept items are always a uniform, deterministic subsample of the whole
    stream: the first item, then one every ``stride``. `seen` counts them all.
    """

    __slots__ = ("items", "limit", "seen", "stride")

    def __init__(self, limit: int) -> None:
        if limit < 2:
            raise ValueError("a thinned list keeps at least 2 items")
        self.limit = limit
        self.items: list[T] = []
        self.seen = 0
        self.stride = 1

    def add(self, item: T) -> None:
        self.seen += 1
        if (self.seen - 1) % self.stride:
            return
        self.items.append(item)
        if len(self.items) >= self.limit:
            del self.items[1::2]
            self.stride *= 2

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
