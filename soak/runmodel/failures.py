"""Failures as the run model keeps them: grouped by signature, and matched to expectations.

A signature is (kind, title): a bug that fired forty times on twelve VMs is one
`FailureGroup` with its counts, its VMs and its first and newest evidence.
`Signatures` holds at most `MAX_SIGNATURES` groups; past that, new titles of a
kind are counted together under `OVERFLOW_TITLE` (a run that finds that many
different bugs has its journal for the rest), so the model stays bounded.

`Expectations` checks the failures a VM was declared to produce (a self-test):
each declared kind (``a|b``: either) is met by the first failure of that kind
on the VM, in time order, each failure meeting one expectation only; the clock
starts at the VM's first fault (the cause), or its first ready without faults.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from soak.events import Failure, VmInfo
from soak.runmodel.vm import VmRecord

MAX_SIGNATURES = 1000
OVERFLOW_TITLE = "(more signatures than soak keeps: see the journal)"


@dataclass
class FailureGroup:
    """Every failure of one signature (kind, title) in a run."""

    kind: str
    title: str
    count: int = 0
    vms: list[str] = field(default_factory=list)
    """VMs it hit, in the order it first hit them."""
    first_seen: float = 0.0
    last_seen: float = 0.0
    evidence: str = ""
    """The first occurrence's evidence folder, relative to its run directory."""
    last_evidence: str = ""
    """The newest occurrence's evidence folder (the others are in the journal)."""
    expected: int = 0
    """How many of ``count`` a profile declared as the intended outcome of a fault."""
    corrupted: bool = False
    """Some report of it was too damaged to trust its title."""
    without_evidence: int = 0
    """Occurrences recorded without an evidence folder (repeats past ``evidence_per_signature``)."""

    @property
    def unexpected(self) -> int:
        return self.count - self.expected

    def add(self, e: Failure) -> None:
        if self.count == 0:
            self.first_seen, self.evidence = e.t, e.evidence
        self.count += 1
        self.expected += int(e.expected)
        self.corrupted = self.corrupted or e.corrupted
        self.without_evidence += not e.evidence
        self.first_seen = min(self.first_seen, e.t)
        if e.t >= self.last_seen:
            self.last_seen = e.t
            self.last_evidence = e.evidence or self.last_evidence
        if e.vm not in self.vms:
            self.vms.append(e.vm)

    def absorb(self, other: FailureGroup) -> None:
        """Add another run's group of the same signature (merging shards or attempts)."""
        if other.count == 0:
            return
        if self.count == 0 or other.first_seen < self.first_seen:
            self.first_seen, self.evidence = other.first_seen, other.evidence
        if other.last_seen >= self.last_seen:
            self.last_seen, self.last_evidence = other.last_seen, other.last_evidence
        self.count += other.count
        self.expected += other.expected
        self.without_evidence += other.without_evidence
        self.corrupted = self.corrupted or other.corrupted
        self.vms.extend(vm for vm in other.vms if vm not in self.vms)

    def copy(self) -> FailureGroup:
        twin = FailureGroup(self.kind, self.title)
        twin.absorb(self)
        return twin


def importance(group: FailureGroup) -> tuple[int, float]:
    """Sort key: most unexpected occurrences first, then the earliest (how the summary lists them)."""
    return -group.unexpected, group.first_seen


def by_importance(groups: Iterable[FailureGroup]) -> list[FailureGroup]:
    return sorted(groups, key=importance)


class Signatures:
    """The failure groups of one run, keyed by (kind, title), bounded (module docstring)."""

    def __init__(self, limit: int = MAX_SIGNATURES) -> None:
        self._limit = limit
        self.groups: dict[tuple[str, str], FailureGroup] = {}

    def add(self, e: Failure) -> None:
        key = (e.kind.value, e.title)
        group = self.groups.get(key)
        if group is None:
            if len(self.groups) >= self._limit:
                key = (e.kind.value, OVERFLOW_TITLE)
                group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = FailureGroup(*key)
        group.add(e)


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
class _Wanted:
    vm: str
    kinds: str
    within_s: float
    matched: Failure | None = None

    def wants(self, e: Failure) -> bool:
        return self.matched is None and e.kind.value in self.kinds.split("|")


class Expectations:
    """Matches each declared expectation to the failure that meets it, as failures come."""

    def __init__(self) -> None:
        self._by_vm: dict[str, list[_Wanted]] = {}

    def declare(self, vms: Iterable[VmInfo]) -> None:
        self._by_vm = {
            info.name: [_Wanted(info.name, kinds, info.expect_within_s) for kinds in info.expect]
            for info in vms
            if info.expect
        }

    def on_failure(self, e: Failure) -> None:
        for wanted in self._by_vm.get(e.vm, ()):
            if wanted.wants(e):
                wanted.matched = e
                return

    def results(self, vms: Mapping[str, VmRecord]) -> list[Expectation]:
        """Each expectation with what met it, timed from its VM's first fault or ready."""
        results: list[Expectation] = []
        for name, wanted_list in self._by_vm.items():
            vm = vms.get(name)
            anchor = None if vm is None else vm.first_fault if vm.first_fault is not None else vm.first_ready
            for wanted in wanted_list:
                result = Expectation(name, wanted.kinds, wanted.within_s)
                if wanted.matched is not None and anchor is not None:
                    result.detected = f"{wanted.matched.kind.value}: {wanted.matched.title}"
                    result.after_s = max(0.0, wanted.matched.t - anchor)
                results.append(result)
        return results
