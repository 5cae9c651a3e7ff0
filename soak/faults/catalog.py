"""Every fault soak can inject, and what each one is expected to do to a guest.

Host faults act on QEMU from outside (QMP or signals); guest faults ask the
agent to provoke a real kernel failure (``soak.image.faults``). Each fault
declares whether a guest must *survive* it (a failure after it is a finding)
or is expected to *fail* (the failure is its intended outcome, recorded as
expected), and which failure kinds count as that outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from soak.image.faults import FAULTS as GUEST_FAULTS
from soak.kinds import Kind

SURVIVE, FAIL = "survive", "fail"


@dataclass(frozen=True, slots=True)
class FaultType:
    name: str
    expect: str
    """`SURVIVE` or `FAIL` by default; a profile may override it."""
    outcome: frozenset[Kind] = frozenset()
    """Failure kinds that are this fault's intended outcome when it is expected to fail."""
    windowed: bool = False
    """Lasts ``duration`` seconds (pause, SIGSTOP); the guest cannot heartbeat meanwhile."""
    guest: bool = False
    """Provoked inside the guest through the agent."""
    reboots: bool = False
    """The guest reboots: a new HELLO is the expected outcome, not a reset failure."""
    guest_runs: bool = False
    """The guest keeps running through the window (a balloon, a link down): it is watched as ever,
    so a hang inside the window is found."""
    may_pause: bool = False
    """QEMU may pause the VM in the window (a full disk under ``werror=enospc``): the watch is held
    whatever the expected outcome, and the injector continues the VM when the window ends."""
    needs: str = ""
    """A QEMU setup the fault requires: ``hotplug`` (spare vCPU slots), ``snapshot`` (a qcow2 node),
    ``migration`` (a second QEMU for the same VM), ``balloon``, ``disk``, ``tmpfs-disk`` (a disk
    on the VM's own tmpfs), ``network``."""
    summary: str = ""


HOST_FAULTS: dict[str, FaultType] = {
    f.name: f
    for f in (
        FaultType("pause", SURVIVE, windowed=True, summary="QMP stop, then cont after `duration`"),
        FaultType("sigstop", SURVIVE, frozenset({Kind.QEMU_HANG}), windowed=True,
                  summary="SIGSTOP the QEMU process, SIGCONT after `duration`"),
        FaultType("reset", SURVIVE, reboots=True, summary="QMP system_reset: the guest reboots"),
        FaultType("nmi", SURVIVE, summary="QMP inject-nmi to every vCPU"),
        FaultType("vcpu-hotplug", SURVIVE, needs="hotplug",
                  summary="device_add a vCPU, online it in the guest, device_del it after `duration`"),
        FaultType("snapshot", SURVIVE, needs="snapshot",
                  summary="snapshot-save to a qcow2 node, snapshot-load it after `duration`"),
        FaultType("migrate", SURVIVE, frozenset({Kind.MIGRATION_FAILURE}), needs="migration",
                  summary="live-migrate the VM to a new QEMU process on this host (`mode`: live or paused)"),
        FaultType("balloon", SURVIVE, windowed=True, guest_runs=True, needs="balloon",
                  summary="inflate the virtio balloon to `target` of the guest's memory, deflate after `duration`"),
        FaultType("disk-error", FAIL, frozenset({Kind.IO_ERROR}), windowed=True, guest_runs=True, needs="disk",
                  summary="the VM's disks fail every read and write (blkdebug, EIO) for `duration`"),
        FaultType("disk-full", FAIL, frozenset({Kind.IO_ERROR}), windowed=True, may_pause=True,
                  needs="tmpfs-disk",
                  summary="fill the tmpfs under the VM's disk images for `duration` (the host's disk is full)"),
        FaultType("disk-corrupt", FAIL, frozenset({Kind.WORKLOAD_FAILURE}), windowed=True, guest_runs=True,
                  needs="disk",
                  summary="write random bytes into the VM's disks from the host for `duration` (silent corruption)"),
        FaultType("link-down", SURVIVE, windowed=True, guest_runs=True, needs="network",
                  summary="QMP set_link off on the VM's NIC, on again after `duration`"),
        FaultType("kill", FAIL, frozenset({Kind.QEMU_CRASH}), summary="SIGKILL the QEMU process"),
        FaultType("segv", FAIL, frozenset({Kind.QEMU_CRASH}), summary="SIGSEGV the QEMU process"),
    )
}


def _guest_fault_types() -> dict[str, FaultType]:
    types: dict[str, FaultType] = {}
    for spec in GUEST_FAULTS.values():
        outcome = {spec.kind}
        if spec.kind in (Kind.SOFT_LOCKUP, Kind.HARD_LOCKUP, Kind.RCU_STALL):
            # a spinning CPU shows up as whichever of these fires first, and stops heartbeats
            outcome |= {Kind.SOFT_LOCKUP, Kind.HARD_LOCKUP, Kind.RCU_STALL, Kind.GUEST_HANG}
        if spec.fatal:
            outcome |= {Kind.KERNEL_PANIC, Kind.KERNEL_OOPS}
        types[spec.name] = FaultType(spec.name, FAIL, frozenset(outcome), guest=True,
                                     summary=f"guest: provoke {spec.kind.value} ({spec.source})")
    return types


GUEST_FAULT_TYPES = {
    **_guest_fault_types(),
    "corrupt": FaultType("corrupt", FAIL, frozenset({Kind.WORKLOAD_FAILURE}), guest=True,
                         summary="guest: corrupt the stress-ng vm stressors' memory (needs a vm load)"),
}
FAULT_TYPES: dict[str, FaultType] = {**HOST_FAULTS, **GUEST_FAULT_TYPES}


def fault_type(name: str) -> FaultType:
    """:raise ValueError: unknown fault (the message lists them all)."""
    try:
        return FAULT_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULT_TYPES))}") from None
