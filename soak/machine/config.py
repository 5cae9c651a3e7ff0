"""The QEMU configuration of one boot: a pure function of the VM, its image and the host.

Everything a boot's command line depends on is an argument here, so the same
VM spec, image and boot number always give the same `QemuConfig` (and, through
`soak.vm.argv.build_argv`, the same argv): tests check it without QEMU and the
evidence's argv is the whole truth. Files (sockets, disks) are named by the
caller and created by the launcher, never here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from soak.accel import accel_for, qemu_for
from soak.arch import ARCHES
from soak.image.faults import FAULTS as GUEST_FAULTS
from soak.image.faults import fault_kernel_args
from soak.profile import VmSpec
from soak.vm.argv import SNAPSHOT_NODE, QemuConfig


@dataclass(frozen=True, slots=True)
class BootImage:
    """What a group boots, resolved: soak's default image, the user's kernel and initrd, or a disk image."""

    kernel: Path | None
    """None: the disk's bootloader boots it."""
    initrd: Path | None
    kernel_args: tuple[str, ...]
    label: str
    agent: bool
    """An agent soak talks to runs in the guest: heartbeats, commands, guest faults (``agent_kind``)."""
    features: frozenset[str] = frozenset()
    """What the guest can do (soak.image.model.FEATURE_*): checked against the profile's faults."""
    notes: tuple[str, ...] = ()
    """Why a feature is missing (e.g. no compiler for the fault module)."""
    disk: Path | None = None
    """A full OS disk image (`soak.image.disk`): each boot of each VM gets an overlay of it."""
    disk_format: str = "qcow2"
    agent_kind: str = "soak"
    """``soak`` (soak's /init), ``qga`` (QEMU's guest agent, `soak.vm.qga`) or ``none``."""


@dataclass(frozen=True, slots=True)
class Host:
    """What the host decided for every guest of the run."""

    qemu: str
    """The x86_64 QEMU binary; other architectures' are found beside it (`soak.accel.qemu_for`)."""
    accel: str
    tsc_khz: int | None
    """The host's TSC rate, given to guests so they skip a calibration that can hang under TCG."""


@dataclass(frozen=True, slots=True)
class BootFiles:
    """Host-side files of one boot; each boot of a VM (and each side of a migration) has its own."""

    qmp_socket: Path
    agent_socket: Path
    snapshot_disk: Path | None = None
    """A qcow2 for the snapshot fault's vmstate, when the VM has one."""
    migration_socket: Path | None = None
    """Where a migration destination listens (``-incoming defer``, then migrate-incoming)."""
    firmware_vars: Path | None = None
    """The VM's own UEFI variable store (`soak.firmware.vars_store`), when it boots through UEFI."""
    boot_disk: Path | None = None
    """The VM's overlay of its image's disk (a migration's two sides share it by path)."""


def host_tsc_khz() -> int | None:
    """The host's TSC rate in kHz (from ``cpu MHz``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return int(float(line.split(":")[1]) * 1000)
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_config(spec: VmSpec, image: BootImage, host: Host, files: BootFiles, *, boot: int,
                   heartbeat_interval: float) -> QemuConfig:
    """The QEMU configuration of boot number ``boot`` of ``spec``."""
    agent_args: tuple[str, ...] = ()
    if image.agent_kind == "soak":
        agent_args = (f"soak_hb={heartbeat_interval:g}", f"soak_vm={spec.name}", f"soak_boot={boot}")
    guest_faults = [f.type for f in spec.faults if f.type in GUEST_FAULTS]
    extra: tuple[str, ...] = ()
    if files.snapshot_disk is not None:
        extra = ("-blockdev", f"driver=qcow2,node-name={SNAPSHOT_NODE},file.driver=file,"
                              f"file.filename={files.snapshot_disk}")
    arch = ARCHES[spec.arch]
    return QemuConfig(
        name=spec.name,
        arch=arch.name,
        qemu=qemu_for(arch, host.qemu),
        accel=accel_for(host.accel, arch),
        machine=spec.machine,
        firmware=spec.firmware,
        firmware_vars=files.firmware_vars,
        vcpus=spec.vcpus,
        max_vcpus=spec.max_vcpus,
        memory_mib=spec.memory_mib,
        kernel=image.kernel,
        initrd=image.initrd,
        kernel_args=agent_args + tuple(fault_kernel_args(guest_faults)) + image.kernel_args,
        tsc_khz=host.tsc_khz,
        qmp_socket=files.qmp_socket,
        agent_socket=files.agent_socket,
        boot_disk=files.boot_disk,
        agent_channel=image.agent_kind,
        incoming="defer" if files.migration_socket is not None else None,
        extra_args=extra,
    )
