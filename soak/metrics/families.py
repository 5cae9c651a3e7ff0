"""Rendering the run model's views as Prometheus metric families, at scrape or push time.

Families are built from a `Snapshot` of the model on every collect (taken under
the model's lock, rendered outside it), so per-VM series exist
exactly while their VM is in the run (a retired VM's series are simply not
rendered any more), and figures that grow with time (elapsed time, heartbeat
age, VM-seconds) are exact at the moment of the scrape.

`run_families` renders the `RunTotals`: the live endpoint and the final push
share it, so the pushed figures are the ones Prometheus scraped.

`with_identity` labels every series with the run's place among the shards of
its run group (``host``, ``shard``), which Prometheus cannot know: a target's
address is not a host name (a pod IP, a port on a shared host), the shard a
host runs changes from one run to the next, and the Pushgateway knows neither.
The labels are constant for one process, so they add no series to a scrape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from soak.metrics.views import RunTotals, Snapshot
from soak.runmodel import HEARTBEAT_STATES, LIVE, VmRecord, VmState
from soak.runmodel.counts import Histogram

KIB = 1024
RUN_INFO = "soak_run_info"


def with_identity(
    families: Iterable[Metric],
    labels: Mapping[str, str],
    run_info_labels: Mapping[str, str] | None = None,
) -> Iterator[Metric]:
    """``families`` with ``labels`` on every sample and ``run_info_labels`` on `RUN_INFO` only.

    Labels that change with every run (the run group, the attempt) go on the
    info series alone, the pattern Prometheus recommends: join them with
    ``* on (job, instance) group_left (run_group) soak_run_info``.
    """
    run_info_labels = run_info_labels or {}
    for family in families:
        extra = {**labels, **run_info_labels} if family.name == RUN_INFO else dict(labels)
        if not extra:
            yield family
            continue
        twin = Metric(family.name, family.documentation, family.type, family.unit)
        twin.samples = [s._replace(labels={**s.labels, **extra}) for s in family.samples]
        yield twin


def run_families(totals: RunTotals) -> Iterator[Metric]:
    """Run-level figures: the totals of `RunTotals`, nothing per VM."""
    if totals.start_timestamp_s > 0:
        info = GaugeMetricFamily(
            RUN_INFO,
            "The run: constant 1, its metadata in labels.",
            labels=("run_id", "profile", "seed", "accel", "version"),
        )
        info.add_metric(
            [totals.run_id, totals.profile, str(totals.seed), totals.accel, totals.version], 1
        )
        yield info
        yield GaugeMetricFamily(
            "soak_run_start_timestamp_seconds",
            "When the run started (Unix time).",
            value=totals.start_timestamp_s,
        )
    yield GaugeMetricFamily(
        "soak_run_elapsed_seconds",
        "Time since the run started; frozen when it finished.",
        value=totals.elapsed_s,
    )
    yield CounterMetricFamily(
        "soak_run_vm_seconds",
        "Guest uptime summed over VMs and boots (VM-seconds soaked, ready to stopped).",
        value=totals.vm_seconds,
    )
    yield CounterMetricFamily("soak_boots", "QEMU boots started, all VMs.", value=totals.boots)
    yield _by_label("soak_vms", "VMs in each state.", "state", totals.vms, gauge=True)
    yield _by_label(
        "soak_failures",
        "Failures found, by kind (failures a fault was meant to cause excluded).",
        "kind",
        totals.failures,
    )
    yield _by_label(
        "soak_expected_failures",
        "Failures a profile declared as the intended outcome of a fault, by kind.",
        "kind",
        totals.expected_failures,
    )
    yield _by_label(
        "soak_infra_problems",
        "Failures of soak's own machinery (not the guests'), by problem.",
        "problem",
        totals.infra_problems,
    )
    yield _by_label(
        "soak_faults_injected",
        "Host-side faults applied, by fault.",
        "fault",
        totals.faults_injected,
    )


def _by_label(
    name: str, doc: str, label: str, values: dict[str, int], *, gauge: bool = False
) -> Metric:
    family: GaugeMetricFamily | CounterMetricFamily
    family = (GaugeMetricFamily if gauge else CounterMetricFamily)(name, doc, labels=(label,))
    for value, count in sorted(values.items()):
        family.add_metric([value], count)
    return family


def live_families(
    snapshot: Snapshot, now: float, *, hang_timeout_s: float | None
) -> Iterator[Metric]:
    """What only a live run has: its deadline, the histograms and the per-VM series."""
    yield GaugeMetricFamily(
        "soak_run_deadline_timestamp_seconds",
        "When the run is planned to end (Unix time); +Inf if it has no planned end.",
        value=snapshot.deadline,
    )
    if hang_timeout_s is not None:
        yield GaugeMetricFamily(
            "soak_heartbeat_timeout_seconds",
            "Heartbeat silence after which soak declares a VM hung.",
            value=hang_timeout_s,
        )
    yield _histograms(
        "soak_boot_duration_seconds",
        "Time from QEMU start to guest ready.",
        "group",
        snapshot.boot_time,
    )
    yield _histograms(
        "soak_heartbeat_lateness_seconds",
        "How much later than its interval each heartbeat arrived.",
        "group",
        snapshot.lateness,
    )
    yield _histograms(
        "soak_failure_detection_latency_seconds",
        "Time from a failure's first sign to its record, by the watcher that found it.",
        "detected_by",
        snapshot.detection,
    )
    yield _by_label("soak_migrations", "Live migrations (the migrate fault), by result.", "result",
                    snapshot.migrations)
    yield _histograms("soak_migration_duration_seconds", "Total time of completed live migrations.", "mode",
                      snapshot.migration_time)
    yield _histograms("soak_migration_downtime_seconds",
                      "How long the guest did not run at a completed migration's switchover.", "mode",
                      snapshot.migration_downtime)
    yield from vm_families(snapshot.vms, now)


def _histograms(name: str, doc: str, label: str, histograms: dict[str, Histogram]) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=(label,))
    for value, h in sorted(histograms.items()):
        family.add_metric([value], h.cumulative(), h.sum)
    return family


def vm_families(vms: list[VmRecord], now: float) -> Iterator[Metric]:
    """Per-VM series, labelled by the VM's stable name only (shape is in ``soak_vm_info``)."""
    info = _vm_gauge(
        "soak_vm_info",
        "A VM of the run: constant 1, its shape in labels.",
        "group",
        "vcpus",
        "memory_mib",
        "machine",
        "image",
        "arch",
        "firmware",
    )
    state = _vm_gauge("soak_vm_state", "1 for the state the VM is in, 0 for the others.", "state")
    boots = CounterMetricFamily("soak_vm_boots", "QEMU boots of the VM.", labels=("vm",))
    failures = CounterMetricFamily(
        "soak_vm_failures", "Failures found on the VM (expected ones excluded).", labels=("vm",)
    )
    age = _vm_gauge(
        "soak_vm_heartbeat_age_seconds",
        "Time since the VM's last heartbeat (or its ready time); only while it should beat.",
    )
    uptime = _vm_gauge("soak_vm_guest_uptime_seconds", "Guest uptime, from its heartbeat.")
    load1 = _vm_gauge("soak_vm_guest_load1", "Guest 1-minute load average, from its heartbeat.")
    mem_free = _vm_gauge("soak_vm_guest_memory_free_bytes", "Guest MemFree, from its heartbeat.")
    mem_avail = _vm_gauge(
        "soak_vm_guest_memory_available_bytes", "Guest MemAvailable, from its heartbeat."
    )
    cpu = CounterMetricFamily(
        "soak_vm_qemu_cpu_seconds",
        "CPU time of the VM's QEMU process (resets on reboot).",
        labels=("vm",),
    )
    rss = _vm_gauge("soak_vm_qemu_rss_bytes", "Resident memory of the VM's QEMU process.")
    threads = _vm_gauge("soak_vm_qemu_threads", "Threads of the VM's QEMU process.")
    fds = _vm_gauge("soak_vm_qemu_open_fds", "Open file descriptors of the VM's QEMU process.")
    bogo = _vm_gauge(
        "soak_vm_workload_bogo_ops_per_second",
        "stress-ng bogo-ops per second, as the guest last reported them, by stressor.",
        "stressor",
    )
    device_rate = _vm_gauge(
        "soak_vm_device_bytes_per_second",
        "Verified traffic through a guest device (read back or echoed and compared), as last reported.",
        "device", "direction")
    device_iops = _vm_gauge("soak_vm_device_iops", "Requests per second of a device's verified load, while busy.",
                            "device")
    device_drops = CounterMetricFamily(
        "soak_vm_device_drops", "Network transfers of the verified load that did not complete (all boots).",
        labels=("vm", "device"))
    for vm in vms:
        name = [vm.name]
        for device, totals in sorted(vm.devices.items()):
            if device != "rng" and not device.startswith("disk"):
                device_drops.add_metric([vm.name, device], totals.drops)
        shape = vm.info
        info.add_metric(
            [vm.name, vm.group, str(shape.vcpus), str(shape.memory_mib), shape.machine, shape.image, shape.arch,
             shape.firmware]
            if shape
            else [vm.name, vm.group, "", "", "", "", "", ""],
            1,
        )
        for s in VmState:
            if s is not VmState.RETIRED:
                state.add_metric([vm.name, s.value], 1 if vm.state is s else 0)
        boots.add_metric(name, vm.boots)
        failures.add_metric(name, vm.failures)
        if vm.state in HEARTBEAT_STATES and vm.last_beat is not None:
            age.add_metric(name, max(0.0, now - vm.last_beat))
        if vm.state not in LIVE:
            continue
        if (g := vm.guest) is not None:
            uptime.add_metric(name, g.uptime_s)
            load1.add_metric(name, g.load1)
            mem_free.add_metric(name, g.mem_free_kib * KIB)
            mem_avail.add_metric(name, g.mem_available_kib * KIB)
        if (p := vm.process) is not None:
            cpu.add_metric(name, p.cpu_s)
            rss.add_metric(name, p.rss_bytes)
            threads.add_metric(name, p.threads)
            fds.add_metric(name, p.fds)
        for stressor, rate in sorted(vm.workload.items()):
            bogo.add_metric([vm.name, stressor], rate)
        for device, io in sorted(vm.device_io.items()):
            device_rate.add_metric([vm.name, device, "read"], io.read_bytes_per_s)
            device_rate.add_metric([vm.name, device, "write"], io.write_bytes_per_s)
            device_iops.add_metric([vm.name, device], io.iops)
    yield from (info, state, boots, failures, age, uptime, load1, mem_free, mem_avail)
    yield from (cpu, rss, threads, fds, bogo, device_rate, device_iops, device_drops)


def _vm_gauge(name: str, doc: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=("vm", *labels))
