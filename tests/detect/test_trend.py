"""Leak detection on synthetic series: leaks found, warm-up, noise, sawtooth and steps not."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable

import pytest

from soak.detect.trend import ResourceTrends, TrendDetector, TrendFinding
from soak.kinds import Kind

HOUR = 3600.0
SAMPLE_S = 5.0  # the default process sample interval
MIB = 1024 * 1024

Series = Callable[[float], float]


def tcg_warmup(t: float) -> float:
    """QEMU RSS of a TCG guest: +70 MiB over its first minutes, then a plateau."""
    return 300 + 70 * (1 - math.exp(-t / 180))


def rss_detector() -> TrendDetector:
    return ResourceTrends().rss


def feed(detector: TrendDetector, series: Series, hours: float, *,
         step_s: float = SAMPLE_S) -> tuple[TrendFinding | None, TrendFinding | None]:
    """The first finding of the periodic checks, and the end-of-run one."""
    first = None
    t = 0.0
    while t <= hours * HOUR:
        detector.add(t, series(t))
        found = detector.check(t)
        if found is not None and first is None:
            first = found
        t += step_s
    return first, detector.end_of_run_check(t)


@pytest.mark.parametrize("seed", range(10))
def test_warmup_then_flat_with_noise_is_nothing(seed: int) -> None:
    rng = random.Random(seed)
    assert feed(rss_detector(), lambda t: tcg_warmup(t) + rng.gauss(0, 3), 4) == (None, None)


@pytest.mark.parametrize("seed", range(5))
def test_steady_leak_of_10_mib_per_hour_is_found_with_its_slope(seed: int) -> None:
    rng = random.Random(seed)
    first, end = feed(rss_detector(), lambda t: tcg_warmup(t) + 10 * t / HOUR + rng.gauss(0, 3), 2)
    assert first is not None and end is not None
    assert first.t <= 1.5 * HOUR  # found within about an hour of it, after the warm-up
    assert end.slope_per_hour == pytest.approx(10, rel=0.2)
    assert end.growth == pytest.approx(10 * end.window_s / HOUR, rel=0.2)
    assert end.p_value < 1e-6 and not end.falling


def test_faster_leaks_are_found_faster() -> None:
    found = {}
    for rate in (10, 40, 200):
        noise = random.Random(rate).gauss
        first, _ = feed(rss_detector(), lambda t, r=rate, n=noise: tcg_warmup(t) + r * t / HOUR + n(0, 3), 2)
        assert first is not None
        found[rate] = first.t
    assert found[200] <= found[40] < found[10]
    # warm-up (10 min), a quarter-hour of history, then a quarter-hour window
    assert found[200] <= 45 * 60


def test_slow_leak_is_found_over_the_whole_run() -> None:
    rng = random.Random(3)
    first, end = feed(rss_detector(), lambda t: tcg_warmup(t) + 3 * t / HOUR + rng.gauss(0, 3), 12,
                      step_s=30)
    assert first is not None and first.window_s > HOUR  # the long horizon saw it
    assert end is not None and end.slope_per_hour == pytest.approx(3, rel=0.2)


def test_leak_below_the_smallest_slope_is_not_reported() -> None:
    rng = random.Random(4)
    assert feed(rss_detector(), lambda t: tcg_warmup(t) + 0.5 * t / HOUR + rng.gauss(0, 1), 24,
                step_s=60) == (None, None)


def sawtooth(period_s: float, phase: float, rng: random.Random) -> Series:
    def gc(t: float) -> float:  # slow allocation, sudden collection
        return tcg_warmup(t) + 40 * ((t / period_s + phase) % 1) + rng.gauss(0, 2)
    return gc


@pytest.mark.parametrize("period_s", [60, 300, 600, 1500])
@pytest.mark.parametrize("phase", [0.0, 0.3, 0.7])
def test_sawtooth_flat_on_average_is_nothing(period_s: float, phase: float) -> None:
    rng = random.Random(int(period_s + phase * 10))
    assert feed(rss_detector(), sawtooth(period_s, phase, rng), 4) == (None, None)


@pytest.mark.parametrize("phase", [0.0, 0.3, 0.7])
def test_a_slow_sawtooth_is_nothing_once_it_has_dropped(phase: float) -> None:
    # A 45-minute cycle looks like growth until it first drops: judge from the second on.
    detector, series, found = rss_detector(), sawtooth(2700, phase, random.Random(7)), []
    t = 0.0
    while t <= 4 * HOUR:
        detector.add(t, series(t))
        if t > 10 * 60 + 2 * 2700 and (finding := detector.check(t)) is not None:
            found.append(finding)
        t += SAMPLE_S
    assert found == [] and detector.end_of_run_check(t) is None


@pytest.mark.parametrize("at_h", [0.3, 0.6, 1.0, 1.33, 2.0, 2.9])
@pytest.mark.parametrize("size", [10, 40, 150])
def test_a_one_off_step_is_nothing(at_h: float, size: float) -> None:
    rng = random.Random(int(at_h * 100 + size))
    step = lambda t: tcg_warmup(t) + (size if t > at_h * HOUR else 0) + rng.gauss(0, 2)  # noqa: E731
    assert feed(rss_detector(), step, 3) == (None, None)


def test_fd_leak_of_one_per_minute_is_found() -> None:
    fds = ResourceTrends().fds
    first, end = feed(fds, lambda t: 12 + int(t // 60), 1.5)
    assert first is not None and first.t <= 45 * 60
    assert end is not None and end.slope_per_hour == pytest.approx(60, rel=0.1)
    assert end.verdict().title == "resource-leak: QEMU fds grow"


def test_thread_pool_spikes_are_nothing() -> None:
    rng = random.Random(5)

    def threads(t: float) -> float:  # 6 threads, a pool of up to 40 workers now and then
        return 6 + (rng.randint(1, 40) if rng.random() < 0.3 else 0)

    assert feed(ResourceTrends().threads, threads, 3) == (None, None)


def test_shrinking_guest_memory_under_bursty_load_is_found() -> None:
    rng = random.Random(6)

    def available(t: float) -> float:  # idle 160 MiB, ~70 MiB taken while a burst runs
        burst = (t % 90) < 60
        return 160 - 20 * t / HOUR - (70 if burst else 0) + rng.gauss(0, 3)

    detector = ResourceTrends().guest_memory
    first, end = feed(detector, available, 3, step_s=1.0)
    assert first is not None and end is not None and end.falling
    assert end.slope_per_hour == pytest.approx(-20, rel=0.2) and end.growth < 0
    assert end.verdict().title == "resource-leak: guest free memory shrinks"


@pytest.mark.parametrize("seed", range(5))
def test_bursty_load_without_a_leak_is_nothing(seed: int) -> None:
    rng = random.Random(seed)
    gaps = [rng.uniform(15, 45) for _ in range(1000)]

    def available(t: float) -> float:
        cycle, k = 0.0, 0
        while cycle + 60 + gaps[k] < t % 20000:
            cycle += 60 + gaps[k]
            k += 1
        burst = (t % 20000) - cycle < 60
        return 160 - (rng.uniform(50, 90) if burst else 0) + rng.gauss(0, 3)

    assert feed(ResourceTrends().guest_memory, available, 3, step_s=2.0) == (None, None)


def test_memory_is_bounded_over_a_long_run() -> None:
    detector = rss_detector()
    for i in range(100_000):  # a week at one sample per 6 s
        detector.add(i * 6.0, 300 + (i % 7))
        if i % 1000 == 0:
            detector.check(i * 6.0)
    assert detector.stored_points <= 61 + 1 + 128 + 1


def test_end_of_run_check_sees_what_periodic_checks_have_not_yet() -> None:
    detector = rss_detector()
    for i in range(int(50 * 60 / SAMPLE_S)):  # 50 minutes, never checked
        detector.add(i * SAMPLE_S, tcg_warmup(i * SAMPLE_S) + 120 * i * SAMPLE_S / HOUR)
    found = detector.end_of_run_check(50 * 60)
    assert found is not None and found.slope_per_hour == pytest.approx(120, rel=0.1)


def test_a_run_shorter_than_the_warmup_says_nothing() -> None:
    detector = rss_detector()
    for i in range(int(9 * 60 / SAMPLE_S)):
        detector.add(i * SAMPLE_S, 300 + i)  # steep, but it may be warm-up
    assert detector.end_of_run_check(540) is None


def test_verdict_has_a_stable_title_and_the_numbers_in_its_message() -> None:
    finding = TrendFinding("QEMU RSS", "MiB", False, False, 10.2, 10.0, 402.1, 3540, 59, 8.1, 2e-16, 7200)
    verdict = finding.verdict()
    assert verdict.kind is Kind.RESOURCE_LEAK and not verdict.terminal
    assert verdict.title == "resource-leak: QEMU RSS grows"
    for number in ("10.0 MiB", "+10.20 MiB/h", "59 buckets", "z=8.1", "402.1 MiB", "59m00s"):
        assert number in verdict.message


def test_trends_report_each_metric_once_per_boot_until_it_doubles() -> None:
    trends = ResourceTrends()
    reported: list[TrendFinding] = []
    t = 0.0
    while t <= 20 * HOUR:
        trends.add_process(t, int((300 + 10 * t / HOUR) * MIB), 6, 12)
        trends.add_heartbeat(t, 160 * 1024)
        if t % 600 == 0:
            reported += trends.check(t)
        t += 30
    reported += trends.end_of_run(t)
    assert {f.metric for f in reported} == {"QEMU RSS"}
    growths = [f.start_level + f.growth - reported[0].start_level for f in reported]
    assert 2 <= len(reported) <= 6  # re-armed as the leak doubles, not at every check
    assert all(b >= 2 * a * 0.99 for a, b in itertools.pairwise(growths))


def test_trends_convert_units() -> None:
    trends = ResourceTrends()
    t = 0.0
    while t <= 2 * HOUR:
        trends.add_process(t, 300 * MIB, 6, 12)
        trends.add_heartbeat(t, int((160 - 30 * t / HOUR) * 1024))
        t += 5
    (finding,) = trends.end_of_run(t)
    assert finding.metric == "guest free memory" and finding.unit == "MiB"
    assert finding.start_level == pytest.approx(160 - 30 * 0.25, abs=8)


def test_bad_window_is_refused() -> None:
    with pytest.raises(ValueError):
        TrendDetector("x", "u", window_s=300, bucket_s=60, min_slope_per_hour=1, min_growth=1)


def test_a_leak_that_starts_days_into_a_run_is_found_as_fast() -> None:
    rng = random.Random(8)
    onset = 72 * HOUR

    def late(t: float) -> float:
        return 330 + (200 * (t - onset) / HOUR if t > onset else 0) + rng.gauss(0, 1)

    first, _ = feed(rss_detector(), late, 74, step_s=30)
    assert first is not None and first.t - onset <= 40 * 60
    assert first.window_s < HOUR  # found by a short window, despite three days of history


def test_for_boot_sets_every_warmup() -> None:
    trends = ResourceTrends.for_boot(warmup_s=1800)
    assert {d.warmup_s for d in trends.detectors} == {1800}
    assert [d.metric for d in trends.detectors] == [d.metric for d in ResourceTrends().detectors]
