"""`Metrics` on an injected registry: the values Prometheus would scrape after given events."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from soak.events import (
    Event,
    Failure,
    FaultInjected,
    Heartbeat,
    HeartbeatLate,
    InfraProblem,
    VmReady,
    VmRetired,
    VmStarting,
    VmStopped,
)
from soak.kinds import Kind
from soak.metrics import Metrics, totals_from_events
from soak.recorder import Recorder

from .scenario import MIB, beat, every_event, finish, fleet, run_started, sample

T0 = 1000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry, clock: Clock) -> Metrics:
    return Metrics(registry, hang_timeout_s=20.0, clock=clock)


def feed(metrics: Metrics, events: list[Event]) -> None:
    for event in events:
        metrics.observe(event)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_run_started_lists_the_fleet_as_pending(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.observe(run_started(T0, fleet(small=2, big=1), duration_s=600))

    assert value(registry, "soak_vms", state="pending") == 3
    assert value(registry, "soak_vms", state="running") == 0
    info = dict(
        run_id="20261125-120000-abcd", profile="smoke", seed="7", accel="tcg", version="0.1.0"
    )
    assert value(registry, "soak_run_info", **info) == 1
    assert value(registry, "soak_run_start_timestamp_seconds") == T0
    assert value(registry, "soak_run_deadline_timestamp_seconds") == T0 + 600
    assert value(registry, "soak_heartbeat_timeout_seconds") == 20
    shape = dict(vm="big-0", group="big", vcpus="4", memory_mib="1024", machine="q35", image="img",
                 arch="x86_64", firmware="bios")
    assert value(registry, "soak_vm_info", **shape) == 1
    assert value(registry, "soak_vm_state", vm="big-0", state="pending") == 1
    assert value(registry, "soak_vm_boots_total", vm="big-0") == 0


def test_every_failure_kind_is_exported_from_the_start(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.observe(run_started(T0, fleet()))
    for kind in Kind:
        assert value(registry, "soak_failures_total", kind=kind.value) == 0
        assert value(registry, "soak_expected_failures_total", kind=kind.value) == 0


def test_a_boot_moves_the_vm_to_running_and_times_the_boot(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    feed(
        metrics, [run_started(T0, fleet()), VmStarting(t=T0, vm="small-0", boot=1, pid=1, argv=[])]
    )
    assert value(registry, "soak_vm_state", vm="small-0", state="booting") == 1
    assert value(registry, "soak_vm_state", vm="small-0", state="pending") == 0

    metrics.observe(VmReady(t=T0 + 7, vm="small-0", boot=1, boot_s=7.0))

    assert value(registry, "soak_vm_state", vm="small-0", state="running") == 1
    assert value(registry, "soak_vms", state="running") == 1
    assert value(registry, "soak_boots_total") == 1
    assert value(registry, "soak_vm_boots_total", vm="small-0") == 1
    h = "soak_boot_duration_seconds"
    assert value(registry, f"{h}_count", group="small") == 1
    assert value(registry, f"{h}_sum", group="small") == 7.0
    assert value(registry, f"{h}_bucket", group="small", le="5.0") == 0
    assert value(registry, f"{h}_bucket", group="small", le="10.0") == 1
    assert value(registry, f"{h}_bucket", group="small", le="600.0") == 1
    assert value(registry, f"{h}_count", group="big") == 0  # pre-created per group


def test_heartbeats_and_samples_feed_the_vm_gauges(
    metrics: Metrics, registry: CollectorRegistry, clock: Clock
) -> None:
    feed(
        metrics,
        [
            run_started(T0, fleet()),
            VmStarting(t=T0, vm="small-0", boot=1, pid=1, argv=[]),
            VmReady(t=T0 + 2, vm="small-0", boot=1, boot_s=2.0),
            beat("small-0", T0 + 3, 1, lateness_s=0.3, uptime_s=2.5),
            sample("small-0", T0 + 3, cpu_s=4.5, rss_bytes=123 * MIB),
        ],
    )
    clock.now = T0 + 8

    assert value(registry, "soak_vm_heartbeat_age_seconds", vm="small-0") == 5.0
    assert value(registry, "soak_vm_guest_uptime_seconds", vm="small-0") == 2.5
    assert value(registry, "soak_vm_guest_load1", vm="small-0") == 0.5
    assert value(registry, "soak_vm_guest_memory_free_bytes", vm="small-0") == 100_000 * 1024
    assert value(registry, "soak_vm_guest_memory_available_bytes", vm="small-0") == 150_000 * 1024
    assert value(registry, "soak_vm_qemu_cpu_seconds_total", vm="small-0") == 4.5
    assert value(registry, "soak_vm_qemu_rss_bytes", vm="small-0") == 123 * MIB
    assert value(registry, "soak_vm_qemu_threads", vm="small-0") == 9
    assert value(registry, "soak_vm_qemu_open_fds", vm="small-0") == 40
    lateness = "soak_heartbeat_lateness_seconds_bucket"
    assert value(registry, lateness, group="small", le="0.25") == 0
    assert value(registry, lateness, group="small", le="0.5") == 1


def test_heartbeat_age_counts_from_ready_until_the_first_beat(
    metrics: Metrics, registry: CollectorRegistry, clock: Clock
) -> None:
    feed(
        metrics, [run_started(T0, fleet()), VmStarting(t=T0, vm="small-0", boot=1, pid=1, argv=[])]
    )
    assert value(registry, "soak_vm_heartbeat_age_seconds", vm="small-0") is None  # booting

    metrics.observe(VmReady(t=T0 + 2, vm="small-0", boot=1, boot_s=2.0))
    clock.now = T0 + 3

    assert value(registry, "soak_vm_heartbeat_age_seconds", vm="small-0") == 1.0


def test_a_late_heartbeat_marks_the_vm_unresponsive_until_it_beats_again(
    metrics: Metrics, registry: CollectorRegistry, clock: Clock
) -> None:
    feed(
        metrics,
        [
            run_started(T0, fleet()),
            VmStarting(t=T0, vm="small-0", boot=1, pid=1, argv=[]),
            VmReady(t=T0 + 2, vm="small-0", boot=1, boot_s=2.0),
            HeartbeatLate(t=T0 + 25, vm="small-0", age_s=23.0),
        ],
    )
    clock.now = T0 + 26
    assert value(registry, "soak_vm_state", vm="small-0", state="unresponsive") == 1
    assert value(registry, "soak_vms", state="unresponsive") == 1
    assert value(registry, "soak_vm_heartbeat_age_seconds", vm="small-0") == 24.0

    metrics.observe(beat("small-0", T0 + 26, 2))

    assert value(registry, "soak_vm_state", vm="small-0", state="running") == 1
    assert value(registry, "soak_vm_heartbeat_age_seconds", vm="small-0") == 0.0


def test_failures_count_by_kind_and_expected_ones_apart(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    feed(metrics, every_event(T0))

    assert value(registry, "soak_failures_total", kind="kernel-oops") == 1
    assert value(registry, "soak_failures_total", kind="guest-hang") == 0
    assert value(registry, "soak_expected_failures_total", kind="guest-hang") == 1
    assert value(registry, "soak_vm_failures_total", vm="big-0") == 1
    latency = "soak_failure_detection_latency_seconds"
    assert value(registry, f"{latency}_count", detected_by="console") == 1
    assert value(registry, f"{latency}_sum", detected_by="console") == 0.2
    assert value(registry, f"{latency}_count", detected_by="heartbeat") == 1
    assert value(registry, f"{latency}_count", detected_by="qmp") == 0  # pre-created
    assert value(registry, "soak_faults_injected_total", fault="pause") == 1
    assert value(registry, "soak_infra_problems_total", problem="qmp-timeout") == 1


def test_a_stopped_vm_loses_its_process_and_guest_figures(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    feed(
        metrics,
        [
            run_started(T0, fleet()),
            VmStarting(t=T0, vm="small-0", boot=1, pid=1, argv=[]),
            VmReady(t=T0 + 2, vm="small-0", boot=1, boot_s=2.0),
            beat("small-0", T0 + 3, 1),
            sample("small-0", T0 + 3),
            VmStopped(t=T0 + 10, vm="small-0", boot=1, reason="failure", exit_code=None),
            beat("small-0", T0 + 10.1, 2),  # overtaken by the stop: must not revive the gauges
        ],
    )

    assert value(registry, "soak_vm_state", vm="small-0", state="stopped") == 1
    for name in ("soak_vm_qemu_rss_bytes", "soak_vm_guest_load1", "soak_vm_heartbeat_age_seconds"):
        assert value(registry, name, vm="small-0") is None, name
    assert value(registry, "soak_vm_boots_total", vm="small-0") == 1  # the VM is still in the run


def test_a_retired_vm_leaves_no_series_but_is_counted_retired(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    feed(metrics, every_event(T0))  # small-1 is retired at the end

    assert value(registry, "soak_vms", state="retired") == 1
    text = _exposition(registry)
    assert 'vm="small-1"' not in text
    assert 'vm="small-0"' in text


def test_vm_seconds_add_up_uptimes_and_stop_with_the_run(
    metrics: Metrics, registry: CollectorRegistry, clock: Clock
) -> None:
    feed(
        metrics,
        [
            run_started(T0, fleet()),
            VmStarting(t=T0, vm="small-0", boot=1, pid=1, argv=[]),
            VmReady(t=T0 + 10, vm="small-0", boot=1, boot_s=10),
            VmStopped(t=T0 + 40, vm="small-0", boot=1, reason="failure", exit_code=1),  # 30 s
            VmStarting(t=T0 + 50, vm="small-0", boot=2, pid=2, argv=[]),
            VmReady(t=T0 + 60, vm="small-0", boot=2, boot_s=10),
            VmStarting(t=T0, vm="big-0", boot=1, pid=3, argv=[]),
            VmReady(t=T0 + 20, vm="big-0", boot=1, boot_s=20),
        ],
    )
    clock.now = T0 + 100
    assert value(registry, "soak_run_vm_seconds_total") == 30 + 40 + 80
    assert value(registry, "soak_run_elapsed_seconds") == 100

    metrics.observe(finish(T0 + 120))
    clock.now = T0 + 500

    assert value(registry, "soak_run_vm_seconds_total") == 30 + 60 + 100
    assert value(registry, "soak_run_elapsed_seconds") == 120


def test_vm_seconds_never_go_back_when_a_stop_is_recorded_late(
    metrics: Metrics, registry: CollectorRegistry, clock: Clock
) -> None:
    feed(
        metrics,
        [
            run_started(T0, fleet()),
            VmStarting(t=T0, vm="small-0", boot=1, pid=1, argv=[]),
            VmReady(t=T0, vm="small-0", boot=1, boot_s=1),
        ],
    )
    clock.now = T0 + 10  # a scrape counts the live VM to the scrape time
    assert value(registry, "soak_run_vm_seconds_total") == 10

    metrics.observe(VmStopped(t=T0 + 9, vm="small-0", boot=1, reason="failure", exit_code=1))

    assert value(registry, "soak_run_vm_seconds_total") == 10  # not 9: counters never decrease
    assert metrics.totals().vm_seconds == 9  # the totals keep the event's figure


def test_label_values_from_outside_stay_bounded(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.observe(run_started(T0, fleet()))
    for i in range(100):
        metrics.observe(FaultInjected(t=T0, vm="small-0", fault=f"fault-{i}", seq=i))
        metrics.observe(InfraProblem(t=T0, problem=f"problem-{i}", message="m"))
    metrics.observe(
        Failure(
            t=T0, vm="small-0", kind=Kind.OOM, title="t", boot=1, detected_by="psychic", latency_s=1
        )
    )

    totals = metrics.totals()
    assert len(totals.faults_injected) == 33 and totals.faults_injected["other"] == 68
    assert len(totals.infra_problems) == 33
    latency = "soak_failure_detection_latency_seconds_count"
    assert value(registry, latency, detected_by="other") == 1


def test_observe_never_raises_and_counts_what_it_could_not_take(
    metrics: Metrics, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    metrics.observe(run_started(T0, fleet()))
    broken = VmReady(t=T0, vm="small-0", boot=1, boot_s="soon")  # type: ignore[arg-type]

    metrics.observe(broken)
    metrics.observe(broken)
    metrics.observe(VmStarting(t=T0, vm="small-1", boot=1, pid=1, argv=[]))

    assert value(registry, "soak_metrics_observe_errors_total") == 2
    assert len([r for r in caplog.records if "vm-ready" in r.getMessage()]) == 1  # logged once
    assert value(registry, "soak_vm_boots_total", vm="small-1") == 1  # still working


def test_events_of_an_unknown_type_are_ignored(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.observe(Event(t=T0))
    assert value(registry, "soak_metrics_observe_errors_total") == 0


def test_metrics_is_an_observer_of_the_recorder(registry: CollectorRegistry, clock: Clock) -> None:
    metrics = Metrics(registry, clock=clock)
    recorder = Recorder([metrics])
    for event in every_event(T0):
        recorder.emit(event)
    assert value(registry, "soak_boots_total") == 4


def test_replaying_the_journal_gives_the_live_totals(metrics: Metrics, clock: Clock) -> None:
    events = [*every_event(T0), finish(T0 + 200)]
    feed(metrics, events)
    clock.now = T0 + 999

    live = metrics.totals()
    assert totals_from_events(events) == live
    assert live.to_json() == {
        "run_id": "20261125-120000-abcd",
        "profile": "smoke",
        "seed": 7,
        "accel": "tcg",
        "version": "0.1.0",
        "start_timestamp_s": T0,
        "elapsed_s": 200.0,
        "vm_seconds": (200 - 4) + (34 - 6) + (200 - 40),
        "boots": 4,
        "vms": {
            "pending": 0,
            "booting": 0,
            "running": 2,
            "unresponsive": 0,
            "stopped": 0,
            "restarting": 0,
            "retired": 1,
        },
        "failures": {**{k.value: 0 for k in Kind}, "kernel-oops": 1},
        "expected_failures": {**{k.value: 0 for k in Kind}, "guest-hang": 1},
        "infra_problems": {"qmp-timeout": 1},
        "faults_injected": {"pause": 1, "migrate": 1},
    }


def test_totals_of_a_run_that_never_started_are_empty(metrics: Metrics) -> None:
    totals = metrics.totals()
    assert totals.boots == 0 and totals.elapsed_s == 0 and totals.run_id == ""


def _exposition(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


def test_heartbeat_only_counts_lateness_when_the_vm_is_not_live(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    feed(metrics, [run_started(T0, fleet()), VmRetired(t=T0, vm="small-0", reason="x")])
    metrics.observe(
        Heartbeat(
            t=T0,
            vm="small-0",
            seq=1,
            uptime_s=1,
            load1=1,
            mem_free_kib=1,
            mem_available_kib=1,
            gap_s=1,
            lateness_s=0,
        )
    )
    assert value(registry, "soak_heartbeat_lateness_seconds_count", group="small") == 1
    assert 'vm="small-0"' not in _exposition(registry)
