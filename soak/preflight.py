"""Pre-flight: what a profile asks of this host and its image, checked before any QEMU starts.

A run that cannot fit should fail in the first second with one line, not
after hours with a full disk or an OOM-killed fleet. The checks are pure
functions of the profile, the fleet and `HostFacts` (gathered once by
`host_facts`), so they are tested without touching the host:

- memory: the fleet's guest memory plus QEMU's own, against the host's memory
  times ``run.memory_overcommit`` (set it above 1 to overcommit on purpose);
- disk: the most the run can write (every console at ``run.console_limit``,
  the journal for the whole duration, the evidence folders) plus
  ``run.min_free_disk``, against the free space of the run directory;
- faults: a guest fault needs soak's agent, and a kernel fault its
  ``faultinject`` module, in the image of the fault's group;
- disks: images in the run directory count against its disk at their full
  size (a qcow2 or sparse raw file grows up to it; the guest's discards shrink
  it again); images on a VM's own tmpfs count against the host's memory, and
  mounting that tmpfs needs root.

`estimate_disk` is also what ``soak run`` prints at the start: the journal
and console bytes expected per VM-hour, from constants measured on real runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from soak.detect.launch import launch_preflight
from soak.errors import CapacityError, ProfileError
from soak.faults.catalog import fault_type
from soak.image.faults import FAULTS as GUEST_FAULTS
from soak.image.faults import MODULE
from soak.image.model import FEATURE_FAULTINJECT
from soak.profile import Profile, VmSpec
from soak.units import format_bytes

# Sizes of journal records and console output, measured on real runs on this TCG host
# (profiles/smoke.toml, and 2 VMs for 5 minutes, one with stress-ng bursts and pause
# faults: estimated 58.8 KiB, written 51.2 KiB).
HEARTBEAT_RECORD = 180
PROCESS_RECORD = 130
WORKLOAD_RECORD = 140
FAULT_RECORD = 170
FAILURE_RECORD = 450
DEVICE_RECORD = 230
"""A `device-io` record: one per device per minute at most (`soak.load.devload.REPORT_S`)."""
BOOT_RECORDS = 1_100
"""vm-starting (its argv: ~830 B), vm-ready and vm-stopped."""
LATE_HEARTBEATS = 0.02
"""Share of heartbeats the journal keeps whole because they came late (a loaded host)."""
JOURNAL_SAMPLE_S = 60.0
"""soak.journal keeps one heartbeat and one process sample per VM per minute."""
BOOT_LOG_BYTES = 24 * 1024
"""The default image's boot log (22 KiB measured); the console is quiet after it."""
REPORT_BYTES = 6 * 1024
"""A kernel report (oops, warning, lockup) with its call trace."""
FAULT_CONSOLE_BYTES = 1024
"""What a guest prints for a fault it survives (an NMI's notice, a hot-plugged CPU coming up)."""
EVIDENCE_FOLDER_BYTES = 112 * 1024
"""console tail (64 KiB), QEMU stderr tail (<= 16 KiB), report, registers, argv, reproducer."""
NOMINAL_SIGNATURES = 8
"""Different failure signatures a VM is assumed to meet, for the evidence bound."""
QEMU_OVERHEAD_MIB = {"tcg": 96, "kvm": 48}
"""QEMU's own memory beside the guest's: TCG's 64 MiB translation cache, libraries, buffers."""


@dataclass(frozen=True, slots=True)
class HostFacts:
    disk_free: int
    """Bytes an unprivileged writer may still use where the run directory goes."""
    disk_total: int
    memory_total: int
    memory_available: int


def host_facts(run_dir: Path) -> HostFacts:
    """The host's disk (where ``run_dir`` goes; it may not exist yet) and memory.

    :raise OSError: no ancestor of ``run_dir`` can be examined.
    """
    where = run_dir.absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    st = os.statvfs(where)
    memory = psutil.virtual_memory()
    return HostFacts(disk_free=st.f_bavail * st.f_frsize, disk_total=st.f_blocks * st.f_frsize,
                     memory_total=memory.total, memory_available=memory.available)


@dataclass(frozen=True, slots=True)
class DiskEstimate:
    journal_per_vm_hour: float
    console_per_vm_hour: float
    expected: float
    """Bytes this run is expected to write (journal, consoles, evidence), all VMs, whole duration."""
    journal_bound: float
    console_bound: int
    """``console_limit`` times the VMs: what every console flooding would keep."""
    evidence_bound: int
    images_bound: int = 0
    """The full size of every disk image in the run directory (``backing = "run"``)."""

    @property
    def most(self) -> float:
        return self.journal_bound + self.console_bound + self.evidence_bound + self.images_bound

    def describe(self, vms: int) -> str:
        return (f"expect ~{format_bytes(self.journal_per_vm_hour)} of journal and "
                f"~{format_bytes(self.console_per_vm_hour)} of console per VM-hour "
                f"(this run ~{format_bytes(self.expected)}); at most {format_bytes(self.most)} "
                f"(console_limit {format_bytes(self.console_bound / max(1, vms))} x {vms} VMs, "
                f"journal, evidence{', disk images' if self.images_bound else ''})")


def _per_hour(every_s: float | None) -> float:
    return 3600.0 / every_s if every_s else 0.0


def _vm_rates(spec: VmSpec, profile: Profile) -> tuple[float, float, float]:
    """(journal, console) bytes per hour of one VM, and its evidence bytes over the run."""
    hours = max(profile.run.duration, 60.0) / 3600
    evidence = 0.0
    beats = _per_hour(profile.watch.heartbeat_interval)
    journal = (_per_hour(JOURNAL_SAMPLE_S) * (HEARTBEAT_RECORD + PROCESS_RECORD)
               + beats * LATE_HEARTBEATS * HEARTBEAT_RECORD)
    failures_per_hour = reboots_per_hour = faults_per_hour = 0.0
    for fault in spec.faults:
        if fault.vms is not None and spec.index_in_group not in fault.vms:
            continue
        rate = _per_hour(fault.every) if fault.every else len(fault.at) / hours
        if fault.count:
            rate = min(rate, fault.count / hours)
        journal += rate * FAULT_RECORD
        faults_per_hour += rate
        if fault_type(fault.type).reboots:  # a reset: a boot log of its own, in the same QEMU
            reboots_per_hour += rate
        if fault.outcome_expected == "fail":
            failures_per_hour += rate
            evidence += min(profile.run.evidence_per_signature, rate * hours) * EVIDENCE_FOLDER_BYTES
    if spec.load is not None:
        load = spec.load
        cycle = load.period + (load.idle if load.pattern == "bursts" else 0.0)
        stressors = len(load.stressors) + ("mix" in load.stressors)  # "mix": a seeded pick, one or two more
        journal += _per_hour(cycle) * stressors * WORKLOAD_RECORD
    devices = len(spec.disks) + (spec.network is not None) + spec.rng
    journal += devices * _per_hour(JOURNAL_SAMPLE_S) * DEVICE_RECORD
    boots_per_hour = 1 / hours + failures_per_hour
    journal += boots_per_hour * BOOT_RECORDS + failures_per_hour * FAILURE_RECORD
    console = ((boots_per_hour + reboots_per_hour) * BOOT_LOG_BYTES + failures_per_hour * REPORT_BYTES
               + faults_per_hour * FAULT_CONSOLE_BYTES)
    return journal, console, evidence


def estimate_disk(profile: Profile, fleet: list[VmSpec]) -> DiskEstimate:
    """What the run will write: a pure function of the profile (see the measured constants above)."""
    hours = profile.run.duration / 3600
    rates = [_vm_rates(spec, profile) for spec in fleet]
    journal = sum(r[0] for r in rates)
    console = sum(r[1] for r in rates)
    n = max(1, len(fleet))
    evidence_expected = sum(r[2] for r in rates)
    return DiskEstimate(
        journal_per_vm_hour=journal / n,
        console_per_vm_hour=console / n,
        expected=(journal + console) * hours + evidence_expected,
        journal_bound=journal * hours * 2,  # late heartbeats on a loaded host: room for twice the estimate
        console_bound=profile.run.console_limit * len(fleet),
        evidence_bound=profile.run.evidence_per_signature * NOMINAL_SIGNATURES * EVIDENCE_FOLDER_BYTES * len(fleet),
        images_bound=sum(d.size for spec in fleet for d in spec.disks if d.backing == "run"),
    )


def check_disk(source: str, profile: Profile, fleet: list[VmSpec], facts: HostFacts, run_dir: Path) -> None:
    """:raise CapacityError: the run's most plus ``run.min_free_disk`` is more than is free."""
    estimate = estimate_disk(profile, fleet)
    floor = profile.run.min_free_disk.of(facts.disk_total)
    if facts.disk_free >= estimate.most + floor:
        return
    raise CapacityError(
        f"{source}: {run_dir} has {format_bytes(facts.disk_free)} free, but this run may write up to "
        f"{format_bytes(estimate.most)} (console_limit {format_bytes(profile.run.console_limit)} x "
        f"{len(fleet)} VMs, journal, evidence, {format_bytes(estimate.images_bound)} of disk images) and must leave {format_bytes(floor)} free "
        f"(run.min_free_disk): lower run.console_limit, shorten the run or free space")


def fleet_memory_mib(fleet: list[VmSpec], accel: str) -> tuple[int, int]:
    """(guest memory, QEMU's own and the disks' tmpfs) in MiB for the whole fleet."""
    overhead = QEMU_OVERHEAD_MIB.get(accel, QEMU_OVERHEAD_MIB["tcg"])
    tmpfs = sum(d.size for spec in fleet for d in spec.disks if d.backing == "tmpfs") >> 20
    return sum(spec.memory_mib for spec in fleet), overhead * len(fleet) + tmpfs


def check_memory(source: str, profile: Profile, fleet: list[VmSpec], facts: HostFacts, accel: str) -> None:
    """:raise CapacityError: the fleet needs more memory than the host has times the overcommit."""
    guests, qemu = fleet_memory_mib(fleet, accel)
    need = (guests + qemu) << 20
    ratio = profile.run.memory_overcommit
    if need <= facts.memory_total * ratio:
        return
    raise CapacityError(
        f"{source}: the fleet needs {format_bytes(need)} of memory ({len(fleet)} VMs: "
        f"{format_bytes(guests << 20)} for the guests, {format_bytes(qemu << 20)} for QEMU itself and disks on "
        f"tmpfs) but this "
        f"host has {format_bytes(facts.memory_total)} (run.memory_overcommit = {ratio:g}; raise it to "
        f"overcommit on purpose)")


def check_devices(source: str, fleet: list[VmSpec], *, root: bool) -> None:
    """Disks on a VM's own tmpfs need root to mount it.

    :raise CapacityError: naming the group.
    """
    tmpfs = sorted({spec.group for spec in fleet if any(d.backing == "tmpfs" for d in spec.disks)})
    if tmpfs and not root:
        raise CapacityError(f"{source}: group {tmpfs[0]!r} has disks with backing = 'tmpfs': soak mounts a tmpfs "
                            "per VM for them, which needs root; run as root or use backing = 'run'")


class ImageCapabilities(Protocol):
    """What the check needs of a resolved image (soak.session.BootImage)."""

    @property
    def label(self) -> str: ...
    @property
    def agent(self) -> bool: ...
    @property
    def features(self) -> frozenset[str]: ...
    @property
    def notes(self) -> tuple[str, ...]: ...


def check_initrd_fits(source: str, fleet: Sequence[VmSpec], initrd_bytes: Mapping[str, int]) -> None:
    """QEMU loads the initrd into guest RAM: one as large as a VM's memory can never boot.

    :raise ProfileError: naming the VM's group and the memory it needs.
    """
    for spec in fleet:
        problem = launch_preflight(spec.memory_mib, initrd_bytes.get(spec.group))
        if problem is not None:
            raise ProfileError(source, f"group {spec.group!r} memory", f"{spec.name}: {problem}")


def check_guest_faults(source: str, profile: Profile, images: Mapping[str, ImageCapabilities]) -> None:
    """Every guest fault of a group can be provoked by the image of that group.

    :raise ProfileError: naming the fault (``group[1].fault[0]``) and what its image lacks.
    """
    for gi, group in enumerate(profile.group):
        image = images.get(group.name)
        if image is None:  # not in the selected fleet
            continue
        for fi, fault in enumerate(group.fault):
            spec = GUEST_FAULTS.get(fault.type)
            if spec is None:
                continue
            if not image.agent:
                why = "it runs no soak agent (a user's own kernel and initrd)"
            elif spec.source == MODULE and FEATURE_FAULTINJECT not in image.features:
                note = next((n for n in image.notes if n.startswith("faultinject")), "")
                why = f"it has no faultinject module{f' ({note})' if note else ''}"
            else:
                continue
            raise ProfileError(source, f"group[{gi}].fault[{fi}]",
                               f"guest fault {fault.type!r} cannot be provoked in the image of group "
                               f"{group.name!r} ({image.label}): {why}")
