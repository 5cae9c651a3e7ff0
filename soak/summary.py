"""The summary of a run: a view of its run model, rebuilt from the journal alone.

`summary_of` reads a `soak.runmodel.RunModel` (the one fold of the events) and
keeps nothing of its own. Because the model needs nothing but the journal,
`soak summary` works on a finished run, a run that is still going and a run
whose soak was killed. Failures are grouped by signature (kind, title): a bug
that fired forty times on twelve VMs is one line with its counts. The verdict
is `soak.runmodel.verdict_facts`, the function that also wrote the run's
`RunFinished`, so the two cannot disagree.

The run history (``soak.history``) lends the views a *statuses* mapping,
(kind, title) -> ``new`` | ``known`` | ``regressed`` | ``flaky`` | ``expected``,
and ``--fail-on``: with ``new``, a run whose verdict is ``failures`` exits 1
only when an unexpected failure is ``new`` or ``regressed`` (a bug that was
gone and came back is news to a nightly job; a flaky or known one is not) or
a declared expectation was missed; otherwise 0. Without statuses (no history)
every failure counts, as with ``any``. Exit codes 0, 2 and 3 never change.

A run group (the shards of one run on several hosts) has one `Summary` too,
built by ``soak.merged`` from the one-run summaries of its journals: the same
fields, each VM with its ``host`` and ``shard``, plus ``shards`` (each shard's
attempts), ``group_problems`` and ``spread`` (where each signature was seen).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak import events as ev
from soak.metrics.views import run_totals
from soak.runmodel import (
    VERDICT_EXIT,
    Expectation,
    FailureGroup,
    LoadedRun,
    RunModel,
    load_run,
    replay,
    verdict_facts,
)

__all__ = ["FAIL_ON", "Expectation", "FailureGroup", "Statuses", "Summary", "VmSummary", "load_summary",
           "summarize", "summary_of", "summary_of_run"]

Statuses = Mapping[tuple[str, str], str]
"""A failure signature's status in its run, from the history: (kind, title) -> status."""
FAIL_ON = ("any", "new")
FAILING_STATUSES = frozenset({"new", "regressed"})
"""The statuses that fail a run under ``--fail-on new``."""


@dataclass
class VmSummary:
    name: str
    group: str = ""
    vcpus: int = 0
    memory_mib: int = 0
    arch: str = "x86_64"
    firmware: str = "bios"
    boots: int = 0
    failures: int = 0
    """Every failure on the VM, expected ones included."""
    expected_failures: int = 0
    uptime_s: float = 0.0
    heartbeats: int = 0
    state: str = "pending"
    """A `soak.runmodel.VmState` value, or ``down`` (stopped, not by the run's end)."""
    kernel: str = ""
    bogo_ops_per_s: dict[str, float] = field(default_factory=dict)
    """stress-ng bogo-ops/s per stressor, the mean over its runs on this VM."""
    devices: dict[str, dict[str, float]] = field(default_factory=dict)
    """Device (``disk0``, ``net``, ``rng``) -> its verified traffic over the run: ``read_mb_s``,
    ``write_mb_s``, ``iops`` (while busy) and ``drops`` (network transfers that did not complete)."""
    console_dropped_bytes: int = 0
    """Console bytes not kept within run.console_limit (the classifier saw them all)."""
    host: str = ""
    """The host that ran it ("" in a journal written before shards)."""
    shard: int = 0
    readies: int = 0
    """Boots that became ready (QEMU start to the agent's hello, or to running without an agent)."""
    boot_s: float = 0.0
    """Their mean time to ready."""
    boot_max_s: float = 0.0


@dataclass
class Spread:
    """Where a failure signature of a merged summary was seen."""

    hosts: list[str] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    """Labels of the attempts it was seen in (``shard 1/3 attempt 0``)."""
    superseded: int = 0
    """Occurrences in superseded attempts (counted all the same)."""


@dataclass
class AttemptSummary:
    """One attempt of a shard, as the ``shards`` section of a merged summary lists it."""

    label: str
    attempt: int | None
    host: str
    run_dir: str
    run_id: str = ""
    engine_job: str = ""
    started: float | None = None
    finished: float | None = None
    finish_reason: str | None = None
    torn_tail: bool = False
    skipped_records: int = 0
    superseded: bool = False
    verdict: str = "clean"
    vms: int = 0
    vm_hours: float = 0.0
    failures: int = 0
    unexpected_failures: int = 0
    infra_problems: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "host": self.host, "run_dir": self.run_dir, "run_id": self.run_id,
                "engine_job": self.engine_job, "started": self.started, "finished": self.finished,
                "finish_reason": self.finish_reason, "torn_tail": self.torn_tail,
                "skipped_records": self.skipped_records, "superseded": self.superseded, "verdict": self.verdict,
                "vms": self.vms, "vm_hours": round(self.vm_hours, 4), "failures": self.failures,
                "unexpected_failures": self.unexpected_failures, "infra_problems": self.infra_problems}


@dataclass
class ShardSummary:
    """One shard of a run group and its attempts, oldest first (none: the shard is missing)."""

    shard: int | None
    """None: a journal whose shard cannot be told (no run-started record)."""
    shards: int
    attempts: list[AttemptSummary] = field(default_factory=list)

    @property
    def counted(self) -> AttemptSummary | None:
        return next((a for a in reversed(self.attempts) if not a.superseded), None)

    def to_json(self) -> dict[str, Any]:
        counted = self.counted
        return {"shard": self.shard, "shards": self.shards, "missing": not self.attempts,
                "host": counted.host if counted else None, "run_dir": counted.run_dir if counted else None,
                "finished": counted is not None and counted.finished is not None,
                "verdict": counted.verdict if counted else None,
                "attempts": [a.to_json() for a in self.attempts]}


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
    vm_hours: float = 0.0
    vms: dict[str, VmSummary] = field(default_factory=dict)
    failures: list[FailureGroup] = field(default_factory=list)
    infra_problems: list[dict[str, Any]] = field(default_factory=list)
    """The first soak problems, whole (at most `soak.runmodel.model.MAX_KEPT_PROBLEMS`)."""
    infra_total: int = 0
    """Every soak problem, also those past the ones kept whole."""
    faults: dict[str, int] = field(default_factory=dict)
    torn_tail: bool = False
    skipped_records: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    """The run totals exactly as pushed to a Pushgateway (soak.metrics.RunTotals)."""
    expectations: list[Expectation] = field(default_factory=list)
    verdict: str = "clean"
    """``clean``, ``failures`` or ``infra-error`` (soak.runmodel.verdict)."""
    observations: list[dict[str, Any]] = field(default_factory=list)
    """Worth knowing, neither a guest failure nor soak's trouble (a console flood)."""
    journal_dropped: int = 0
    """Sampled records the journal dropped because its disk fell behind."""
    # A merged summary of a run group (soak.merged) also has:
    shards: list[ShardSummary] | None = None
    """Every shard and its attempts; None: the summary of one run."""
    run_group: str = ""
    root: str = ""
    """The directory holding the group's run directories; evidence paths are relative to it."""
    group_problems: list[str] = field(default_factory=list)
    """Why the journals are not one whole run (`soak.runmodel.RunGroup.problems`)."""
    spread: dict[tuple[str, str], Spread] = field(default_factory=dict)
    """Where each failure signature was seen, by (kind, title)."""

    @property
    def unexpected_failures(self) -> int:
        return sum(g.unexpected for g in self.failures)

    @property
    def boot_times(self) -> dict[str, dict[str, float]]:
        """Time to ready per ``arch/firmware``: boots, mean and slowest (``summary --json``'s ``boot_time``)."""
        times: dict[str, dict[str, float]] = {}
        for vm in self.vms.values():
            if not vm.readies:
                continue
            entry = times.setdefault(f"{vm.arch}/{vm.firmware}", {"boots": 0, "total_s": 0.0, "max_s": 0.0})
            entry["boots"] += vm.readies
            entry["total_s"] += vm.boot_s * vm.readies
            entry["max_s"] = max(entry["max_s"], vm.boot_max_s)
        return {key: {"boots": int(e["boots"]), "mean_s": round(e["total_s"] / e["boots"], 3),
                      "max_s": round(e["max_s"], 3)} for key, e in sorted(times.items())}

    @property
    def missed_expectations(self) -> int:
        return sum(not e.met for e in self.expectations)

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT[self.verdict]

    def exit_code_for(self, statuses: Statuses | None, fail_on: str = "any") -> int:
        """The exit code under ``--fail-on`` (module docstring)."""
        if fail_on == "any" or statuses is None or self.verdict != "failures" or self.missed_expectations:
            return self.exit_code
        news = [g for g in self.failures if g.unexpected and statuses.get((g.kind, g.title), "new") in FAILING_STATUSES]
        return 1 if news else 0

    def to_json(self, statuses: Statuses | None = None, fail_on: str = "any") -> dict[str, Any]:
        """The machine-readable summary (``soak summary --json``); each failure's ``status`` is
        None without a history."""
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
            "exit_code": self.exit_code_for(statuses, fail_on),
            "fail_on": fail_on,
            "vm_hours": round(self.vm_hours, 4),
            "totals": {
                "vms": len(self.vms),
                "boots": sum(v.boots for v in self.vms.values()),
                "heartbeats": sum(v.heartbeats for v in self.vms.values()),
                "failures": sum(g.count for g in self.failures),
                "unexpected_failures": self.unexpected_failures,
                "failure_signatures": len(self.failures),
                "infra_problems": self.infra_total,
                "faults": sum(self.faults.values()),
            },
            "boot_time": self.boot_times,
            "vms": [
                {
                    "name": v.name,
                    "group": v.group,
                    "vcpus": v.vcpus,
                    "memory_mib": v.memory_mib,
                    "arch": v.arch,
                    "firmware": v.firmware,
                    "boots": v.boots,
                    "boot_s": round(v.boot_s, 3),
                    "failures": v.failures,
                    "expected_failures": v.expected_failures,
                    "uptime_s": round(v.uptime_s, 3),
                    "heartbeats": v.heartbeats,
                    "state": v.state,
                    "kernel": v.kernel,
                    "bogo_ops_per_s": {name: round(rate, 2) for name, rate in v.bogo_ops_per_s.items()},
                    "devices": v.devices,
                    "console_dropped_bytes": v.console_dropped_bytes,
                    "host": v.host,
                    "shard": v.shard,
                }
                for v in self.vms.values()
            ],
            "failures": [
                {
                    "kind": g.kind,
                    "title": g.title,
                    "status": None if statuses is None else statuses.get((g.kind, g.title)),
                    "count": g.count,
                    "expected": g.expected,
                    "vms": g.vms,
                    "first_seen": g.first_seen,
                    "last_seen": g.last_seen,
                    "evidence": g.evidence,
                    "last_evidence": g.last_evidence,
                    "corrupted": g.corrupted,
                    "without_evidence": g.without_evidence,
                    "hosts": self.hosts_of(g),
                    "superseded": self.spread[(g.kind, g.title)].superseded if (g.kind, g.title) in self.spread
                    else 0,
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
        } | self._group_json()

    def hosts_of(self, group: FailureGroup) -> list[str]:
        """The hosts a failure signature hit, in the order first hit."""
        spread = self.spread.get((group.kind, group.title))
        if spread is not None:
            return spread.hosts
        return list(dict.fromkeys(self.vms[vm].host for vm in group.vms if vm in self.vms and self.vms[vm].host))

    def _group_json(self) -> dict[str, Any]:
        if self.shards is None:
            return {}
        return {"run_group": self.run_group, "root": self.root, "group_problems": self.group_problems,
                "shards": [shard.to_json() for shard in self.shards]}


def summary_of(model: RunModel, *, now: float | None = None) -> Summary:
    """The summary view of a model; ``now`` measures a run still going (see `RunModel.end`)."""
    run = model.run
    end = model.end(now)
    return Summary(
        run_id=run.run_id if run else "",
        profile=run.profile if run else "",
        seed=run.seed if run else None,
        accel=run.accel if run else "",
        started=run.t if run else None,
        finished=model.finished.t if model.finished else None,
        finish_reason=model.finished.reason if model.finished else None,
        duration_s=model.elapsed(now),
        vm_hours=model.vm_seconds(now) / 3600,
        vms={
            vm.name: VmSummary(
                name=vm.name,
                group=vm.group,
                vcpus=vm.info.vcpus if vm.info else 0,
                memory_mib=vm.info.memory_mib if vm.info else 0,
                arch=vm.info.arch if vm.info else "x86_64",
                firmware=vm.info.firmware if vm.info else "bios",
                boots=vm.boots,
                failures=vm.failures + vm.expected_failures,
                expected_failures=vm.expected_failures,
                uptime_s=vm.uptime_s(end),
                heartbeats=vm.heartbeats,
                state=vm.shown_state,
                kernel=vm.kernel,
                bogo_ops_per_s={name: rate.mean for name, rate in vm.throughput.items()},
                devices={name: {"read_mb_s": round(d.rate(d.read_bytes) / 1e6, 2),
                                "write_mb_s": round(d.rate(d.write_bytes) / 1e6, 2),
                                "iops": round(d.rate(d.ops), 1), "drops": d.drops}
                         for name, d in sorted(vm.devices.items())},
                console_dropped_bytes=vm.console_dropped_bytes,
                host=run.host if run else "",
                shard=run.shard if run else 0,
                readies=vm.boot_time.runs,
                boot_s=vm.boot_time.mean,
                boot_max_s=vm.boot_max_s,
            )
            for vm in model.vms.values()
        },
        failures=[g.copy() for g in model.failure_groups()],
        infra_problems=[{"vm": p.vm, "problem": p.problem, "message": p.message, "t": p.t} for p in model.problems],
        infra_total=model.infra_total,
        faults=dict(model.faults_injected),
        metrics=run_totals(model, now).to_json(),
        expectations=model.expectation_results(),
        verdict=verdict_facts(model).verdict,
        observations=[{"vm": o.vm, "topic": o.topic, "message": o.message, "value": o.value, "t": o.t}
                      for o in model.observations],
        journal_dropped=model.journal_dropped,
    )


def summarize(events: Iterable[ev.Event], *, now: float | None = None) -> Summary:
    """Fold events (a test's list, a journal's) and take the summary view."""
    return summary_of(replay(events), now=now)


def load_summary(journal: Path) -> Summary:
    """The summary of the run whose journal is at ``journal`` (finished, running or crashed).

    :raise FileNotFoundError: no journal there.
    """
    return summary_of_run(load_run(journal))


def summary_of_run(loaded: LoadedRun) -> Summary:
    """The summary of a folded journal, with what reading it found (torn tail, skipped records)."""
    summary = summary_of(loaded.model)
    summary.torn_tail, summary.skipped_records = loaded.torn_tail, loaded.skipped_records
    return summary
