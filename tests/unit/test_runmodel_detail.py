"""The report's and the comparison's share of the fold: bounded series, timeline and samples."""

from __future__ import annotations

import pytest

from soak import events as ev
from soak.kinds import Kind
from soak.runmodel import Buckets, RunModel, replay
from soak.runmodel.counts import Thinned
from soak.runmodel.detail import SAMPLES_LIMIT, TIMELINE_LIMIT
from soak.runmodel.series import SERIES_BUCKETS

T0 = 1_000_000.0
HOUR = 3600.0


def started(duration_s: float = HOUR) -> ev.RunStarted:
    vms = [ev.VmInfo(name=f"g-{i}", group="g", vcpus=2**i, memory_mib=256, machine="pc", image="i") for i in range(2)]
    return ev.RunStarted(t=T0, run_id="r", profile="p", profile_path="p.toml", seed=1, accel="tcg", accel_reason="",
                         version="0", duration_s=duration_s, command=[], vms=vms)


def beat(t: float, lateness: float, name: str = "g-0") -> ev.Heartbeat:
    return ev.Heartbeat(t=t, vm=name, seq=1, uptime_s=1, load1=0, mem_free_kib=1, mem_available_kib=1, gap_s=1,
                        lateness_s=lateness)


def test_detail_is_only_built_when_asked() -> None:
    assert RunModel().detail is None
    assert RunModel(detail=True).detail is not None


def test_a_week_of_heartbeats_stays_within_the_bucket_bound() -> None:
    """A 1 h run that goes on for a week at 1 heartbeat/s: one series, at most 256 points."""
    model = RunModel(detail=True)
    model.apply(started())
    week = 7 * 24 * 3600
    for second in range(0, week, 31):  # every 31st second is enough to fill every bucket
        model.apply(beat(T0 + second, lateness=1.0 if second < week // 2 else 3.0))
    assert model.detail is not None
    points = model.detail.vms["g-0"].lateness.points()
    assert 128 < len(points) <= SERIES_BUCKETS
    assert points[0].t == T0 and points[-1].t + points[-1].width_s >= T0 + week
    assert sum(p.count for p in points) == len(range(0, week, 31))
    assert points[0].mean == points[0].low == points[0].high == 1.0 and points[-1].mean == 3.0
    assert len(model.detail.samples.lateness_s[1]) <= SAMPLES_LIMIT


def test_buckets_keep_mean_range_and_count_through_coarsening() -> None:
    series = Buckets(0.0, 1.0, limit=4)
    for t, value in [(0.0, 1.0), (0.5, 3.0), (1.0, 5.0), (3.9, 7.0), (4.0, 9.0)]:
        series.add(t, value)
    series.add(5.0, float("nan"))  # NaN values are not plotted
    assert series.width_s == 2.0
    assert [(p.t, p.mean, p.low, p.high, p.count) for p in series.points()] == [
        (0.0, 3.0, 1.0, 5.0, 3), (2.0, 7.0, 7.0, 7.0, 1), (4.0, 9.0, 9.0, 9.0, 1)]
    series.add(-50.0, 0.0)  # before the start (clock skew): the first bucket
    assert series.points()[0].low == 0.0


def test_thinned_lists_stay_bounded_and_even() -> None:
    kept: Thinned[int] = Thinned(8)
    for i in range(1000):
        kept.add(i)
    assert len(kept) < 8 and kept.seen == 1000
    assert kept.items == [i * kept.stride for i in range(len(kept))]  # the first, then every stride-th
    assert kept.items[-1] + kept.stride > 1000 - kept.stride * 2  # and reaching to the end
    with pytest.raises(ValueError):
        Thinned(1)


def test_timeline_of_boots_failures_and_faults() -> None:
    events: list[ev.Event] = [
        started(),
        ev.VmStarting(t=T0 + 1, vm="g-1", boot=1, pid=1, argv=[]),
        ev.VmReady(t=T0 + 5, vm="g-1", boot=1, boot_s=4.0),
        ev.FaultInjected(t=T0 + 10, vm="g-1", fault="pause", seq=1, duration_s=2.5),
        ev.Failure(t=T0 + 20, vm="g-1", kind=Kind.QEMU_CRASH, title="QEMU killed by SIGKILL", boot=1,
                   detected_by="process", expected=True, evidence="vms/g-1/failures/001-qemu-crash"),
        ev.VmStopped(t=T0 + 20, vm="g-1", boot=1, reason="failure", exit_code=-9),
        ev.VmStarting(t=T0 + 22, vm="g-1", boot=2, pid=2, argv=[]),
        ev.VmRetired(t=T0 + 30, vm="g-1", reason="max restarts"),
    ]
    model = replay(events, detail=True)
    assert model.detail is not None
    timeline = model.detail.vms["g-1"]
    assert [(s.boot, s.start, s.ready, s.stop, s.reason) for s in timeline.boots] == [
        (1, T0 + 1, T0 + 5, T0 + 20, "failure"), (2, T0 + 22, None, T0 + 30, "retired")]
    [window] = timeline.faults
    assert (window.fault, window.start, window.end, window.expect) == ("pause", T0 + 10, T0 + 12.5, "survive")
    [mark] = timeline.failures
    assert (mark.kind, mark.expected, mark.evidence) == ("qemu-crash", True, "vms/g-1/failures/001-qemu-crash")
    assert model.detail.samples.boot_s == {2: model.detail.samples.boot_s[2]} and list(
        model.detail.samples.boot_s[2]) == [4.0]


def test_timelines_are_bounded_per_vm() -> None:
    model = RunModel(detail=True)
    model.apply(started())
    for i in range(3 * TIMELINE_LIMIT):
        model.apply(ev.FaultInjected(t=T0 + i, vm="g-0", fault="nmi", seq=i))
        model.apply(ev.VmStarting(t=T0 + i, vm="g-0", boot=i + 1, pid=i, argv=[]))
    assert model.detail is not None
    assert len(model.detail.vms["g-0"].faults) < TIMELINE_LIMIT
    assert len(model.detail.vms["g-0"].boots) < TIMELINE_LIMIT
    assert model.boots == 3 * TIMELINE_LIMIT  # the model's own counts are never thinned


def test_compare_samples_by_stressor_and_vcpus_and_process_series() -> None:
    events: list[ev.Event] = [started()]
    for i, (name, stressor, rate) in enumerate([("g-0", "cpu", 100.0), ("g-1", "cpu", 190.0), ("g-1", "vm", 5.0),
                                                 ("g-0", "cpu", 110.0)]):
        events.append(ev.WorkloadMetrics(t=T0 + 60 * i, vm=name, stressor=stressor, bogo_ops=rate * 10,
                                         bogo_ops_per_s=rate, seconds=10))
    events += [ev.ProcessSample(t=T0 + 60 * i, vm="g-0", pid=1, cpu_s=i, rss_bytes=100 + i, threads=4, fds=9)
               for i in range(5)]
    model = replay(events, detail=True)
    assert model.detail is not None
    samples = model.detail.samples.bogo_ops_per_s
    assert {key: list(kept) for key, kept in samples.items()} == {
        ("cpu", 1): [100.0, 110.0], ("cpu", 2): [190.0], ("vm", 2): [5.0]}
    g0 = model.detail.vms["g-0"]
    assert [p.mean for p in g0.throughput["cpu"].points()] == [100.0, 110.0]
    assert [p.high for p in g0.rss.points()] == [100, 101, 102, 103, 104]
    assert g0.rss.width_s == HOUR / SERIES_BUCKETS
