"""Views of a history: the statuses of one run's signatures, signatures across runs, the runs.

Each view reads the store's rows once and decides every status with the one
`Chronicle` (``soak.history.status``), so ``soak summary``, ``soak run``,
``soak history`` and ``soak history runs`` cannot disagree about a signature.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak.history.status import STATUSES, Chronicle, Key, Policy, RunPoint, Status
from soak.history.store import HistoryStore, RunRow, SightingRow, stored_title
from soak.runmodel import RunFacts

MAX_VMS_LISTED = 64
"""VM names listed per signature (``vm_count`` has them all)."""


def chronicle(runs: Iterable[RunRow], sightings: Iterable[SightingRow]) -> Chronicle:
    seen: dict[Key, set[str]] = {}
    for s in sightings:
        if s.unexpected > 0:
            seen.setdefault((s.kind, s.title), set()).add(s.run_id)
    return Chronicle((point(r) for r in runs), seen)


def point(run: RunRow) -> RunPoint:
    return RunPoint(run.run_id, run.profile, run.started, run.boots > 0)


def run_statuses(facts: RunFacts, store: HistoryStore | None, policy: Policy, *,
                 exclude: Collection[str] = ()) -> dict[Key, Status]:
    """The status of each signature of a run, against the runs of ``store`` before it (as if the
    run were recorded, whether it is or not); keyed by (kind, title) as the summary has them.
    Runs whose ids are in ``exclude`` are left out (parts of the rated run: a group's shards)."""
    keys = {(s.kind, s.title) for s in facts.signatures}
    runs = [r for r in store.runs() if r.run_id not in exclude] if store is not None else []
    sightings = [s for s in store.sightings(keys) if s.run_id not in exclude] if store is not None and keys else []
    history = chronicle(runs, sightings)
    me = RunPoint(facts.run_id, facts.profile, facts.ended if facts.started is None else facts.started,
                  facts.boots > 0)
    return {
        (s.kind, s.title): "expected" if s.count == s.expected
        else history.status((s.kind, stored_title(s.title)), me, policy)
        for s in facts.signatures
    }


@dataclass(frozen=True, slots=True)
class Filters:
    profile: str | None = None
    since: float | None = None
    """Only runs that started at this Unix time or later."""
    kind: str | None = None

    def admits(self, run: RunRow) -> bool:
        return (self.profile is None or run.profile == self.profile) and (self.since is None or run.started >= self.since)


@dataclass
class SignatureHistory:
    """One signature across the runs a listing looks at."""

    kind: str
    title: str
    status: Status = "known"
    """Its status in the newest run that saw it."""
    runs_seen: int = 0
    runs_total: int = 0
    """Runs that could have seen it: comparable runs of the profiles it was seen in."""
    first_seen: float = 0.0
    last_seen: float = 0.0
    occurrences: int = 0
    """Unexpected failures under this signature, over the runs seen."""
    vm_hours: float = 0.0
    """VM-hours of the ``runs_total`` runs."""
    profiles: list[str] = field(default_factory=list)
    vms: list[str] = field(default_factory=list)
    vcpus: list[int] = field(default_factory=list)
    memory_mib: list[int] = field(default_factory=list)
    kernels: list[str] = field(default_factory=list)
    machines: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    qemu_versions: list[str] = field(default_factory=list)
    accels: list[str] = field(default_factory=list)
    corrupted: bool = False
    last_run_id: str = ""
    last_evidence: str = ""
    """The newest evidence folder (absolute; gone once its run directory was pruned)."""

    @property
    def rate_per_vm_hour(self) -> float | None:
        return self.occurrences / self.vm_hours if self.vm_hours > 0 else None

    def to_json(self) -> dict[str, Any]:
        rate = self.rate_per_vm_hour
        return {
            "kind": self.kind, "title": self.title, "status": self.status,
            "runs_seen": self.runs_seen, "runs_total": self.runs_total,
            "first_seen": self.first_seen, "last_seen": self.last_seen,
            "occurrences": self.occurrences, "vm_hours": round(self.vm_hours, 4),
            "rate_per_vm_hour": None if rate is None else round(rate, 6),
            "profiles": self.profiles, "vms": self.vms, "vcpus": self.vcpus, "memory_mib": self.memory_mib,
            "kernels": self.kernels, "machines": self.machines, "images": self.images,
            "qemu_versions": self.qemu_versions, "accels": self.accels, "corrupted": self.corrupted,
            "last_run_id": self.last_run_id, "last_evidence": self.last_evidence,
            "last_evidence_exists": bool(self.last_evidence) and Path(self.last_evidence).exists(),
        }


def list_signatures(store: HistoryStore, filters: Filters, policy: Policy) -> tuple[list[RunRow], list[SignatureHistory]]:
    """The runs the filters admit, and every signature one of them saw unexpectedly, most
    alarming status first, then newest."""
    runs = store.runs()
    sightings = store.sightings()
    history = chronicle(runs, sightings)
    by_id = {r.run_id: r for r in runs}
    admitted = {r.run_id for r in runs if filters.admits(r)}
    groups: dict[Key, list[SightingRow]] = {}
    for s in sightings:
        if s.unexpected > 0 and s.run_id in admitted and (filters.kind is None or s.kind == filters.kind):
            groups.setdefault((s.kind, s.title), []).append(s)
    listed = [_signature(key, seen, by_id, [by_id[i] for i in admitted], history, policy)
              for key, seen in groups.items()]
    listed.sort(key=lambda s: (STATUSES.index(s.status), -s.last_seen))
    return [by_id[i] for i in sorted(admitted, key=lambda i: by_id[i].started)], listed


def _signature(key: Key, seen: list[SightingRow], by_id: dict[str, RunRow], admitted: list[RunRow],
               history: Chronicle, policy: Policy) -> SignatureHistory:
    seen.sort(key=lambda s: (by_id[s.run_id].started, s.run_id))
    runs_seen = [by_id[s.run_id] for s in seen]
    newest_run, newest = runs_seen[-1], seen[-1]
    profiles = sorted({r.profile for r in runs_seen})
    could = {r.run_id: r for r in admitted if r.profile in profiles and r.boots > 0} | {r.run_id: r for r in runs_seen}
    shapes = [shape for s in seen for shape in s.shapes]
    out = SignatureHistory(
        kind=key[0], title=key[1],
        status=history.status(key, point(newest_run), policy),
        runs_seen=len(seen), runs_total=len(could),
        first_seen=min(s.first_seen for s in seen), last_seen=max(s.last_seen for s in seen),
        occurrences=sum(s.unexpected for s in seen),
        vm_hours=sum(r.vm_hours for r in could.values()),
        profiles=profiles,
        vms=_distinct(vm for s in seen for vm in s.vms)[:MAX_VMS_LISTED],
        vcpus=sorted(set(sh.vcpus for sh in shapes)), memory_mib=sorted(set(sh.memory_mib for sh in shapes)),
        kernels=_distinct(sh.kernel for sh in shapes if sh.kernel),
        machines=_distinct(sh.machine for sh in shapes), images=_distinct(sh.image for sh in shapes),
        qemu_versions=_distinct(r.qemu_version for r in runs_seen if r.qemu_version),
        accels=_distinct(r.accel for r in runs_seen),
        corrupted=any(s.corrupted for s in seen),
        last_run_id=newest_run.run_id,
    )
    evidence = newest.last_evidence or newest.evidence
    out.last_evidence = str(Path(newest_run.run_dir) / evidence) if evidence else ""
    return out


def _distinct(values: Iterable[str]) -> list[str]:
    return sorted(set(values))


@dataclass
class RunHistory:
    """One recorded run and the statuses of what it saw."""

    run: RunRow
    statuses: dict[Status, int]
    """How many of its signatures had each status."""

    def to_json(self) -> dict[str, Any]:
        r = self.run
        return {
            "run_id": r.run_id, "profile": r.profile, "seed": r.seed, "accel": r.accel,
            "qemu_version": r.qemu_version, "soak_version": r.soak_version, "started": r.started,
            "ended": r.ended, "finish_reason": r.finish_reason, "verdict": r.verdict,
            "vm_hours": round(r.vm_hours, 4), "vms": r.vms, "boots": r.boots, "run_dir": r.run_dir,
            "run_dir_exists": Path(r.run_dir).is_dir(), "statuses": self.statuses,
        }


def list_runs(store: HistoryStore, filters: Filters, policy: Policy) -> list[RunHistory]:
    """The runs the filters admit, oldest first, each with the statuses of its signatures."""
    runs = store.runs()
    sightings = store.sightings()
    history = chronicle(runs, sightings)
    by_run: dict[str, list[SightingRow]] = {}
    for s in sightings:
        if filters.kind is None or s.kind == filters.kind:
            by_run.setdefault(s.run_id, []).append(s)
    listed = []
    for run in runs:
        if not filters.admits(run):
            continue
        counts: dict[Status, int] = {}
        for s in by_run.get(run.run_id, []):
            status: Status = "expected" if s.unexpected == 0 else history.status((s.kind, s.title), point(run), policy)
            counts[status] = counts.get(status, 0) + 1
        listed.append(RunHistory(run, counts))
    return listed
