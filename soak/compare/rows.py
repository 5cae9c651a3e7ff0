"""Comparison rows: one per metric and key present in either run, each with its verdict.

A row compares the per-run samples the run model keeps (`Samples`,
``soak.runmodel.detail``): bogo-ops/s per (stressor, vCPUs), boot time and
heartbeat lateness per vCPU count. Its verdict, for run B against run A:

    too-few-samples   either side has fewer than ``min_samples`` (no guess is made)
    faster            the interval of B/A excludes 1 in B's favour, and the change is at
                      least ``min_effect`` (relative) and the metric's `Metric.floor` (absolute)
    slower            the same, against B
    no-difference     otherwise: noise, or a change too small to matter

"faster" means better in the metric's own sense: more bogo-ops/s, a shorter
boot, less heartbeat lateness.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from soak.compare.bootstrap import ratio_interval
from soak.runmodel import Samples

FASTER, SLOWER, SAME, FEW = "faster", "slower", "no-difference", "too-few-samples"
VERDICTS = (FASTER, SLOWER, SAME, FEW)


@dataclass(frozen=True, slots=True)
class Settings:
    """How sure and how large a change must be to be called one (README, "soak compare")."""

    confidence: float = 0.95
    min_effect: float = 0.05
    """Smallest relative change reported (5%): below it, a real but tiny change is no-difference."""
    min_samples: int = 10
    resamples: int = 2000
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    label: str
    higher_is_better: bool
    floor: float
    """Smallest absolute change reported, in the metric's unit (lateness of a few ms is noise)."""


BOGO_OPS = Metric("bogo-ops-per-s", "bogo-ops/s", True, 0.0)
BOOT = Metric("boot-s", "boot time (s)", False, 0.1)
LATENESS = Metric("heartbeat-lateness-s", "heartbeat lateness (s)", False, 0.01)


@dataclass(frozen=True, slots=True)
class Side:
    n: int
    mean: float | None


@dataclass(frozen=True, slots=True)
class Row:
    metric: Metric
    stressor: str | None
    vcpus: int
    a: Side
    b: Side
    ratio: float | None
    ci: tuple[float, float] | None
    verdict: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric.name,
            "stressor": self.stressor,
            "vcpus": self.vcpus,
            "a": {"n": self.a.n, "mean": self.a.mean},
            "b": {"n": self.b.n, "mean": self.b.mean},
            "ratio": self.ratio,
            # a resample of A can average 0 (lateness of on-time heartbeats): no upper bound, null
            "ci": [self.ci[0], self.ci[1] if math.isfinite(self.ci[1]) else None] if self.ci is not None else None,
            "verdict": self.verdict,
            "note": self.note,
        }


def compare_samples(metric: Metric, a: Sequence[float], b: Sequence[float], settings: Settings, *,
                    stressor: str | None = None, vcpus: int = 0) -> Row:
    """One row: the two samples of one metric and key, judged (module docstring)."""
    side_a, side_b = _side(a), _side(b)
    if min(len(a), len(b)) < settings.min_samples:
        note = f"fewer than {settings.min_samples} samples on a side"
        ratio = side_b.mean / side_a.mean if side_a.mean and side_b.mean is not None else None
        return Row(metric, stressor, vcpus, side_a, side_b, ratio, None, FEW, note)
    rng = random.Random(f"{settings.seed}/{metric.name}/{stressor}/{vcpus}")
    interval = ratio_interval(a, b, confidence=settings.confidence, resamples=settings.resamples, rng=rng)
    assert side_a.mean is not None and side_b.mean is not None
    if interval is None:  # A's mean is 0 (no lateness at all): only an absolute change can matter
        verdict = _judge_absolute(metric, side_a.mean, side_b.mean)
        return Row(metric, stressor, vcpus, side_a, side_b, None, None, verdict, "run A's mean is 0")
    ci = (interval.low, interval.high)
    significant = interval.low > 1 or interval.high < 1
    large = (abs(interval.ratio - 1) >= settings.min_effect
             and abs(side_b.mean - side_a.mean) >= metric.floor)
    verdict = SAME
    if significant and large:
        verdict = FASTER if (interval.ratio > 1) == metric.higher_is_better else SLOWER
    return Row(metric, stressor, vcpus, side_a, side_b, interval.ratio, ci, verdict)


def _judge_absolute(metric: Metric, mean_a: float, mean_b: float) -> str:
    if abs(mean_b - mean_a) < metric.floor or math.isclose(mean_a, mean_b):
        return SAME
    return FASTER if (mean_b > mean_a) == metric.higher_is_better else SLOWER


def _side(values: Sequence[float]) -> Side:
    return Side(len(values), math.fsum(values) / len(values) if values else None)


def compare_rows(a: Samples, b: Samples, settings: Settings) -> list[Row]:
    """Every row of two runs' samples: throughput per (stressor, vCPUs), then boot time and lateness."""
    rows = [compare_samples(BOGO_OPS, _values(a.bogo_ops_per_s, key), _values(b.bogo_ops_per_s, key),
                            settings, stressor=key[0], vcpus=key[1])
            for key in _keys(a.bogo_ops_per_s, b.bogo_ops_per_s)]
    for metric, samples_a, samples_b in ((BOOT, a.boot_s, b.boot_s), (LATENESS, a.lateness_s, b.lateness_s)):
        rows += [compare_samples(metric, _values(samples_a, vcpus), _values(samples_b, vcpus), settings,
                                 vcpus=vcpus)
                 for vcpus in _keys(samples_a, samples_b)]
    return rows


def _keys(a: Mapping[Any, Any], b: Mapping[Any, Any]) -> list[Any]:
    return sorted(set(a) | set(b))


def _values(samples: Mapping[Any, Iterable[float]], key: Any) -> list[float]:
    return [v for v in samples.get(key, ()) if math.isfinite(v)]
