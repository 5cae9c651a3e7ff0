"""Small building blocks of the metrics model: bounded labels and histogram counts.

Kept apart from prometheus_client's own metric objects on purpose: the model
must be copyable under a lock in microseconds, replayable from a journal, and
free of any global registry.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable

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
