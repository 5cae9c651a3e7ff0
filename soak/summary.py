"""The summary of a run, rebuilt from its journal alone.

`summarize` is pure: events in, `Summary` out. Because it needs nothing but
the journal, `soak summary` works on a finished run, a run that is still going
and a run whose soak was killed. Failures are grouped by (kind, title): a bug
that fired forty times on twelve VMs is one line with its counts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak import events as ev
from soak.journal import read_journal
from soak.metrics import totals_from_events

VERDICT_EXIT = {"clean": 0, "failures": 1, "infra-error": 3}


@dataclass
class VmSummary:
    name: str
    group: str = ""
    vcpus: int = 0
    memory_mib: int = 0
    boots: int = 0
    failures: int = 0
    uptime_s: float = 0.0
    heartbeats: int = 0
    state: str = "defined"
    throughput: dict[str, list[float]] = field(default_factory=dict)
    """stress-ng bogo-ops/s per stressor: [sum of the runs' rates, number of runs]."""
    console_dropped_bytes: int = 0
    """Console bytes not kept within run.console_limit (the classifier saw them all)."""
    _ready_at: float | None = None
    _boot_heartbeats: int = 0


@dataclass
class FailureGroup:
    kind: str
    title: str
    count: int = 0
    vms: list[str] = field(default_factory=list)
    first_seen: float = 0.0
    last_seen: float = 0.0
    evidence: str = ""
    """The first occurrence's evidence folder (the others are listed in the journal)."""
    expected: int = 0
    corrupted: bool = False
    without_evidence: int = 0
    """Occurrences recorded without an evidence folder (repeats past run.evidence_per_signature)."""


@dataclass
class Expectation:
    """A failure a VM was declared to produce (a self-test), and whether it did in time."""

    vm: str
    kinds: str
    """``a|b``: either kind satisfies it."""
    within_s: float
    detected: str = ""
    """``kind: title`` of the failure that met it."""
    after_s: float | None = None
    """Seconds from the VM's first fault (or first ready) to the failure."""

    @property
    def met(self) -> bool:
        return self.after_s is not None and self.after_s <= self.within_s


@dataclass
class Summary:
    run_id: str = ""
    profile: str = ""
    seed: int | None = None
    accel: str = ""
    started: float | None = None
    finished: float | None = None
    finish_reason: str | None = None
    """None while the run is going, or when soak died before it could finish."""
    duration_s: float = 0.0
    vms: dict[str, VmSummary] = field(default_factory=dict)
    failures: list[FailureGroup] = field(default_factory=list)
    infra_problems: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    torn_tail: bool = False
    skipped_records: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    """The run totals exactly as pushed to a Pushgateway (soak.metrics.RunTotals)."""
    expectations: list[Expectation] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)
    """Worth knowing, neither a guest failure nor soak's trouble (a console flood)."""
    journal_dropped: int = 0
    """Sampled records the journal dropped because its disk fell behind."""

    @property
    def vm_hours(self) -> float:
        return sum(vm.uptime_s for vm in self.vms.values()) / 3600

    @property
    def unexpected_failures(self) -> int:
        return sum(g.count - g.expected for g in self.failures)

    @property
    def missed_expectations(self) -> int:
        return sum(not e.met for e in self.expectations)

    @property
    def verdict(self) -> str:
        """``infra-error`` when soak itself crashed (its verdict cannot be trusted), else
        ``failures`` when a guest failed, else ``infra-error`` for lesser soak problems."""
        if self.finish_reason == "error":
            return "infra-error"
        if self.unexpected_failures or self.missed_expectations:
            return "failures"
        if self.infra_problems:
            return "infra-error"
        return "clean"

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT[self.verdict]

    def to_json(self) -> dict[str, Any]:
        """The machine-readable summary (``soak summary --json``)."""
        return {
            "run_id": self.run_id,
            "profile": self.profile,
            "seed": self.seed,
            "accel": self.accel,
            "started": self.started,
            "finished": self.finished,
            "finish_reason": self.finish_reason,
            "complete": self.finished is not None,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "vm_hours": round(self.vm_hours, 4),
            "totals": {
                "vms": len(self.vms),
                "boots": sum(v.boots for v in self.vms.values()),
                "heartbeats": sum(v.heartbeats for v in self.vms.values()),
                "failures": sum(g.count for g in self.failures),
                "unexpected_failures": self.unexpected_failures,
                "failure_signatures": len(self.failures),
                "infra_problems": len(self.infra_problems),
                "faults": sum(self.faults.values()),
            },
            "vms": [
                {
                    "name": v.name,
                    "group": v.group,
                    "vcpus": v.vcpus,
                    "memory_mib": v.memory_mib,
                    "boots": v.boots,
                    "failures": v.failures,
                    "uptime_s": round(v.uptime_s, 3),
                    "heartbeats": v.heartbeats,
                    "state": v.state,
                    "bogo_ops_per_s": {name: round(total / n, 2) for name, (total, n) in v.throughput.items()},
                    "console_dropped_bytes": v.console_dropped_bytes,
                }
                for v in self.vms.values()
            ],
            "failures": [
                {
                    "kind": g.kind,
                    "title": g.title,
                    "count": g.count,
                    "expected": g.expected,
                    "vms": g.vms,
                    "first_seen": g.first_seen,
                    "last_seen": g.last_seen,
                    "evidence": g.evidence,
                    "corrupted": g.corrupted,
                    "without_evidence": g.without_evidence,
                }
                for g in self.failures
            ],
            "faults": self.faults,
            "expectations": [
                {"vm": e.vm, "kinds": e.kinds, "within_s": e.within_s, "met": e.met, "detected": e.detected,
                 "after_s": None if e.after_s is None else round(e.after_s, 3)}
                for e in self.expectations
            ],
            "infra_problems": self.infra_problems,
            "observations": self.observations,
            "journal": {"torn_tail": self.torn_tail, "skipped_records": self.skipped_records,
                        "dropped_samples": self.journal_dropped},
            "metrics": self.metrics,
        }


def load_summary(journal: Path) -> Summary:
    """The summary of the run whose journal is at ``journal`` (finished, running or crashed).

    :raise FileNotFoundError: no journal there.
    """
    contents = read_journal(journal)
    summary = summarize(contents.events)
    summary.torn_tail, summary.skipped_records = contents.torn_tail, contents.skipped
    summary.metrics = totals_from_events(contents.events).to_json()
    return summary


def summarize(events: list[ev.Event], *, now: float | None = None) -> Summary:
    """Fold a run's events into its summary; ``now`` closes the uptime of guests still up."""
    s = Summary()
    groups: dict[tuple[str, str], FailureGroup] = {}
    last_t = 0.0
    for event in events:
        last_t = max(last_t, event.t)
        _fold(s, groups, event)
    s.expectations = check_expectations(events)
    end = now if now is not None else (s.finished or last_t or time.time())
    for vm in s.vms.values():
        if vm._ready_at is not None:  # still up when the journal ends
            vm.uptime_s += max(0.0, end - vm._ready_at)
            vm.heartbeats += vm._boot_heartbeats
            vm._ready_at = None
    s.failures = sorted(groups.values(), key=lambda g: (-(g.count - g.expected), g.first_seen))
    if s.started is not None:
        s.duration_s = (s.finished or end) - s.started
    return s


def _fold(s: Summary, groups: dict[tuple[str, str], FailureGroup], event: ev.Event) -> None:
    if isinstance(event, ev.RunStarted):
        s.run_id, s.profile, s.seed, s.accel = event.run_id, event.profile, event.seed, event.accel
        s.started = event.t
        for info in event.vms:
            s.vms[info.name] = VmSummary(info.name, info.group, info.vcpus, info.memory_mib)
    elif isinstance(event, ev.RunFinished):
        s.finished, s.finish_reason = event.t, event.reason
    elif isinstance(event, ev.VmEvent):
        vm = s.vms.setdefault(event.vm, VmSummary(event.vm))
        _fold_vm(s, groups, vm, event)
    elif isinstance(event, ev.InfraProblem):
        s.infra_problems.append({"vm": event.vm, "problem": event.problem, "message": event.message, "t": event.t})
    elif isinstance(event, ev.Observation):
        s.observations.append({"vm": event.vm, "topic": event.topic, "message": event.message,
                               "value": event.value, "t": event.t})
    elif isinstance(event, ev.JournalDropped):
        s.journal_dropped = max(s.journal_dropped, event.dropped)


def _fold_vm(s: Summary, groups: dict[tuple[str, str], FailureGroup], vm: VmSummary, event: ev.VmEvent) -> None:
    if isinstance(event, ev.VmStarting):
        vm.boots += 1
        vm.state = "booting"
        vm._boot_heartbeats = 0
    elif isinstance(event, ev.VmReady):
        vm._ready_at = event.t
        vm.state = "running"
    elif isinstance(event, ev.Heartbeat):
        vm._boot_heartbeats = max(vm._boot_heartbeats, event.seq)
    elif isinstance(event, ev.VmStopped):
        vm.uptime_s += event.uptime_s
        vm.heartbeats += event.heartbeats
        vm._ready_at = None
        vm._boot_heartbeats = 0
        vm.state = "stopped" if event.reason in ("deadline", "signal") else "down"
    elif isinstance(event, ev.VmRetired):
        vm.state = "retired"
    elif isinstance(event, ev.WorkloadMetrics):
        total = vm.throughput.setdefault(event.stressor, [0.0, 0])
        total[0] += event.bogo_ops_per_s
        total[1] += 1
    elif isinstance(event, ev.ConsoleDropped):
        vm.console_dropped_bytes = max(vm.console_dropped_bytes, event.dropped_bytes)
    elif isinstance(event, ev.FaultInjected):
        s.faults[event.fault] = s.faults.get(event.fault, 0) + 1
    elif isinstance(event, ev.Failure):
        vm.failures += 1
        key = (event.kind.value, event.title)
        group = groups.get(key)
        if group is None:
            group = groups[key] = FailureGroup(event.kind.value, event.title, first_seen=event.t,
                                               evidence=event.evidence)
        group.count += 1
        group.expected += int(event.expected)
        group.corrupted = group.corrupted or event.corrupted
        group.without_evidence += not event.evidence
        group.last_seen = event.t
        if event.vm not in group.vms:
            group.vms.append(event.vm)


def check_expectations(events: list[ev.Event]) -> list[Expectation]:
    """Match each VM's declared failures to what it produced, in time order.

    The clock starts at the VM's first fault (the cause), or at its first ready
    when it has no faults; each failure can meet one expectation only.
    """
    started = next((e for e in events if isinstance(e, ev.RunStarted)), None)
    if started is None:
        return []
    results: list[Expectation] = []
    for info in started.vms:
        if not info.expect:
            continue
        anchor = next((e.t for e in events if isinstance(e, ev.FaultInjected) and e.vm == info.name), None)
        if anchor is None:
            anchor = next((e.t for e in events if isinstance(e, ev.VmReady) and e.vm == info.name), None)
        failures = [e for e in events if isinstance(e, ev.Failure) and e.vm == info.name]
        used: set[int] = set()
        for kinds in info.expect:
            expectation = Expectation(info.name, kinds, info.expect_within_s)
            wanted = set(kinds.split("|"))
            for i, failure in enumerate(failures):
                if i not in used and failure.kind.value in wanted and anchor is not None:
                    used.add(i)
                    expectation.detected = f"{failure.kind.value}: {failure.title}"
                    expectation.after_s = max(0.0, failure.t - anchor)
                    break
            results.append(expectation)
    return results
