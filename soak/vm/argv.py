"""QEMU's command line for one VM, as a pure function of a `QemuConfig`.

Everything that decides how a guest is launched lives here, so the argv in a
failure report is the whole truth and `reproduce.sh` can replay it alone. What
differs between guest architectures (binary, machine, CPU, console, agent
device, panic device, kernel arguments, firmware files) comes from the table
in `soak.arch`; this module only assembles it.

Channels (see facts/qemu.md and soak/arch.py for why each choice):

- the kernel console on the machine's first UART (``-serial stdio``): read
  continuously by soak; never a socket, so nothing the kernel prints before
  soak connects is lost.
- the guest agent on a unix socket chardev, separate from the console: a
  second UART (isa-serial, ttyS1) on x86, a virtio-serial port on arm ``virt``.
- QMP on its own unix socket; ``-action panic=pause`` with a pvpanic device
  where the guest kernel has its driver, so a guest panic freezes the VM for
  diagnosis instead of rebooting it.
- UEFI: the firmware's code as read-only pflash, the VM's own copy of the
  variable store as writable pflash.
- a full OS on a disk image (``boot_disk``): the VM's own qcow2 overlay as a
  virtio-blk disk (its node is `SNAPSHOT_NODE`, so a snapshot saves the disk
  with the memory), booted by its bootloader or by ``-kernel``; a virtio-rng,
  without which a systemd guest under TCG waits minutes for entropy; and, for
  ``agent_channel = "qga"``, the virtio-serial port QEMU's guest agent looks for
  (`QGA_PORT`) instead of soak's.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from soak.arch import ARCHES, DEFAULT_ARCH, Arch
from soak.vm.devices import Device, device_argv

SNAPSHOT_NODE = "snapdisk"
"""The qcow2 block node that holds the snapshot fault's vmstate (QMP snapshot-save needs a node name)."""
QGA_PORT = "org.qemu.guest_agent.0"
"""The virtio-serial port name qemu-guest-agent opens (its udev rule starts the service)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QemuConfig:
    """Everything needed to launch one boot of one VM."""

    name: str
    arch: str = DEFAULT_ARCH
    """A key of `soak.arch.ARCHES`."""
    qemu: str | None = None
    """The QEMU binary; None: the architecture's (``qemu-system-aarch64``) from PATH."""
    accel: str = "tcg"
    machine: str | None = None
    """None: the architecture's default (``pc``, ``virt``)."""
    firmware: str | None = None
    """A firmware of the architecture (``bios``, ``uefi``, ``none``); None: its default."""
    firmware_vars: Path | None = None
    """This VM's own copy of the UEFI variable store (`soak.firmware.vars_store`)."""
    vcpus: int = 1
    max_vcpus: int | None = None
    """Above ``vcpus`` to allow vCPU hotplug."""
    memory_mib: int = 256
    kernel: Path | None = None
    """None: a disk's bootloader boots the guest (``boot_disk``)."""
    initrd: Path | None = None
    kernel_args: tuple[str, ...] = ()
    """Appended after the base arguments (agent settings, fault parameters, the user's own)."""
    tsc_khz: int | None = None
    """The host TSC rate: lets a TCG x86 guest skip a calibration that sometimes hangs."""
    qmp_socket: Path
    agent_socket: Path
    boot_disk: Path | None = None
    """The VM's own qcow2 overlay of a full OS disk image."""
    agent_channel: str = "soak"
    """Who listens on the agent socket in the guest: ``soak`` (soak's /init), ``qga`` (QEMU's guest
    agent) or ``none``."""
    incoming: str | None = None
    """A migration URI to resume from (snapshot restore)."""
    tcg_tb_size_mib: int = 64
    """TCG translation cache; the default 1 GiB costs ~30 MiB of RSS per guest for nothing."""
    extra_args: tuple[str, ...] = field(default=())
    devices: tuple[Device, ...] = ()
    """virtio disks, NIC, RNG, balloon (`soak.vm.devices`)."""

    @property
    def guest_arch(self) -> Arch:
        return ARCHES[self.arch]


def kernel_command_line(config: QemuConfig) -> str:
    arch = config.guest_arch
    args = [arch.console_arg(), "panic=-1", *arch.kernel_args]
    if arch.host_tsc and config.tsc_khz:
        args.append(f"tsc_early_khz={config.tsc_khz}")
    args.extend(config.kernel_args)
    return " ".join(args)


def firmware_args(config: QemuConfig) -> list[str]:
    """The pflash drives of a UEFI boot; nothing for ``bios`` and ``none``.

    :raise ValueError: the firmware is not one of the architecture's, or UEFI has no variable store.
    """
    fw = config.guest_arch.firmware(config.firmware)
    if fw.code is None:
        return []
    if config.firmware_vars is None:
        raise ValueError(f"{config.name}: firmware {fw.name!r} needs the VM's own copy of its variable store")
    return ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={fw.code}",
            "-drive", f"if=pflash,format=raw,unit=1,file={config.firmware_vars}"]


def build_argv(config: QemuConfig) -> list[str]:
    """The argv that launches ``config``; pure, so tests and reproducers see the same.

    :raise ValueError: a firmware the architecture does not have, or UEFI without a variable store.
    """
    arch = config.guest_arch
    smp = str(config.vcpus)
    if config.max_vcpus and config.max_vcpus > config.vcpus:
        smp += f",maxcpus={config.max_vcpus}"
    accel = config.accel
    if accel == "tcg":
        accel += f",tb-size={config.tcg_tb_size_mib}"
    machine = config.machine or arch.default_machine
    if arch.machine_options:
        machine += f",{arch.machine_options}"
    argv = [
        config.qemu or arch.qemu,
        "-name", f"{config.name},process=soak-{config.name},debug-threads=on",
        # a core dump of QEMU holds QEMU, not the guest's RAM (bounded, and the guest's data stays out)
        "-machine", f"{machine},dump-guest-core=off",
        *(["-cpu", arch.cpu] if arch.cpu else []),
        "-accel", accel,
        "-smp", smp,
        "-m", str(config.memory_mib),
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-msg", "timestamp=on",
        *firmware_args(config),
        *direct_boot_args(config),
        "-serial", "stdio",
        "-chardev", f"socket,id=agent,path={config.agent_socket},server=on,wait=off",
    ]
    for device in agent_devices(config):
        argv += ["-device", device]
    argv += disk_boot_args(config)
    if arch.panic.device:
        argv += ["-device", arch.panic.device]
    argv += [
        "-action", "panic=pause",
        "-qmp", f"unix:{config.qmp_socket},server=on,wait=off",
    ]
    argv += device_argv(config.devices)
    if config.incoming:
        argv += ["-incoming", config.incoming]
    argv += list(config.extra_args)
    return argv


def direct_boot_args(config: QemuConfig) -> list[str]:
    """QEMU loads the kernel and initrd itself; nothing when a disk's bootloader boots the guest."""
    if config.kernel is None:
        return []
    initrd = ["-initrd", str(config.initrd)] if config.initrd is not None else []
    return ["-kernel", str(config.kernel), *initrd, "-append", kernel_command_line(config)]


def agent_devices(config: QemuConfig) -> tuple[str, ...]:
    """The guest side of the agent socket: soak's channel of the architecture, or QEMU's guest agent port."""
    if config.agent_channel == "qga":
        return ("virtio-serial-pci,id=qgaserial", f"virtserialport,bus=qgaserial.0,chardev=agent,name={QGA_PORT}")
    if config.agent_channel == "none":
        return ()
    return config.guest_arch.agent.devices


def disk_boot_args(config: QemuConfig) -> list[str]:
    """A full OS's disk (the VM's overlay, first in the boot order) and its entropy source."""
    if config.boot_disk is None:
        return []
    first = "" if config.kernel else ",bootindex=0"  # -kernel's option ROM holds boot index 0 itself
    return ["-blockdev", f"driver=qcow2,node-name={SNAPSHOT_NODE},file.driver=file,file.filename={config.boot_disk}",
            "-device", f"virtio-blk-pci,drive={SNAPSHOT_NODE}{first}",
            "-object", "rng-random,id=soak-osrng,filename=/dev/urandom",
            "-device", "virtio-rng-pci,rng=soak-osrng"]


def shell_command(argv: list[str]) -> str:
    """The argv as one line a user can paste into a shell."""
    return " ".join(shlex.quote(a) for a in argv)
