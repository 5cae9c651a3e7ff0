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
from soak.devices.plan import mac_address, net_kernel_arg
from soak.image.faults import FAULTS as GUEST_FAULTS
from soak.image.faults import fault_kernel_args
from soak.profile import VmSpec
from soak.vm.argv import SNAPSHOT_NODE, QemuConfig
from soak.vm.devices import Balloon, Device, Disk, Nic, Rng, guest_device_names


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
    disks: tuple[Path, ...] = ()
    """The image of each of the VM's disks (shared by every machine of the VM, by path)."""
    net_socket: Path | None = None
    """This VM's end of a ``pair`` link (a unix datagram socket) ..."""
    net_peer_socket: Path | None = None
    """... and its peer's."""
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
    devices = vm_devices(spec, files)
    agent_args: tuple[str, ...] = ()
    if image.agent_kind == "soak":
        agent_args = (f"soak_hb={heartbeat_interval:g}", f"soak_vm={spec.name}", f"soak_boot={boot}",
                      *device_kernel_args(spec, devices))
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
        devices=devices,
    )


def vm_devices(spec: VmSpec, files: BootFiles) -> tuple[Device, ...]:
    """The virtio devices of ``spec``: its disks (images named by ``files``), NIC, RNG, balloon.

    :raise ValueError: ``files`` names fewer disk images than the VM has disks (a soak bug).
    """
    if len(files.disks) != len(spec.disks):
        raise ValueError(f"{spec.name}: {len(spec.disks)} disks but {len(files.disks)} images")
    devices: list[Device] = [Disk(i, path, d.format, d.cache, d.on_error)
                             for i, (d, path) in enumerate(zip(spec.disks, files.disks, strict=True))]
    if spec.network is not None:
        pair = spec.network == "pair" and files.net_socket is not None
        devices.append(Nic(mac_address(spec.index), user=not pair, local_socket=files.net_socket if pair else None,
                           remote_socket=files.net_peer_socket if pair else None))
    if spec.rng:
        devices.append(Rng())
    if spec.needs_balloon:
        devices.append(Balloon())
    return tuple(devices)


def device_kernel_args(spec: VmSpec, devices: tuple[Device, ...]) -> tuple[str, ...]:
    """What the agent needs to set its devices up: drivers to load, the network's addresses."""
    names = guest_device_names(devices)
    args = [f"soak_dev={','.join(names)}"] if names else []
    if spec.network is not None:
        args.append(net_kernel_arg(spec.index_in_group, spec.net_peer_index if spec.network == "pair" else None))
    return tuple(args)
