"""`RunModel`: the one fold of a run's events (see ``soak.runmodel`` for the whole API).

`apply(event)` folds one event in: a dictionary lookup and a few attribute
writes, no I/O, no per-event list, so the live run can feed every event
(1 heartbeat per second per VM) to it for days. Figures that grow with time
(elapsed time, VM-seconds, uptimes) take ``now``; `end` says which instant a
finished, live or crashed run is measured to.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from soak.events import (
    ConsoleDropped,
    DeviceIo,
    Event,
    Failure,
    FaultInjected,
    Heartbeat,
    HeartbeatLate,
    InfraProblem,
    JournalDropped,
    Migrated,
    Observation,
    ProcessSample,
    RunFinished,
    RunStarted,
    VmReady,
    VmRestarting,
    VmRetired,
    VmStarting,
    VmStopped,
    WorkloadMetrics,
)
from soak.kinds import Kind
from soak.runmodel.counts import OTHER, LabelCap, LabeledHistograms
from soak.runmodel.detail import RunDetail
from soak.runmodel.failures import (
    Expectation,
    Expectations,
    FailureGroup,
    Signatures,
    by_importance,
)
from soak.runmodel.vm import LIVE, DeviceTotals, Rate, VmRecord, VmState

BOOT_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
"""Boot time: KVM boots take seconds, TCG boots under load several minutes."""
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
MIGRATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
"""Migration time: under a second for an idle 256 MiB TCG guest; minutes for a large busy one."""
DOWNTIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Migration downtime: tens of milliseconds live, the whole migration when paused first."""
DETECTION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
"""Detection latency: console lines are seen in milliseconds, hangs after the hang timeout."""

DETECTORS = ("console", "heartbeat", "qmp", "process", "workload", "trend", "boot")
"""`Failure.detected_by` values (events.py); others are counted as ``other``."""

MAX_KEPT_PROBLEMS = 100
"""Infra problems kept whole (the first ones, usually the cause); all are counted."""
MAX_KEPT_OBSERVATIONS = 100
"""Observations (a console flood ...) kept whole; at most one per VM and topic is expected."""


class RunModel:
    """The state of one run (one journal), folded from its events; see ``soak.runmodel``."""

    def __init__(self, *, detail: bool = False) -> None:
        """:param detail: also keep the bounded time series, timeline and samples of
        `RunDetail` (for reports and comparisons; the live run does without)."""
        self.run: RunStarted | None = None
        self.finished: RunFinished | None = None
        self.last_t = 0.0
        """Time of the newest event: the end of a run whose journal stops without RunFinished."""
        self.vms: dict[str, VmRecord] = {}
        self.boots = 0
        self.failures: dict[str, int] = {kind.value: 0 for kind in Kind}
        """Unexpected failures by kind (every kind present, at 0 if none)."""
        self.expected_failures: dict[str, int] = {kind.value: 0 for kind in Kind}
        self.infra_problems: dict[str, int] = {}
        """Soak problems by problem word (at most 32 words, then ``other``)."""
        self.problems: list[InfraProblem] = []
        """The first `MAX_KEPT_PROBLEMS` soak problems, whole."""
        self.observations: list[Observation] = []
        """The first `MAX_KEPT_OBSERVATIONS` observations: worth knowing, not failures."""
        self.journal_dropped = 0
        """Sampled records the journal dropped because its disk fell behind (its latest count)."""
        self.faults_injected: dict[str, int] = {}
        """Faults by name (at most 32 names, then ``other``)."""
        self.signatures = Signatures()
        self.expectations = Expectations()
        self._groups = LabelCap(64)
        self._faults = LabelCap(32)
        self._problems = LabelCap(32)
        self._devices = LabelCap(16)
        """Device names per VM (disk0-7, net, rng), at most 16 then ``other``."""
        self.stressor_names = LabelCap(32)
        """Stressor names, at most 32 then ``other``: every view uses the same capped names."""
        self.boot_time = LabeledHistograms(BOOT_BUCKETS, self._groups)
        """Boot durations by VM group."""
        self.lateness = LabeledHistograms(LATENESS_BUCKETS, self._groups)
        """Heartbeat lateness by VM group."""
        self.detection = LabeledHistograms(DETECTION_BUCKETS, LabelCap(0, (*DETECTORS, OTHER)))
        """Failure detection latency by watcher (`Failure.detected_by`)."""
        for detector in DETECTORS:  # exported at 0 from the start: "avoid missing metrics"
            self.detection.get(detector)
        modes = LabelCap(0, ("live", "paused", OTHER))
        self.migration_time = LabeledHistograms(MIGRATION_BUCKETS, modes)
        """Total time of completed migrations, by mode."""
        self.migration_downtime = LabeledHistograms(DOWNTIME_BUCKETS, modes)
        self.migration_time.get("live")  # exported (empty) from the start, like every other histogram
        self.migration_downtime.get("live")
        self.migrations: dict[str, int] = {"completed": 0, "failed": 0}
        """Migrations by result."""
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            RunStarted: self._run_started,
            VmStarting: self._vm_starting,
            VmReady: self._vm_ready,
            Heartbeat: self._heartbeat,
            HeartbeatLate: self._heartbeat_late,
            ProcessSample: self._process_sample,
            WorkloadMetrics: self._workload,
            DeviceIo: self._device_io,
            FaultInjected: self._fault,
            Failure: self._failure,
            VmStopped: self._vm_stopped,
            VmRestarting: self._vm_restarting,
            VmRetired: self._vm_retired,
            InfraProblem: self._infra,
            Observation: self._observation,
            Migrated: self._migrated,
            ConsoleDropped: self._console_dropped,
            JournalDropped: self._journal_dropped,
            RunFinished: self._run_finished,
        }
        self.detail: RunDetail | None = RunDetail(self) if detail else None

    def apply(self, event: Event) -> None:
        """Fold one event in; events of unknown types are ignored (a newer soak)."""
        if event.t > self.last_t:
            self.last_t = event.t
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)
        if self.detail is not None:
            self.detail.apply(event)

    observe = apply
    """A `RunModel` is an observer of the `Recorder` (soak.recorder.Observer)."""

    # -- figures that depend on the time ------------------------------------------------

    def end(self, now: float | None = None) -> float:
        """The instant the run is measured to: its finish, else ``now``, else its newest event."""
        if self.finished is not None:
            return self.finished.t
        return now if now is not None else self.last_t

    def elapsed(self, now: float | None = None) -> float:
        if self.run is None:
            return 0.0
        return max(0.0, self.end(now) - self.run.t)

    def vm_seconds(self, now: float | None = None) -> float:
        """Seconds of guest uptime summed over VMs and boots (ready to stopped)."""
        end = self.end(now)
        return sum(vm.uptime_s(end) for vm in self.vms.values())

    def deadline(self) -> float:
        """When the run is planned to end; +Inf for a run without a finite duration."""
        if self.run is None or not math.isfinite(self.run.duration_s) or self.run.duration_s <= 0:
            return math.inf
        return self.run.t + self.run.duration_s

    # -- derived views that need no time -----------------------------------------------

    def fleet(self) -> dict[str, int]:
        """VMs per state (every state present)."""
        counts = {state.value: 0 for state in VmState}
        for vm in self.vms.values():
            counts[vm.state] += 1
        return counts

    def failure_groups(self) -> list[FailureGroup]:
        """Failures by signature, most unexpected occurrences first."""
        return by_importance(self.signatures.groups.values())

    def expectation_results(self) -> list[Expectation]:
        return self.expectations.results(self.vms)

    @property
    def failures_total(self) -> int:
        """Every failure, expected or not."""
        return sum(self.failures.values()) + sum(self.expected_failures.values())

    @property
    def unexpected_failures(self) -> int:
        return sum(self.failures.values())

    @property
    def infra_total(self) -> int:
        return sum(self.infra_problems.values())

    # -- event handlers ------------------------------------------------------------------

    def _vm(self, name: str) -> VmRecord:
        vm = self.vms.get(name)
        if vm is None:
            vm = self.vms[name] = VmRecord(name)
        return vm

    def _run_started(self, e: RunStarted) -> None:
        self.run = e
        for info in e.vms:
            self._vm(info.name).info = info
            self.boot_time.get(info.group)
            self.lateness.get(info.group)
        self.expectations.declare(e.vms)

    def _vm_starting(self, e: VmStarting) -> None:
        vm = self._vm(e.vm)
        vm.close_uptime(e.t)
        vm.forget_boot()
        vm.boot_heartbeats = 0
        vm.state = VmState.BOOTING
        vm.boots += 1
        self.boots += 1

    def _vm_ready(self, e: VmReady) -> None:
        vm = self._vm(e.vm)
        vm.state = VmState.RUNNING
        vm.last_beat = e.t
        vm.kernel = e.kernel or vm.kernel
        if vm.first_ready is None:
            vm.first_ready = e.t
        if self.finished is None:
            vm.up_since = e.t
        self.boot_time.get(vm.group).observe(e.boot_s)
        vm.boot_time.total += e.boot_s
        vm.boot_time.runs += 1
        vm.boot_max_s = max(vm.boot_max_s, e.boot_s)

    def _heartbeat(self, e: Heartbeat) -> None:
        vm = self._vm(e.vm)
        if vm.state in LIVE:  # a beat that overtook its VM's stop must not revive its figures
            vm.guest = e
            vm.last_beat = e.t
            vm.boot_heartbeats = max(vm.boot_heartbeats, e.seq)
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
        stressor = self.stressor_names(e.stressor)
        rate = vm.throughput.get(stressor)
        if rate is None:
            rate = vm.throughput[stressor] = Rate()
        rate.total += e.bogo_ops_per_s
        rate.runs += 1
        if vm.state in LIVE:
            vm.workload[stressor] = e.bogo_ops_per_s

    def _device_io(self, e: DeviceIo) -> None:
        vm = self._vm(e.vm)
        device = self._devices(e.device)
        totals = vm.devices.get(device)
        if totals is None:
            totals = vm.devices[device] = DeviceTotals()
        totals.add(e)
        if vm.state in LIVE:
            vm.device_io[device] = e

    def _fault(self, e: FaultInjected) -> None:
        fault = self._faults(e.fault)
        self.faults_injected[fault] = self.faults_injected.get(fault, 0) + 1
        vm = self._vm(e.vm)
        vm.faults += 1
        if vm.first_fault is None:
            vm.first_fault = e.t

    def _failure(self, e: Failure) -> None:
        kind = e.kind.value
        vm = self._vm(e.vm)
        vm.last_failure = e
        if e.expected:
            self.expected_failures[kind] = self.expected_failures.get(kind, 0) + 1
            vm.expected_failures += 1
        else:
            self.failures[kind] = self.failures.get(kind, 0) + 1
            vm.failures += 1
        if e.latency_s is not None:
            self.detection.get(e.detected_by).observe(e.latency_s)
        self.signatures.add(e)
        self.expectations.on_failure(e)

    def _vm_stopped(self, e: VmStopped) -> None:
        vm = self._vm(e.vm)
        vm.close_uptime(e.t)
        vm.forget_boot()
        vm.boot_heartbeats = 0  # the runner's own count of the boot replaces the sequence numbers
        vm.heartbeats_closed += max(0, e.heartbeats)
        vm.stop_reason = e.reason
        if vm.state is not VmState.RETIRED:
            vm.state = VmState.STOPPED

    def _vm_restarting(self, e: VmRestarting) -> None:
        vm = self._vm(e.vm)
        if vm.state is not VmState.RETIRED:
            vm.state = VmState.RESTARTING

    def _vm_retired(self, e: VmRetired) -> None:
        vm = self._vm(e.vm)
        vm.close_uptime(e.t)
        vm.forget_boot()
        vm.heartbeats_closed += vm.boot_heartbeats  # retired without a stop: keep what was seen
        vm.boot_heartbeats = 0
        vm.state = VmState.RETIRED

    def _infra(self, e: InfraProblem) -> None:
        problem = self._problems(e.problem)
        self.infra_problems[problem] = self.infra_problems.get(problem, 0) + 1
        if len(self.problems) < MAX_KEPT_PROBLEMS:
            self.problems.append(e)

    def _migrated(self, e: Migrated) -> None:
        vm = self._vm(e.vm)
        if not e.ok:
            self.migrations["failed"] += 1
            return
        self.migrations["completed"] += 1
        vm.migrations += 1
        self.migration_time.get(e.mode).observe(e.total_s)
        self.migration_downtime.get(e.mode).observe(e.downtime_s)

    def _observation(self, e: Observation) -> None:
        if len(self.observations) < MAX_KEPT_OBSERVATIONS:
            self.observations.append(e)

    def _console_dropped(self, e: ConsoleDropped) -> None:
        vm = self._vm(e.vm)
        vm.console_dropped_bytes = max(vm.console_dropped_bytes, e.dropped_bytes)

    def _journal_dropped(self, e: JournalDropped) -> None:
        self.journal_dropped = max(self.journal_dropped, e.dropped)

    def _run_finished(self, e: RunFinished) -> None:
        self.finished = e
        for vm in self.vms.values():
            vm.close_uptime(e.t)
