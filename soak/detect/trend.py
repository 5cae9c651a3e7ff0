"""Resource leaks: sustained growth of a QEMU process's RSS, threads or fds, or shrinking
guest memory, told apart from warm-up, noise, garbage-collector sawtooth and one-off steps.

How a series is judged (all pure, O(1) memory however long the run):

1. Samples before ``warmup_s`` (from the boot's first sample) are ignored: a
   TCG guest's translation cache and page cache fill in the first minutes.
2. The rest is cut into ``bucket_s`` buckets, each kept as its *floor* (its
   lowest sample). A leak raises the floor; load, garbage collection and thread
   pools only add spikes above it.
3. Recent buckets (a ring over ``window_s``) are judged over windows of a
   quarter, a half and all of ``window_s``; a coarse copy of every bucket since
   the warm-up (uniform points of 1, 2, 4 ... buckets, merged pairwise to stay
   under `MAX_COARSE_POINTS`) covers slow leaks over days. A window is a leak when all of:

   * Mann-Kendall: the rise is significant (one-sided p < ``alpha``; ties,
     common in counts of threads and fds, are accounted for);
   * Theil-Sen: the median pairwise slope is at least ``min_slope_per_hour``;
   * the growth over the window (slope x span) is at least ``min_growth`` and
     ``min_growth_fraction`` of the level at the window's start (so a fast leak
     is found in a short window, a slow one in a long window);
   * the growth is a staircase: each of `SEGMENTS` equal parts of the window
     sits above the previous by at least `STEP_SHARE` of the mean rise per
     part, so a single step (a pool growing once, a cache resizing) is not a
     leak: it puts the whole rise in one or two parts;
   * the window ends at a new high: above every floor seen before it since
     the warm-up, so a slow sawtooth (a cycle longer than a short window) is
     not a leak once it has peaked before. Short windows are judged only with
     as much history before them; a cycle longer than half of ``window_s``
     still looks like growth until its first drop.

A falling metric (guest MemAvailable) is judged as its negative.
"""

from __future__ import annotations

import collections
import itertools
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from soak.detect.verdict import Verdict
from soak.kinds import Kind
from soak.units import format_duration

HOUR_S = 3600.0
DEFAULT_WARMUP_S = 600.0
"""Ignored at the start of a boot. Measured (TCG, 1 vCPU, 256 MiB, 64 MiB translation
cache, stress-ng bursts, 50 min): QEMU RSS climbs 254 -> 327 MiB in the first minute,
then stays within 325.6-329.6 MiB; threads and fds do not move. Five times that."""
MIB = 1024 * 1024
KIB_PER_MIB = 1024
SEGMENTS = 4
"""A step lies in one segment: with four, at least two neighbouring pairs stay level."""
STEP_SHARE = 0.5
"""Each segment must rise by half the mean rise per segment (noise may take the rest)."""
COVERAGE = 0.75
"""A window is judged only when its buckets span this share of it (no judging on scraps)."""
MIN_POINTS = 8
"""Fewer buckets than this cannot make Mann-Kendall significant at useful levels."""
MAX_COARSE_POINTS = 128
"""The whole-run series; at 1-minute buckets, merging starts after about two hours."""
WINDOW_FRACTIONS = (0.25, 0.5, 1.0)
"""Recent windows judged, as shares of ``window_s``: a fast leak shows in the shortest."""
REARM_FACTOR = 2.0
"""A reported metric is reported again only after it grew this many times as much."""


@dataclass(frozen=True, slots=True)
class TrendFinding:
    """A sustained trend, with the numbers that make it one."""

    metric: str
    """What grows, as titles show it: ``QEMU RSS``, ``guest free memory`` ..."""
    unit: str
    falling: bool
    """True for a metric whose leak is a decrease (guest free memory)."""
    plural: bool
    """The metric's name is a plural (``QEMU fds grow``), for the title's grammar."""
    slope_per_hour: float
    """Theil-Sen slope, in ``unit`` per hour (negative for a falling metric)."""
    growth: float
    """Change over the window (slope x span), in ``unit``; negative when falling."""
    start_level: float
    """The floor at the window's start, in ``unit``."""
    window_s: float
    """The span of the buckets judged."""
    points: int
    z: float
    """Mann-Kendall's normal score of the trend (one-sided)."""
    p_value: float
    t: float
    """When the window ended (the check's ``now``)."""

    def verdict(self) -> Verdict:
        """The finding as a failure: resource-leak, not terminal, numbers only in the message."""
        verb = ("shrink" if self.falling else "grow") + ("" if self.plural else "s")
        past = "shrank" if self.falling else "grew"
        message = (
            f"{self.metric} {past} {abs(self.growth):.1f} {self.unit} in {format_duration(self.window_s)}"
            f" ({self.slope_per_hour:+.2f} {self.unit}/h, Theil-Sen over {self.points} buckets;"
            f" Mann-Kendall z={self.z:.1f}, p={self.p_value:.1e}; from {self.start_level:.1f} {self.unit})"
        )
        return Verdict(Kind.RESOURCE_LEAK, f"resource-leak: {self.metric} {verb}", terminal=False,
                       message=message)


@dataclass(slots=True)
class _Point:
    t: float
    floor: float
    weight: int = 1
    peak: float = -math.inf
    """The highest bucket floor merged into this point (for the new-high rule)."""

    def __post_init__(self) -> None:
        self.peak = max(self.peak, self.floor)


@dataclass(slots=True)
class _Judged:
    slope: float
    growth: float
    level: float
    span: float
    points: int
    z: float
    p: float


class TrendDetector:
    """Sustained growth (or, ``falling``, shrinkage) of one metric of one boot."""

    def __init__(
        self,
        metric: str,
        unit: str,
        *,
        falling: bool = False,
        plural: bool = False,
        window_s: float = HOUR_S,
        warmup_s: float = DEFAULT_WARMUP_S,
        bucket_s: float = 60.0,
        min_slope_per_hour: float,
        min_growth: float,
        min_growth_fraction: float = 0.0,
        alpha: float = 1e-3,
    ) -> None:
        if bucket_s <= 0 or window_s < MIN_POINTS * bucket_s:
            raise ValueError(f"window_s must hold at least {MIN_POINTS} buckets of bucket_s")
        self.metric = metric
        self.unit = unit
        self.falling = falling
        self.plural = plural
        self.window_s = window_s
        self.warmup_s = warmup_s
        self.bucket_s = bucket_s
        self.min_slope_per_hour = min_slope_per_hour
        self.min_growth = min_growth
        self.min_growth_fraction = min_growth_fraction
        self.alpha = alpha
        self._sign = -1.0 if falling else 1.0
        self._first_t: float | None = None
        self._bucket: int | None = None
        self._open: _Point | None = None
        self._recent: collections.deque[_Point] = collections.deque(
            maxlen=math.ceil(window_s / bucket_s) + 1)
        self._coarse: list[_Point] = []
        self._coarse_width = 1
        """Buckets per coarse point: doubles at each merge, so the series stays uniform."""
        self._coarse_pending: _Point | None = None
        self._coarse_changes = 0
        self._coarse_judged: tuple[int, _Judged | None] | None = None
        self._closed = 0
        self._cached: tuple[int, TrendFinding | None] | None = None

    @property
    def stored_points(self) -> int:
        """Buckets held in memory: bounded by the window and `MAX_COARSE_POINTS`."""
        return (len(self._recent) + len(self._coarse) + (self._open is not None)
                + (self._coarse_pending is not None))

    def add(self, t: float, value: float) -> None:
        """One sample; samples must come in time order (a late one joins the open bucket)."""
        if not math.isfinite(value):
            return
        if self._first_t is None:
            self._first_t = t
        if t - self._first_t < self.warmup_s:
            return
        bucket = math.floor((t - self._first_t) / self.bucket_s)
        v = self._sign * value
        if self._open is not None and self._bucket is not None and bucket <= self._bucket:
            self._open.floor = min(self._open.floor, v)
            self._open.peak = self._open.floor
            return
        self._close()
        self._bucket = bucket
        self._open = _Point((bucket + 0.5) * self.bucket_s + self._first_t, v)

    def check(self, now: float) -> TrendFinding | None:
        """The trend over the closed buckets, if one is a leak.

        Judged afresh only when a bucket has closed since the last call: calling it
        at every sample costs nothing more than calling it once a bucket.
        """
        if self._cached is not None and self._cached[0] == self._closed:
            return self._cached[1]
        finding = self._judge(now, list(self._recent), self._coarse_series(), final=False)
        self._cached = (self._closed, finding)
        return finding

    def end_of_run_check(self, now: float) -> TrendFinding | None:
        """The final word at the end of a boot or run, with the open bucket counted too.

        A run shorter than the warm-up gives None: growth then cannot be told from warm-up.
        """
        recent = list(self._recent)
        pending = self._coarse_pending
        if self._open is not None:
            recent.append(self._open)
            pending = _join(pending, self._open) if pending else self._open
        return self._judge(now, recent, self._coarse_series(pending), final=True)

    def _coarse_series(self, pending: _Point | None = None) -> list[_Point]:
        """Whole coarse points, plus the partial one at the end of a run."""
        return [*self._coarse, pending] if pending else list(self._coarse)

    def _close(self) -> None:
        if self._open is None:
            return
        self._recent.append(self._open)
        point = _Point(self._open.t, self._open.floor)
        self._coarse_pending = _join(self._coarse_pending, point) if self._coarse_pending else point
        if self._coarse_pending.weight >= self._coarse_width:
            self._coarse.append(self._coarse_pending)
            self._coarse_pending = None
            self._coarse_changes += 1
            if len(self._coarse) > MAX_COARSE_POINTS:
                self._coarse = _merge_pairs(self._coarse)
                self._coarse_width *= 2
        self._open = None
        self._closed += 1

    def _ends(self, point: _Point) -> float:
        """When the last bucket merged into ``point`` ended (coarse points are wide)."""
        return point.t + point.weight * self.bucket_s / 2

    def _judge(self, now: float, recent: list[_Point], coarse: list[_Point], *,
               final: bool) -> TrendFinding | None:
        best: _Judged | None = None
        first_t = coarse[0].t if coarse else math.inf
        for fraction in WINDOW_FRACTIONS:
            window = self.window_s * fraction
            start = now - window
            if fraction < 1 and first_t > start - window:
                continue  # a short window needs as much history before it, for the new-high rule
            before = max((p.peak for p in (*coarse, *recent) if self._ends(p) <= start),
                         default=-math.inf)
            judged = self._judge_window([p for p in recent if p.t >= start], window, before)
            if judged is not None and (best is None or judged.span > best.span):
                best = judged
        # The whole run since the warm-up: for slow leaks, once it is longer than the
        # window; at the end of a run, whatever its length. Its points change only
        # every few buckets, and it is the costly part: judged once per change.
        if final:
            judged = self._judge_window(coarse, self.window_s * WINDOW_FRACTIONS[0], -math.inf)
        elif self._coarse_judged is not None and self._coarse_judged[0] == self._coarse_changes:
            judged = self._coarse_judged[1]
        else:
            judged = self._judge_window(coarse, self.window_s, -math.inf)
            self._coarse_judged = (self._coarse_changes, judged)
        if judged is not None and (best is None or judged.span > best.span):
            best = judged
        if best is None:
            return None
        return TrendFinding(
            metric=self.metric, unit=self.unit, falling=self.falling, plural=self.plural,
            slope_per_hour=self._sign * best.slope * HOUR_S, growth=self._sign * best.growth,
            start_level=self._sign * best.level, window_s=best.span, points=best.points,
            z=best.z, p_value=best.p, t=now,
        )

    def _judge_window(self, points: list[_Point], window: float, peak_before: float) -> _Judged | None:
        """The window's trend if it is a leak (the criteria of the module docstring)."""
        if len(points) < MIN_POINTS:
            return None
        span = points[-1].t - points[0].t
        if span < COVERAGE * window:
            return None
        ts = [p.t for p in points]
        vs = [p.floor for p in points]
        z, p = _mann_kendall(vs)
        if p >= self.alpha:
            return None
        slope = _theil_sen(ts, vs)
        if slope * HOUR_S < self.min_slope_per_hour:
            return None
        growth = slope * span
        medians = _segment_medians(ts, vs, SEGMENTS)
        if len(medians) < SEGMENTS:
            return None
        if growth < max(self.min_growth, self.min_growth_fraction * abs(medians[0])):
            return None
        if not _staircase(medians) or medians[-1] <= peak_before:
            return None
        return _Judged(slope, growth, medians[0], span, len(points), z, p)


def _merge_pairs(points: list[_Point]) -> list[_Point]:
    """Halve the whole-run series: neighbours become one point (weighted means).

    Means, not the lower floor: a floor of floors sinks with every merge (the
    minimum of more noise), and older points, merged more, would fake a rise.
    """
    merged = [_join(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)]
    if len(points) % 2:
        merged.append(points[-1])
    return merged


def _join(a: _Point, b: _Point) -> _Point:
    weight = a.weight + b.weight
    return _Point((a.t * a.weight + b.t * b.weight) / weight,
                  (a.floor * a.weight + b.floor * b.weight) / weight, weight, max(a.peak, b.peak))


def _mann_kendall(values: list[float]) -> tuple[float, float]:
    """Mann-Kendall's z and one-sided p-value for an increasing trend, with ties corrected."""
    n = len(values)
    s = 0
    for i in range(n - 1):
        vi = values[i]
        for vj in values[i + 1:]:
            s += (vj > vi) - (vj < vi)
    ties = collections.Counter(values).values()
    variance = (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5) for t in ties)) / 18
    if variance <= 0 or s == 0:
        return 0.0, 0.5
    z = (s - math.copysign(1, s)) / math.sqrt(variance)  # continuity correction
    return z, 0.5 * math.erfc(z / math.sqrt(2))


def _theil_sen(ts: list[float], vs: list[float]) -> float:
    """The median of all pairwise slopes: a robust line through noisy points."""
    slopes = [
        (vs[j] - vs[i]) / (ts[j] - ts[i])
        for i in range(len(ts) - 1)
        for j in range(i + 1, len(ts))
        if ts[j] > ts[i]
    ]
    return statistics.median(slopes) if slopes else 0.0


def _segment_medians(ts: list[float], vs: list[float], segments: int) -> list[float]:
    """Median floor of each of ``segments`` equal time slices (empty slices are skipped)."""
    start, span = ts[0], (ts[-1] - ts[0]) or 1.0
    slices: list[list[float]] = [[] for _ in range(segments)]
    for t, v in zip(ts, vs, strict=True):
        slices[min(segments - 1, int((t - start) / span * segments))].append(v)
    return [statistics.median(s) for s in slices if s]


def _staircase(medians: list[float]) -> bool:
    """Every segment well above the previous one: growth throughout, not one step."""
    rise = medians[-1] - medians[0]
    if rise <= 0:
        return False
    step = STEP_SHARE * rise / (len(medians) - 1)
    return all(b - a >= step for a, b in itertools.pairwise(medians))


def rss_detector(warmup_s: float = DEFAULT_WARMUP_S) -> TrendDetector:
    """QEMU RSS: 10 MiB/h is found in about an hour, 2 MiB/h over a long run; 1-2 MiB
    wobble, a 64 MiB translation cache and page cache growth are not leaks."""
    return TrendDetector("QEMU RSS", "MiB", warmup_s=warmup_s, min_slope_per_hour=2.0,
                         min_growth=8.0, min_growth_fraction=0.02)


def threads_detector(warmup_s: float = DEFAULT_WARMUP_S) -> TrendDetector:
    """QEMU threads: the floor ignores the I/O pool's workers (they come and go)."""
    return TrendDetector("QEMU threads", "threads", plural=True, warmup_s=warmup_s,
                         min_slope_per_hour=1.0, min_growth=8.0)


def fds_detector(warmup_s: float = DEFAULT_WARMUP_S) -> TrendDetector:
    """QEMU fds: one leaked per minute is found in a short window, one per hour over a day."""
    return TrendDetector("QEMU fds", "fds", plural=True, warmup_s=warmup_s,
                         min_slope_per_hour=1.0, min_growth=10.0)


def guest_memory_detector(warmup_s: float = DEFAULT_WARMUP_S) -> TrendDetector:
    """Guest MemAvailable, falling: the floor of its negative is the idle moments' level."""
    return TrendDetector("guest free memory", "MiB", falling=True, warmup_s=warmup_s,
                         min_slope_per_hour=2.0, min_growth=8.0, min_growth_fraction=0.05)


@dataclass(slots=True)
class _Reported:
    baseline: float
    growth: float


@dataclass(slots=True)
class ResourceTrends:
    """The leak detectors of one VM boot, each finding reported once per boot and metric.

    A reported metric is re-armed when it has grown `REARM_FACTOR` times as much
    from the same baseline as when reported (so a leak that goes on over days is
    reported again a few times, with the new numbers, not at every check).
    Feed both streams with the same clock (the events' ``t``).
    """

    rss: TrendDetector = field(default_factory=lambda: rss_detector())
    threads: TrendDetector = field(default_factory=lambda: threads_detector())
    fds: TrendDetector = field(default_factory=lambda: fds_detector())
    guest_memory: TrendDetector = field(default_factory=lambda: guest_memory_detector())
    _reported: dict[str, _Reported] = field(default_factory=dict)

    @classmethod
    def for_boot(cls, *, warmup_s: float = DEFAULT_WARMUP_S) -> ResourceTrends:
        """The default detectors with another warm-up (add the load's ramp time to it)."""
        return cls(rss_detector(warmup_s), threads_detector(warmup_s), fds_detector(warmup_s),
                   guest_memory_detector(warmup_s))

    def new_process(self) -> None:
        """QEMU was replaced under the same guest (a live migration): its process series start
        again (a new process is no leak); the guest's memory series goes on."""
        warmup = self.rss.warmup_s
        self.rss, self.threads, self.fds = rss_detector(warmup), threads_detector(warmup), fds_detector(warmup)
        for detector in (self.rss, self.threads, self.fds):
            self._reported.pop(detector.metric, None)

    @property
    def detectors(self) -> tuple[TrendDetector, ...]:
        """All four, in a stable order."""
        return (self.rss, self.threads, self.fds, self.guest_memory)

    def add_process(self, t: float, rss_bytes: int, threads: int, fds: int) -> None:
        """A sample of the QEMU process (`soak.events.ProcessSample`)."""
        self.rss.add(t, rss_bytes / MIB)
        self.threads.add(t, threads)
        self.fds.add(t, fds)

    def add_heartbeat(self, t: float, mem_available_kib: int) -> None:
        """A guest heartbeat's MemAvailable (`soak.events.Heartbeat`)."""
        self.guest_memory.add(t, mem_available_kib / KIB_PER_MIB)

    def check(self, now: float) -> list[TrendFinding]:
        """New findings only: each metric once, then again only after it grew much further."""
        return self._new(d.check(now) for d in self.detectors)

    def end_of_run(self, now: float) -> list[TrendFinding]:
        """The final check of the boot: what the data so far shows, not yet reported."""
        return self._new(d.end_of_run_check(now) for d in self.detectors)

    def _new(self, findings: Iterable[TrendFinding | None]) -> list[TrendFinding]:
        fresh = []
        for finding in findings:
            if finding is None:
                continue
            end_level = finding.start_level + finding.growth
            last = self._reported.get(finding.metric)
            if last is not None and abs(end_level - last.baseline) < REARM_FACTOR * last.growth:
                continue
            baseline = last.baseline if last is not None else finding.start_level
            self._reported[finding.metric] = _Reported(baseline, abs(end_level - baseline))
            fresh.append(finding)
        return fresh
