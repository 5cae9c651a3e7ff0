"""Combining the models of several journals: the shards of one run, or the attempts of a shard.

Each journal is folded into its own `RunModel` (``soak.runmodel.replay``); the
views here add them up without a second fold: failures merged by signature
(each listing the runs it hit, under labels the caller picks, e.g. a host or
``shard 2/3 attempt 1``), VM-seconds summed, the history facts of each run's
signatures merged the same way. The verdict of the whole is
`verdict.combined_facts`. Which journals belong together (a missing shard, a
mismatched seed, a superseded attempt) is ``soak.runmodel.group``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from soak.runmodel.facts import RunFacts, SignatureFacts
from soak.runmodel.failures import FailureGroup, importance
from soak.runmodel.model import RunModel


@dataclass
class MergedSignature:
    """One signature over several runs."""

    group: FailureGroup
    """Counts, VMs and evidence summed over the runs (evidence relative to its own run)."""
    runs: list[str] = field(default_factory=list)
    """Labels of the runs it was seen in, in the order given."""
    evidence_run: str = ""
    """Label of the run holding ``group.evidence`` (the earliest occurrence)."""
    last_evidence_run: str = ""
    """Label of the run holding ``group.last_evidence`` (the newest occurrence)."""


def merged_signatures(runs: Mapping[str, RunModel]) -> list[MergedSignature]:
    """Failures of every run grouped by (kind, title), most unexpected occurrences first."""
    merged: dict[tuple[str, str], MergedSignature] = {}
    for label, model in runs.items():
        for key, group in model.signatures.groups.items():
            entry = merged.get(key)
            if entry is None:
                entry = merged[key] = MergedSignature(FailureGroup(*key))
            before = (entry.group.count, entry.group.first_seen, entry.group.last_seen)
            entry.group.absorb(group)
            if before[0] == 0 or group.first_seen < before[1]:
                entry.evidence_run = label
            if group.last_seen >= before[2]:
                entry.last_evidence_run = label
            entry.runs.append(label)
    return sorted(merged.values(), key=lambda e: importance(e.group))


def merged_vm_seconds(models: Mapping[str, RunModel], now: float | None = None) -> float:
    """Guest uptime summed over every run (each measured to its own end, or ``now``)."""
    return sum(model.vm_seconds(now) for model in models.values())


def merged_signature_facts(runs: Iterable[RunFacts]) -> tuple[SignatureFacts, ...]:
    """The history facts of several runs' signatures, one per (kind, title): counts summed,
    VMs and shapes joined, the earliest evidence first and the newest last (each relative to
    its own run directory), ordered as `merged_signatures` orders them."""
    merged: dict[tuple[str, str], SignatureFacts] = {}
    for facts in runs:
        for s in facts.signatures:
            key = (s.kind, s.title)
            old = merged.get(key)
            if old is None:
                merged[key] = s
                continue
            earliest, newest = (s if s.first_seen < old.first_seen else old), (s if s.last_seen >= old.last_seen else old)
            merged[key] = SignatureFacts(
                kind=s.kind, title=s.title, count=old.count + s.count, expected=old.expected + s.expected,
                corrupted=old.corrupted or s.corrupted, first_seen=earliest.first_seen, last_seen=newest.last_seen,
                evidence=earliest.evidence, last_evidence=newest.last_evidence,
                vms=(*old.vms, *(vm for vm in s.vms if vm not in old.vms)),
                shapes=(*old.shapes, *(shape for shape in s.shapes if shape not in old.shapes)),
            )
    return tuple(sorted(merged.values(), key=lambda s: (s.expected - s.count, s.first_seen)))
