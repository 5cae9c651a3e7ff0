"""Everything that differs between guest architectures, in one table.

The image builder (Debian packages, library paths, the fault module's
toolchain), the argv builder (QEMU binary, machine, console, agent channel,
panic device, kernel arguments, firmware), ``profile check`` (which faults and
firmwares apply) and ``soak doctor`` all read `ARCHES`; nothing else in soak
asks which architecture a guest is. Adding one is adding a row.

Facts behind the rows were checked under TCG with QEMU 7.2 on Debian 12 (see
facts/guests.md and tests/arch/):

- ``virt`` has one PL011 in QEMU 7.2 (a second ``-serial`` is ignored), so the
  agent talks over virtio-serial on virtio-mmio; the guest finds its port by
  name in ``/sys/class/virtio-ports``. A guest write blocks while no host
  client is connected (delivered on connect), a read returns EOF at once.
- ``virt`` answers ``inject-nmi`` with "not supported" and
  ``query-hotpluggable-cpus`` with "not enabled".
- Debian's arm64 kernels (cloud and generic) are built without
  ``CONFIG_PVPANIC``: a panic reaches soak through the console, and with
  ``panic=-1`` as a guest reset (QMP ``RESET``), not ``GUEST_PANICKED``.
- riscv64 has no Debian 12 kernel: its row takes trixie's packages through
  soak's private apt state. A riscv64 guest restored with ``snapshot-load``
  never runs again (vCPUs idle; 1 and 2 vCPUs, 5 s and 10 s after the save).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from soak.firmware import Firmware

BIOS = Firmware("bios")
"""SeaBIOS, QEMU's own x86 default."""
DIRECT = Firmware("none", boots_disks=False)
"""No firmware: QEMU places the kernel in memory and jumps to it."""
OPENSBI = Firmware("opensbi", boots_disks=False)
"""RISC-V's supervisor binary interface, bundled with QEMU (its ``virt`` default)."""
OVMF = Firmware("uefi", "ovmf", Path("/usr/share/OVMF/OVMF_CODE_4M.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.fd"))
AAVMF = Firmware("uefi", "qemu-efi-aarch64", Path("/usr/share/AAVMF/AAVMF_CODE.fd"),
                 Path("/usr/share/AAVMF/AAVMF_VARS.fd"))

AGENT_PORT = "soak.agent"
"""The virtio-serial port name the guest looks for."""


@dataclass(frozen=True, slots=True)
class AgentChannel:
    """How the agent's unix socket (chardev ``agent``) reaches the guest."""

    devices: tuple[str, ...]
    """QEMU ``-device`` values."""
    guest: str
    """Where /init finds it: ``tty:ttyS1`` or ``virtio:NAME`` (written to /etc/soak/image)."""
    modules: tuple[str, ...] = ()
    """Guest modules it needs, loaded at boot (their dependencies come along)."""


ISA_SERIAL = AgentChannel(("isa-serial,chardev=agent",), "tty:ttyS1")
VIRTIO_MMIO_SERIAL = AgentChannel(
    ("virtio-serial-device", f"virtserialport,chardev=agent,name={AGENT_PORT}"),
    f"virtio:{AGENT_PORT}", ("virtio_mmio", "virtio_console"))


VIRTIO_PCI_DEVICES: Mapping[str, tuple[str, ...]] = {
    "blk": ("virtio_pci", "virtio_blk"),
    "net": ("virtio_pci", "virtio_net"),
    "rng": ("virtio_pci", "virtio_rng"),
    "balloon": ("virtio_pci", "virtio_balloon"),
}
"""The guest modules each virtio-pci device kind needs (dependencies come along; a driver built
into the kernel is left out). Debian's cloud, 686 and arm64 kernels build them all as modules."""


@dataclass(frozen=True, slots=True)
class PanicNotice:
    """How a guest kernel panic reaches soak besides the console."""

    device: str | None
    """A QEMU device that turns a panic into ``GUEST_PANICKED`` (None: there is none)."""
    modules: tuple[str, ...] = ()
    how: str = ""
    """One line for doctor and the README."""


@dataclass(frozen=True, slots=True)
class Toolchain:
    """How soak's fault module is compiled for this architecture's kernel."""

    make_args: tuple[str, ...] = ()
    """Extra kbuild arguments, e.g. ``ARCH=arm64``."""
    cross_prefix: str = ""
    """Prefixed to the kernel's compiler (``gcc-12``) and to ``strip``; empty: the host's own."""
    unavailable: str | None = None
    """Why the module cannot be built here at all (then the image says so and faults needing it are refused)."""

    def compiler(self, kernel_compiler: str | None) -> str:
        return f"{self.cross_prefix}{kernel_compiler or 'gcc'}"

    def strip(self) -> str:
        return f"{self.cross_prefix}strip"

    def install_hint(self, kernel_compiler: str | None) -> str:
        cc = kernel_compiler or "gcc"
        if self.cross_prefix:
            return f"apt-get install {cc}-{self.cross_prefix.rstrip('-')} make"
        return f"apt-get install {cc} make binutils libelf1"


@dataclass(frozen=True, slots=True)
class Arch:
    """One guest architecture: everything soak needs to build, boot and watch it."""

    name: str
    """As a profile says it (``arch = "aarch64"``)."""
    debian: str
    """Debian's architecture name (``arm64``)."""
    triplet: str
    """The multiarch tuple: libraries live in ``lib/TRIPLET`` and ``usr/lib/TRIPLET``."""
    kernel_package: str
    """The metapackage naming the current kernel."""
    kernel_image: str = field(default="boot/vmlinuz-{release}", kw_only=True)
    """Where the kernel package keeps the bootable image."""
    qemu: str
    qemu_package: str
    machines: tuple[str, ...]
    """Machines soak supports; the first is the default."""
    firmwares: tuple[Firmware, ...]
    """The first is the default."""
    console: str
    """The kernel console (the ``-serial stdio`` UART as the guest names it)."""
    agent: AgentChannel
    panic: PanicNotice
    toolchain: Toolchain
    cpu: str | None = None
    machine_options: str = ""
    """Appended to ``-machine NAME,``."""
    console_args: tuple[str, ...] = ()
    """After ``console=``: e.g. the baud rate."""
    kernel_args: tuple[str, ...] = ()
    """Base kernel arguments specific to the architecture."""
    host_tsc: bool = False
    """The guest is given the host's TSC rate (``tsc_early_khz``) to skip a calibration that hangs under TCG."""
    kvm_hosts: tuple[str, ...] = ()
    """Host machines (``platform.machine()``) whose KVM runs this guest; elsewhere it is always TCG."""
    suite: str | None = None
    """The Debian suite its packages come from; None: the host's own release."""
    unsupported_faults: Mapping[str, str] = field(default_factory=dict)
    """Fault type -> why it does not apply to this architecture."""
    fault_console: Mapping[str, str] = field(default_factory=dict)
    """Guest fault -> the console line this kernel prints, where it words it unlike x86_64."""
    device_modules: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: VIRTIO_PCI_DEVICES)
    """Device kind (``blk``, ``net``, ``rng``, ``balloon``) -> the guest modules its driver needs."""

    @property
    def default_machine(self) -> str:
        return self.machines[0]

    @property
    def default_firmware(self) -> Firmware:
        return self.firmwares[0]

    def firmware(self, name: str | None) -> Firmware:
        """The firmware called ``name`` (None: the default).

        :raise ValueError: not a firmware of this architecture (the message lists them).
        """
        if name is None:
            return self.default_firmware
        for fw in self.firmwares:
            if fw.name == name:
                return fw
        names = " or ".join(fw.name for fw in self.firmwares)
        raise ValueError(f"firmware {name!r} does not boot {self.name} guests here (choose {names})")

    @property
    def lib_dirs(self) -> tuple[str, ...]:
        """Where a shared library may sit inside a Debian package of this architecture."""
        return (f"lib/{self.triplet}", f"usr/lib/{self.triplet}", "lib64", "lib", "usr/lib", "usr/lib64")

    def console_arg(self) -> str:
        return "console=" + ",".join((self.console, *self.console_args))


_NOT_X86_64_GPF = "a general protection fault on a non-canonical address is an x86_64 fault"
_NO_VIRT_NMI = "QEMU 7.2's virt machine cannot inject an NMI (inject-nmi: not supported)"
_NO_VIRT_HOTPLUG = "QEMU 7.2's virt machine has no vCPU hotplug (query-hotpluggable-cpus: not enabled)"


ARCHES: dict[str, Arch] = {a.name: a for a in (
    Arch(
        name="x86_64", debian="amd64", triplet="x86_64-linux-gnu", kernel_package="linux-image-cloud-amd64",
        qemu="qemu-system-x86_64", qemu_package="qemu-system-x86", machines=("pc", "q35"),
        firmwares=(BIOS, OVMF), console="ttyS0", console_args=("115200",),
        # Boots under a loaded host failed with "IO-APIC + timer doesn't work!" without no_timer_check;
        # the tsc set makes a SIGSTOP of QEMU look like lost time, not a hang (facts/qemu.md).
        kernel_args=("no_timer_check", "tsc=reliable", "clocksource=tsc"), host_tsc=True,
        agent=ISA_SERIAL,
        panic=PanicNotice("pvpanic", ("pvpanic", "pvpanic_mmio", "pvpanic_pci"),
                          "pvpanic: GUEST_PANICKED, the VM pauses for diagnosis"),
        toolchain=Toolchain(), kvm_hosts=("x86_64",),
    ),
    Arch(
        name="i386", debian="i386", triplet="i386-linux-gnu", kernel_package="linux-image-686",
        qemu="qemu-system-i386", qemu_package="qemu-system-x86", machines=("pc", "q35"),
        firmwares=(BIOS,), console="ttyS0", console_args=("115200",),
        kernel_args=("no_timer_check", "tsc=reliable", "clocksource=tsc"), host_tsc=True,
        agent=ISA_SERIAL,
        panic=PanicNotice("pvpanic", ("pvpanic", "pvpanic_mmio", "pvpanic_pci"),
                          "pvpanic: GUEST_PANICKED, the VM pauses for diagnosis"),
        # The host's gcc builds 32-bit kernel code (the kernel's own -m32); kbuild's tools are the host's.
        toolchain=Toolchain(), kvm_hosts=("x86_64",),
        unsupported_faults={
            "gpf": _NOT_X86_64_GPF,
            "stackoverflow": "Debian's 686 kernel has no VMAP_STACK: an overflow corrupts memory "
                             "instead of being reported",
        },
    ),
    Arch(
        name="aarch64", debian="arm64", triplet="aarch64-linux-gnu", kernel_package="linux-image-cloud-arm64",
        qemu="qemu-system-aarch64", qemu_package="qemu-system-arm", machines=("virt",),
        # GICv3: the default GICv2 stops at 8 vCPUs.
        machine_options="gic-version=3", cpu="cortex-a57",
        firmwares=(DIRECT, AAVMF), console="ttyAMA0",
        agent=VIRTIO_MMIO_SERIAL,
        panic=PanicNotice(None, how="console, then a guest reset: Debian's arm64 kernels have no pvpanic driver"),
        toolchain=Toolchain(("ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"), "aarch64-linux-gnu-"),
        kvm_hosts=("aarch64",),
        unsupported_faults={
            "nmi": _NO_VIRT_NMI, "vcpu-hotplug": _NO_VIRT_HOTPLUG, "gpf": _NOT_X86_64_GPF,
            "rcustall": "Debian's arm64 cloud kernel has no preemptible RCU: a reader that yields ends "
                        "its grace period, so nothing stalls",
            "doublefree": "Debian's arm64 kernel reports the double free, then oopses in the slab "
                          "allocator: the guest does not survive it as the fault promises",
        },
        fault_console={
            "oops": r"Unable to handle kernel NULL pointer dereference at virtual address 0+\b",
            "stackoverflow": r"Insufficient stack space to handle exception!",
            # no NMI watchdog under TCG, and TREE_RCU's flavour is rcu_sched
            "hardlockup": r"(NMI watchdog: Watchdog detected hard LOCKUP|rcu: INFO: rcu_sched detected stalls)",
        },
    ),
    Arch(
        # Debian 12 has no riscv64 kernel; trixie's (6.12) and its busybox and stress-ng boot here.
        name="riscv64", debian="riscv64", triplet="riscv64-linux-gnu", suite="trixie",
        kernel_package="linux-image-riscv64", kernel_image="boot/vmlinux-{release}",
        qemu="qemu-system-riscv64", qemu_package="qemu-system-misc", machines=("virt",),
        firmwares=(OPENSBI,), console="ttyS0", console_args=("115200",),
        agent=VIRTIO_MMIO_SERIAL,
        panic=PanicNotice(None, how="console, then a guest reset: trixie's riscv64 kernel has no pvpanic driver"),
        toolchain=Toolchain(unavailable="trixie's riscv64 kernel is built with gcc-14 and Debian 12 has no "
                                        "riscv64 cross gcc-14 (gcc-14-riscv64-linux-gnu)"),
        kvm_hosts=("riscv64",),
        unsupported_faults={
            "nmi": _NO_VIRT_NMI, "vcpu-hotplug": _NO_VIRT_HOTPLUG, "gpf": _NOT_X86_64_GPF,
            "snapshot": "QEMU 7.2 hangs a riscv64 guest restored by snapshot-load (vCPUs idle, 4 of 4 "
                        "restores here; aarch64 and x86 survive the same fault)",
        },
    ),
)}

DEFAULT_ARCH = "x86_64"


def arch(name: str) -> Arch:
    """:raise ValueError: an unknown architecture (the message lists the known ones)."""
    try:
        return ARCHES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHES)}") from None
