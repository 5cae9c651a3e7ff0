"""QEMU's command line for one VM, as a pure function of a `QemuConfig`.

Everything that decides how a guest is launched lives here, so the argv in a
failure report is the whole truth and `reproduce.sh` can replay it alone.

Channels (see facts/qemu.md for why each choice):

- ttyS0 (stdio): the kernel console, read continuously by soak; never a socket,
  so nothing the kernel prints before soak connects is lost.
- ttyS1 (isa-serial on a unix socket): the guest agent, separate from the console.
- QMP on its own unix socket; ``-action panic=pause`` with a pvpanic device, so a
  guest panic freezes the VM for diagnosis instead of rebooting it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

SNAPSHOT_NODE = "snapdisk"
"""The qcow2 block node that holds the snapshot fault's vmstate (QMP snapshot-save needs a node name)."""

BASE_KERNEL_ARGS = (
    "console=ttyS0,115200",
    "panic=-1",
    # Boots under a loaded host failed with "IO-APIC + timer doesn't work!" without it.
    "no_timer_check",
    # A deterministic clock: SIGSTOP of QEMU must look like lost time, not a hang.
    "tsc=reliable",
    "clocksource=tsc",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class QemuConfig:
    """Everything needed to launch one boot of one VM."""

    name: str
    qemu: str = "qemu-system-x86_64"
    accel: str = "tcg"
    machine: str = "pc"
    vcpus: int = 1
    max_vcpus: int | None = None
    """Above ``vcpus`` to allow vCPU hotplug."""
    memory_mib: int = 256
    kernel: Path
    initrd: Path
    kernel_args: tuple[str, ...] = ()
    """Appended after the base arguments (agent settings, fault parameters, the user's own)."""
    tsc_khz: int | None = None
    """The host TSC rate: lets a TCG guest skip a calibration that sometimes hangs."""
    qmp_socket: Path
    agent_socket: Path
    incoming: str | None = None
    """A migration URI to resume from (snapshot restore)."""
    tcg_tb_size_mib: int = 64
    """TCG translation cache; the default 1 GiB costs ~30 MiB of RSS per guest for nothing."""
    extra_args: tuple[str, ...] = field(default=())


def kernel_command_line(config: QemuConfig) -> str:
    args = list(BASE_KERNEL_ARGS)
    if config.tsc_khz:
        args.append(f"tsc_early_khz={config.tsc_khz}")
    args.extend(config.kernel_args)
    return " ".join(args)


def build_argv(config: QemuConfig) -> list[str]:
    """The argv that launches ``config``; pure, so tests and reproducers see the same."""
    smp = str(config.vcpus)
    if config.max_vcpus and config.max_vcpus > config.vcpus:
        smp += f",maxcpus={config.max_vcpus}"
    accel = config.accel
    if accel == "tcg":
        accel += f",tb-size={config.tcg_tb_size_mib}"
    argv = [
        config.qemu,
        "-name", f"{config.name},process=soak-{config.name},debug-threads=on",
        # a core dump of QEMU holds QEMU, not the guest's RAM (bounded, and the guest's data stays out)
        "-machine", f"{config.machine},dump-guest-core=off",
        "-accel", accel,
        "-smp", smp,
        "-m", str(config.memory_mib),
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-msg", "timestamp=on",
        "-kernel", str(config.kernel),
        "-initrd", str(config.initrd),
        "-append", kernel_command_line(config),
        "-serial", "stdio",
        "-chardev", f"socket,id=agent,path={config.agent_socket},server=on,wait=off",
        "-device", "isa-serial,chardev=agent",
        "-device", "pvpanic",
        "-action", "panic=pause",
        "-qmp", f"unix:{config.qmp_socket},server=on,wait=off",
    ]
    if config.incoming:
        argv += ["-incoming", config.incoming]
    argv += list(config.extra_args)
    return argv


def shell_command(argv: list[str]) -> str:
    """The argv as one line a user can paste into a shell."""
    return " ".join(shlex.quote(a) for a in argv)
