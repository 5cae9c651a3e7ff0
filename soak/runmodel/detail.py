"""`RunDetail`: what a report or a comparison needs beyond the live figures, built only on request.

`RunModel(detail=True)` feeds each event to a `RunDetail` after its own fold.
It keeps, per VM, bounded time series (`Buckets`, at most `SERIES_BUCKETS`
points each: heartbeat lateness, QEMU RSS / threads / fds, bogo-ops/s per
stressor) and a bounded timeline (`Thinned`, at most `TIMELINE_LIMIT` boots,
failures and fault windows each); and for the whole run, bounded samples for
comparisons between runs (`Samples`, at most `SAMPLES_LIMIT` values per key).
Bounded means: a week-long run costs the same as a short one.

Replayed from a journal, the high-rate figures are the journal's: one heartbeat
and one process sample per VM per minute, plus every late heartbeat (see
``soak.journal``), so lateness samples lean late on both sides of a comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from soak.events import (
    Event,
    Failure,
    FaultInjected,
    Heartbeat,
    ProcessSample,
    VmReady,
    VmRetired,
    VmStarting,
    VmStopped,
    WorkloadMetrics,
)
from soak.runmodel.counts import Thinned
from soak.runmodel.series import SERIES_BUCKETS, Buckets

if TYPE_CHECKING:
    from soak.runmodel.model import RunModel

TIMELINE_LIMIT = 1000
"""Boots, failures and fault windows kept per VM (each); past it, thinned evenly."""
SAMPLES_LIMIT = 4096
"""Values kept per comparison key; past it, thinned evenly."""


@dataclass(slots=True)
class BootSpan:
    """One boot of a VM on the timeline; ``ready`` and ``stop`` stay None until they happen."""

    boot: int
    start: float
    ready: float | None = None
    stop: float | None = None
    reason: str = ""
    """`VmStopped.reason`, or ``retired``."""


@dataclass(frozen=True, slots=True)
class FailureMark:
    t: float
    kind: str
    title: str
    boot: int
    expected: bool
    evidence: str
    """Evidence folder, relative to the run directory."""


@dataclass(frozen=True, slots=True)
class FaultWindow:
    start: float
    end: float
    fault: str
    seq: int
    expect: str


@dataclass(slots=True)
class VmDetail:
    """One VM's series and timeline (see the module docstring for the bounds)."""

    lateness: Buckets
    """Heartbeat lateness, seconds."""
    rss: Buckets
    """QEMU resident memory, bytes."""
    threads: Buckets
    fds: Buckets
    throughput: dict[str, Buckets] = field(default_factory=dict)
    """Stressor -> bogo-ops/s of each stress-ng run, at the time it ended."""
    boots: Thinned[BootSpan] = field(default_factory=lambda: Thinned(TIMELINE_LIMIT))
    failures: Thinned[FailureMark] = field(default_factory=lambda: Thinned(TIMELINE_LIMIT))
    faults: Thinned[FaultWindow] = field(default_factory=lambda: Thinned(TIMELINE_LIMIT))
    current: BootSpan | None = None


@dataclass(slots=True)
class Samples:
    """Per-run samples for comparing runs (soak compare), keyed by what makes them comparable."""

    bogo_ops_per_s: dict[tuple[str, int], Thinned[float]] = field(default_factory=dict)
    """(stressor, vCPUs) -> the rate of each stress-ng run."""
    boot_s: dict[int, Thinned[float]] = field(default_factory=dict)
    """vCPUs -> each boot's time from QEMU start to guest ready."""
    lateness_s: dict[int, Thinned[float]] = field(default_factory=dict)
    """vCPUs -> each heartbeat's lateness."""


def _add_sample(samples: dict[Any, Thinned[float]], key: Any, value: float) -> None:
    kept = samples.get(key)
    if kept is None:
        kept = samples[key] = Thinned(SAMPLES_LIMIT)
    kept.add(value)


class RunDetail:
    """The report's and the comparison's share of the fold (module docstring)."""

    def __init__(self, model: RunModel) -> None:
        self._model = model
        self.vms: dict[str, VmDetail] = {}
        self.samples = Samples()
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            VmStarting: self._vm_starting,
            VmReady: self._vm_ready,
            VmStopped: self._vm_stopped,
            VmRetired: self._vm_retired,
            Heartbeat: self._heartbeat,
            ProcessSample: self._process_sample,
            WorkloadMetrics: self._workload,
            FaultInjected: self._fault,
            Failure: self._failure,
        }

    def apply(self, event: Event) -> None:
        """Called by `RunModel.apply` after the model took the event."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _vm(self, name: str, t: float) -> VmDetail:
        detail = self.vms.get(name)
        if detail is None:
            t0, width = self._grid(t)
            detail = self.vms[name] = VmDetail(
                Buckets(t0, width), Buckets(t0, width), Buckets(t0, width), Buckets(t0, width)
            )
        return detail

    def _grid(self, t: float) -> tuple[float, float]:
        """The bucket grid: the planned run spread over `SERIES_BUCKETS` (at least 1 s each)."""
        run = self._model.run
        if run is None:
            return t, 1.0
        return run.t, max(1.0, run.duration_s / SERIES_BUCKETS)

    def _vcpus(self, vm: str) -> int:
        record = self._model.vms.get(vm)
        return record.info.vcpus if record is not None and record.info is not None else 0

    def _vm_starting(self, e: VmStarting) -> None:
        detail = self._vm(e.vm, e.t)
        detail.current = BootSpan(e.boot, e.t)
        detail.boots.add(detail.current)

    def _vm_ready(self, e: VmReady) -> None:
        detail = self._vm(e.vm, e.t)
        if detail.current is not None and detail.current.ready is None:
            detail.current.ready = e.t
        _add_sample(self.samples.boot_s, self._vcpus(e.vm), e.boot_s)

    def _vm_stopped(self, e: VmStopped) -> None:
        self._close(e.vm, e.t, e.reason)

    def _vm_retired(self, e: VmRetired) -> None:
        self._close(e.vm, e.t, "retired")

    def _close(self, vm: str, t: float, reason: str) -> None:
        detail = self._vm(vm, t)
        if detail.current is not None and detail.current.stop is None:
            detail.current.stop, detail.current.reason = t, reason
        detail.current = None

    def _heartbeat(self, e: Heartbeat) -> None:
        self._vm(e.vm, e.t).lateness.add(e.t, e.lateness_s)
        _add_sample(self.samples.lateness_s, self._vcpus(e.vm), e.lateness_s)

    def _process_sample(self, e: ProcessSample) -> None:
        detail = self._vm(e.vm, e.t)
        detail.rss.add(e.t, e.rss_bytes)
        detail.threads.add(e.t, e.threads)
        detail.fds.add(e.t, e.fds)

    def _workload(self, e: WorkloadMetrics) -> None:
        detail = self._vm(e.vm, e.t)
        stressor = self._model.stressor_names(e.stressor)
        series = detail.throughput.get(stressor)
        if series is None:
            t0, width = self._grid(e.t)
            series = detail.throughput[stressor] = Buckets(t0, width)
        series.add(e.t, e.bogo_ops_per_s)
        _add_sample(self.samples.bogo_ops_per_s, (stressor, self._vcpus(e.vm)), e.bogo_ops_per_s)

    def _fault(self, e: FaultInjected) -> None:
        window = FaultWindow(e.t, e.t + max(0.0, e.duration_s), e.fault, e.seq, e.expect)
        self._vm(e.vm, e.t).faults.add(window)

    def _failure(self, e: Failure) -> None:
        mark = FailureMark(e.t, e.kind.value, e.title, e.boot, e.expected, e.evidence)
        self._vm(e.vm, e.t).failures.add(mark)
