"""`RunFacts`: what a history store keeps of a run, derived from its model.

One frozen record per run: its identity (run id, profile, seed, accelerator,
QEMU and soak versions), its span and VM-hours, its verdict, and one
`SignatureFacts` per failure signature with the VMs it hit and their shapes
(vCPUs, memory, machine, image, guest kernel). Evidence paths are relative to
the run directory, as the journal has them.
"""

from __future__ import annotations

from dataclasses import dataclass

from soak.runmodel.failures import FailureGroup
from soak.runmodel.model import RunModel
from soak.runmodel.verdict import verdict_facts


@dataclass(frozen=True, slots=True)
class VmShape:
    vcpus: int
    memory_mib: int
    machine: str
    image: str
    kernel: str
    """Guest kernel release as its agent reported it ("" if no agent said)."""


@dataclass(frozen=True, slots=True)
class SignatureFacts:
    kind: str
    title: str
    count: int
    expected: int
    corrupted: bool
    first_seen: float
    last_seen: float
    evidence: str
    """The first occurrence's evidence folder, relative to the run directory."""
    last_evidence: str
    vms: tuple[str, ...]
    shapes: tuple[VmShape, ...]
    """The distinct shapes of ``vms``, in the order first hit."""


@dataclass(frozen=True, slots=True)
class RunFacts:
    run_id: str
    profile: str
    profile_path: str
    seed: int | None
    accel: str
    version: str
    """soak's version."""
    qemu_version: str
    """"" when the journal does not say."""
    started: float | None
    """None when the journal has no `RunStarted` (its first lines were lost)."""
    ended: float
    """Its `RunFinished` time, or its newest event for a run that did not finish."""
    finish_reason: str | None
    """None: still running, or soak died before it could finish."""
    verdict: str
    vm_hours: float
    vms: int
    boots: int
    signatures: tuple[SignatureFacts, ...]


def run_facts(model: RunModel) -> RunFacts:
    """The history facts of one folded journal (measured to its finish or newest event)."""
    run = model.run
    return RunFacts(
        run_id=run.run_id if run else "",
        profile=run.profile if run else "",
        profile_path=run.profile_path if run else "",
        seed=run.seed if run else None,
        accel=run.accel if run else "",
        version=run.version if run else "",
        qemu_version=run.qemu_version if run else "",
        started=run.t if run else None,
        ended=model.end(),
        finish_reason=model.finished.reason if model.finished else None,
        verdict=verdict_facts(model).verdict,
        vm_hours=model.vm_seconds() / 3600,
        vms=len(model.vms),
        boots=model.boots,
        signatures=tuple(_signature(model, g) for g in model.failure_groups()),
    )


def _signature(model: RunModel, group: FailureGroup) -> SignatureFacts:
    shapes: list[VmShape] = []
    for name in group.vms:
        vm = model.vms.get(name)
        if vm is None or vm.info is None:
            continue
        info = vm.info
        shape = VmShape(info.vcpus, info.memory_mib, info.machine, info.image, vm.kernel)
        if shape not in shapes:
            shapes.append(shape)
    return SignatureFacts(
        kind=group.kind,
        title=group.title,
        count=group.count,
        expected=group.expected,
        corrupted=group.corrupted,
        first_seen=group.first_seen,
        last_seen=group.last_seen,
        evidence=group.evidence,
        last_evidence=group.last_evidence,
        vms=tuple(group.vms),
        shapes=tuple(shapes),
    )
