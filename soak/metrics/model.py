"""The state of a run as the metrics see it, built only from run events.

Pure and synchronous: `RunModel.apply(event)` folds one event in, and the
figures that depend on time take ``now`` as an argument. The Prometheus
collector renders this model at scrape time, the final push renders its
`RunTotals`, and `soak summary` can replay a journal through it: one
bookkeeping, fed by the same events the journal records.

VM states, as events move a VM between them::

    pending --VmStarting--> booting --VmReady--> running <--Heartbeat-- unresponsive
                               ^                    |   --HeartbeatLate-->  |
                               |                    v                       v
                          VmStarting <-- restarting <--VmRestarting-- stopped <--VmStopped
    any --VmRetired--> retired (left the run: its per-VM series are dropped)

Totals (`RunTotals`) use only lifecycle events, which the journal keeps in
full; the sampled high-rate events (heartbeats, process samples, workload
figures) feed only live gauges and histograms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from soak.events import (
    Event,
    Failure,
    FaultInjected,
    Heartbeat,
    HeartbeatLate,
    InfraProblem,
    ProcessSample,
    RunFinished,
    RunStarted,
    VmInfo,
    VmReady,
    VmRestarting,
    VmRetired,
    VmStarting,
    VmStopped,
    WorkloadMetrics,
)
from soak.kinds import Kind
from soak.metrics.series import OTHER, Histogram, LabelCap, LabeledHistograms

BOOT_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
"""Boot time: KVM boots take seconds, TCG boots under load several minutes."""
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
DETECTION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
"""Detection latency: console lines are seen in milliseconds, hangs after the hang timeout."""

DETECTORS = ("console", "heartbeat", "qmp", "process", "workload", "trend", "boot")
"""`Failure.detected_by` values (events.py); others are counted as ``other``."""


class VmState(StrEnum):
    """Where a VM is in its life; label values of ``soak_vms`` and ``soak_vm_state``."""

    PENDING = "pending"
    BOOTING = "booting"
    RUNNING = "running"
    UNRESPONSIVE = "unresponsive"
    STOPPED = "stopped"
    RESTARTING = "restarting"
    RETIRED = "retired"


LIVE = frozenset({VmState.BOOTING, VmState.RUNNING, VmState.UNRESPONSIVE})
"""States in which a QEMU process exists, so its samples and the guest's figures mean something."""
HEARTBEAT_STATES = frozenset({VmState.RUNNING, VmState.UNRESPONSIVE})
"""States in which heartbeats are expected, so their age is exported."""


@dataclass(slots=True)
class VmRecord:
    """What the metrics know about one VM; the last events are kept as they came."""

    name: str
    info: VmInfo | None = None
    state: VmState = VmState.PENDING
    boots: int = 0
    failures: int = 0
    up_since: float | None = None
    """When the current boot became ready (start of the VM-seconds being counted)."""
    last_beat: float | None = None
    """Last heartbeat of this boot, or its ready time: the base of the heartbeat age."""
    guest: Heartbeat | None = None
    process: ProcessSample | None = None
    workload: dict[str, float] = field(default_factory=dict)
    """Stressor -> bogo-ops per second, as last reported in this boot."""

    @property
    def group(self) -> str:
        return self.info.group if self.info else "unknown"

    def copy(self) -> VmRecord:
        return VmRecord(
            self.name,
            self.info,
            self.state,
            self.boots,
            self.failures,
            self.up_since,
            self.last_beat,
            self.guest,
            self.process,
            dict(self.workload),
        )

    def forget_boot(self) -> None:
        """The QEMU process is gone: its figures no longer describe anything."""
        self.last_beat = None
        self.guest = None
        self.process = None
        self.workload.clear()


@dataclass(frozen=True, slots=True)
class RunTotals:
    """The final figures of a run: what is pushed, and what the summary JSON holds."""

    run_id: str
    profile: str
    seed: int
    accel: str
    version: str
    start_timestamp_s: float
    elapsed_s: float
    vm_seconds: float
    boots: int
    vms: dict[str, int]
    failures: dict[str, int]
    expected_failures: dict[str, int]
    infra_problems: dict[str, int]
    faults_injected: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """The ``metrics`` object of the summary JSON (see the metric names in `push`)."""
        return {
            "run_id": self.run_id,
            "profile": self.profile,
            "seed": self.seed,
            "accel": self.accel,
            "version": self.version,
            "start_timestamp_s": self.start_timestamp_s,
            "elapsed_s": self.elapsed_s,
            "vm_seconds": self.vm_seconds,
            "boots": self.boots,
            "vms": dict(self.vms),
            "failures": dict(self.failures),
            "expected_failures": dict(self.expected_failures),
            "infra_problems": dict(self.infra_problems),
            "faults_injected": dict(self.faults_injected),
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A copy of what a scrape renders beyond the totals, taken under the lock, rendered after."""

    deadline: float
    boot_time: dict[str, Histogram]
    lateness: dict[str, Histogram]
    detection: dict[str, Histogram]
    vms: list[VmRecord]
    """The VMs still in the run (retired ones left it)."""


class RunModel:
    """Folds run events into the figures the metrics expose (see the module docstring)."""

    def __init__(self) -> None:
        self.run: RunStarted | None = None
        self.finished: RunFinished | None = None
        self.vms: dict[str, VmRecord] = {}
        self.boots = 0
        self.failures: dict[str, int] = {kind.value: 0 for kind in Kind}
        self.expected_failures: dict[str, int] = {kind.value: 0 for kind in Kind}
        self.infra_problems: dict[str, int] = {}
        self.faults_injected: dict[str, int] = {}
        self.closed_vm_seconds = 0.0
        self._groups = LabelCap(64)
        self._faults = LabelCap(32)
        self._problems = LabelCap(32)
        self._stressors = LabelCap(32)
        self.boot_time = LabeledHistograms(BOOT_BUCKETS, self._groups)
        self.lateness = LabeledHistograms(LATENESS_BUCKETS, self._groups)
        self.detection = LabeledHistograms(DETECTION_BUCKETS, LabelCap(0, (*DETECTORS, OTHER)))
        for detector in DETECTORS:  # exported at 0 from the start: "avoid missing metrics"
            self.detection.get(detector)
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            RunStarted: self._run_started,
            VmStarting: self._vm_starting,
            VmReady: self._vm_ready,
            Heartbeat: self._heartbeat,
            HeartbeatLate: self._heartbeat_late,
            ProcessSample: self._process_sample,
            WorkloadMetrics: self._workload,
            FaultInjected: self._fault,
            Failure: self._failure,
            VmStopped: self._vm_stopped,
            VmRestarting: self._vm_restarting,
            VmRetired: self._vm_retired,
            InfraProblem: self._infra,
            RunFinished: self._run_finished,
        }

    def apply(self, event: Event) -> None:
        """Fold one event in; unknown event types are ignored (a newer soak)."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    # -- figures that depend on the time ------------------------------------------------

    def elapsed(self, now: float) -> float:
        if self.run is None:
            return 0.0
        end = self.finished.t if self.finished else now
        return max(0.0, end - self.run.t)

    def vm_seconds(self, now: float) -> float:
        """Seconds of guest uptime summed over VMs and boots (ready to stopped)."""
        end = self.finished.t if self.finished else now
        live = sum(
            max(0.0, end - vm.up_since) for vm in self.vms.values() if vm.up_since is not None
        )
        return self.closed_vm_seconds + live

    def deadline(self) -> float:
        """When the run is planned to end; +Inf for a run without a finite duration."""
        if self.run is None or not math.isfinite(self.run.duration_s) or self.run.duration_s <= 0:
            return math.inf
        return self.run.t + self.run.duration_s

    def fleet(self) -> dict[str, int]:
        counts = {state.value: 0 for state in VmState}
        for vm in self.vms.values():
            counts[vm.state] += 1
        return counts

    def snapshot(self) -> Snapshot:
        return Snapshot(
            deadline=self.deadline(),
            boot_time=self.boot_time.copy(),
            lateness=self.lateness.copy(),
            detection=self.detection.copy(),
            vms=[vm.copy() for vm in self.vms.values() if vm.state is not VmState.RETIRED],
        )

    def totals(self, now: float) -> RunTotals:
        run = self.run
        return RunTotals(
            run_id=run.run_id if run else "",
            profile=run.profile if run else "",
            seed=run.seed if run else 0,
            accel=run.accel if run else "",
            version=run.version if run else "",
            start_timestamp_s=run.t if run else 0.0,
            elapsed_s=self.elapsed(now),
            vm_seconds=self.vm_seconds(now),
            boots=self.boots,
            vms=self.fleet(),
            failures=dict(self.failures),
            expected_failures=dict(self.expected_failures),
            infra_problems=dict(self.infra_problems),
            faults_injected=dict(self.faults_injected),
        )

    # -- event handlers ------------------------------------------------------------------

    def _vm(self, name: str) -> VmRecord:
        vm = self.vms.get(name)
        if vm is None:
            vm = self.vms[name] = VmRecord(name)
        return vm

    def _close_uptime(self, vm: VmRecord, t: float) -> None:
        if vm.up_since is not None:
            self.closed_vm_seconds += max(0.0, t - vm.up_since)
            vm.up_since = None

    def _run_started(self, e: RunStarted) -> None:
        self.run = e
        for info in e.vms:
            self._vm(info.name).info = info
            self.boot_time.get(info.group)
            self.lateness.get(info.group)

    def _vm_starting(self, e: VmStarting) -> None:
        vm = self._vm(e.vm)
        self._close_uptime(vm, e.t)
        vm.forget_boot()
        vm.state = VmState.BOOTING
        vm.boots += 1
        self.boots += 1

    def _vm_ready(self, e: VmReady) -> None:
        vm = self._vm(e.vm)
        vm.state = VmState.RUNNING
        vm.last_beat = e.t
        if self.finished is None:
            vm.up_since = e.t
        self.boot_time.get(vm.group).observe(e.boot_s)

    def _heartbeat(self, e: Heartbeat) -> None:
        vm = self._vm(e.vm)
        if vm.state in LIVE:  # a beat that overtook its VM's stop must not revive its gauges
            vm.guest = e
            vm.last_beat = e.t
        if vm.state is VmState.UNRESPONSIVE:
            vm.state = VmState.RUNNING
        self.lateness.get(vm.group).observe(e.lateness_s)

    def _heartbeat_late(self, e: HeartbeatLate) -> None:
        vm = self._vm(e.vm)
        if vm.state is VmState.RUNNING:
            vm.state = VmState.UNRESPONSIVE

    def _process_sample(self, e: ProcessSample) -> None:
        vm = self._vm(e.vm)
        if vm.state in LIVE:
            vm.process = e

    def _workload(self, e: WorkloadMetrics) -> None:
        vm = self._vm(e.vm)
        if vm.state in LIVE:
            vm.workload[self._stressors(e.stressor)] = e.bogo_ops_per_s

    def _fault(self, e: FaultInjected) -> None:
        fault = self._faults(e.fault)
        self.faults_injected[fault] = self.faults_injected.get(fault, 0) + 1

    def _failure(self, e: Failure) -> None:
        kind = e.kind.value
        if e.expected:
            self.expected_failures[kind] = self.expected_failures.get(kind, 0) + 1
        else:
            self.failures[kind] = self.failures.get(kind, 0) + 1
            self._vm(e.vm).failures += 1
        if e.latency_s is not None:
            self.detection.get(e.detected_by).observe(e.latency_s)

    def _vm_stopped(self, e: VmStopped) -> None:
        vm = self._vm(e.vm)
        self._close_uptime(vm, e.t)
        vm.forget_boot()
        if vm.state is not VmState.RETIRED:
            vm.state = VmState.STOPPED

    def _vm_restarting(self, e: VmRestarting) -> None:
        vm = self._vm(e.vm)
        if vm.state is not VmState.RETIRED:
            vm.state = VmState.RESTARTING

    def _vm_retired(self, e: VmRetired) -> None:
        vm = self._vm(e.vm)
        self._close_uptime(vm, e.t)
        vm.forget_boot()
        vm.state = VmState.RETIRED

    def _infra(self, e: InfraProblem) -> None:
        problem = self._problems(e.problem)
        self.infra_problems[problem] = self.infra_problems.get(problem, 0) + 1

    def _run_finished(self, e: RunFinished) -> None:
        self.finished = e
        for vm in self.vms.values():
            self._close_uptime(vm, e.t)


def totals_from_events(events: Iterable[Event]) -> RunTotals:
    """Replay events (a journal) into the totals the run pushed: for the summary JSON.

    Equal to the live `RunTotals` once `RunFinished` is in; for an unfinished
    (crashed) run the time figures run to the last event.
    """
    model = RunModel()
    last = 0.0
    for event in events:
        model.apply(event)
        last = max(last, event.t)
    return model.totals(last)
