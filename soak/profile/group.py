"""A ``[[group]]`` of VMs: its shape, load, faults, devices, and what must hold across them."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from soak.arch import ARCHES, DEFAULT_ARCH
from soak.devices.settings import MAX_DISKS, DiskSettings, Network
from soak.faults.catalog import fault_type
from soak.faults.settings import FaultSettings
from soak.image.faults import FAULTS as GUEST_FAULT_SPECS
from soak.image.faults import MODULE
from soak.kinds import Kind
from soak.load.settings import LoadSettings
from soak.profile.fields import (
    MAX_MEMORY_MIB,
    MIN_MEMORY_MIB,
    NAME_PATTERN,
    IntRange,
    Strict,
    checked_name,
    int_choices,
    quoted,
    size_choices,
)
from soak.profile.settings import ImageSettings
from soak.units import Seconds, between


def _vms_in_group(faults: list[FaultSettings], count: int) -> None:
    """A fault's ``vms`` must name VMs of its group: an index past the end would be ignored."""
    for i, fault in enumerate(faults):
        beyond = sorted(v for v in fault.vms or () if v >= count)
        if beyond:
            have = "VM 0" if count == 1 else f"VMs 0-{count - 1}"
            raise ValueError(f"fault[{i}].vms names VM {beyond[0]}, but the group has {count}"
                             f" ({have}); `vms` are indexes within the group")


class GroupSettings(Strict):
    """A group of VMs of the same kind; vCPUs and memory may vary inside it."""

    name: str
    count: int = Field(default=1, ge=1, le=1000)
    vcpus: Annotated[int | list[int] | IntRange, BeforeValidator(int_choices)] = 1
    """One count, a list cycled over the group's VMs, or a range drawn with the run's seed."""
    memory: Annotated[int | list[int], BeforeValidator(size_choices)] = 256
    arch: str = DEFAULT_ARCH
    """The guest architecture: x86_64, i386, aarch64 or riscv64 (`soak.arch`)."""
    machine: str | None = None
    """A QEMU machine of the architecture (x86: pc, q35; aarch64, riscv64: virt); None: its first."""
    firmware: str | None = None
    """bios or uefi on x86_64, none or uefi on aarch64 (`soak.arch`); None: the architecture's first."""
    max_vcpus: int | None = Field(default=None, ge=1, le=255)
    """vCPU slots for hotplug; defaults to one spare slot when a vcpu-hotplug fault is declared."""
    image: ImageSettings = ImageSettings()
    load: LoadSettings | None = None
    """stress-ng inside the guests; absent: they idle."""
    disks: list[DiskSettings] = Field(default_factory=list, max_length=MAX_DISKS)
    """virtio-blk disks of each VM, each with a verified I/O load (`soak.devices.settings`)."""
    network: Network | None = None
    """A virtio-net NIC with verified traffic: ``user`` (QEMU's user-mode network) or ``pair``."""
    rng: bool = False
    """A virtio-rng device; the guest checks that it gives entropy."""
    fault: list[FaultSettings] = Field(default_factory=list)
    expect: list[str] = Field(default_factory=list)
    """Failure kinds each VM of the group must produce (``a|b``: either); a self-test declares them."""
    tolerate: list[str] = Field(default_factory=list)
    """Failure kinds that may happen without failing the run (side effects of an expected one)."""
    expect_within: Annotated[Seconds, between(1.0)] = 120.0
    """Deadline for ``expect``, from the VM's first fault (or its first ready, without faults)."""

    @field_validator("name")
    @classmethod
    def _group_name(cls, value: str) -> str:
        return checked_name(value, NAME_PATTERN,
                     "1-32 lowercase letters, digits, '-' or '_', starting with a letter or digit")

    @field_validator("fault")
    @classmethod
    def _fault_vms_exist(cls, value: list[FaultSettings], info: ValidationInfo) -> list[FaultSettings]:
        if isinstance(info.data.get("count"), int):  # else count itself is reported
            _vms_in_group(value, info.data["count"])
        return value

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str) -> str:
        if value not in ARCHES:
            raise ValueError(f"unknown architecture {value!r}; known: {', '.join(ARCHES)}")
        return value

    @model_validator(mode="after")
    def _fits_the_arch(self) -> GroupSettings:
        """Machine, firmware and faults must exist for the group's architecture (`soak.arch`)."""
        arch = ARCHES[self.arch]
        if self.machine is not None and self.machine not in arch.machines:
            raise ValueError(f"machine {self.machine!r} is not a machine of {arch.name} "
                             f"(choose {' or '.join(arch.machines)})")
        arch.firmware(self.firmware)  # ValueError names the choices
        for fault in self.fault:
            if why := arch.unsupported_faults.get(fault.type):
                raise ValueError(f"group {self.name}: fault {fault.type!r} does not apply to {arch.name}: {why}")
        return self

    @model_validator(mode="after")
    def _faults_have_their_devices(self) -> GroupSettings:
        """A device fault needs its device in the group (`FaultType.needs`)."""
        for fault in self.fault:
            needs = fault_type(fault.type).needs
            if needs == "disk" and not self.disks:
                raise ValueError(f"group {self.name}: fault {fault.type!r} needs a disk (add `disks = [...]`)")
            if needs == "tmpfs-disk" and not any(d.backing == "tmpfs" for d in self.disks):
                raise ValueError(f"group {self.name}: fault {fault.type!r} fills the VM's own tmpfs: give it a "
                                 "disk with backing = 'tmpfs'")
            if needs == "network" and self.network is None:
                raise ValueError(f"group {self.name}: fault {fault.type!r} needs a network (network = 'user')")
            if needs == "migration" and self.network == "pair":
                raise ValueError(f"group {self.name}: fault 'migrate' does not apply to network = 'pair': "
                                 "both QEMUs of a migration would need the link's one datagram socket")
        return self

    @model_validator(mode="after")
    def _fits_the_disk(self) -> GroupSettings:
        """A disk image's agent must be able to do what the group asks of it, its firmware to boot it."""
        image, arch = self.image, ARCHES[self.arch]
        agent = image.disk_agent
        if agent is None:
            return self
        if image.soak_disk and arch.name != "x86_64":
            raise ValueError(f"group {self.name}: {image.disk} is built for x86_64 guests, not {arch.name}")
        firmware = arch.firmware(self.firmware)
        if image.kernel is None and not image.soak_disk and not firmware.boots_disks:
            raise ValueError(f"group {self.name}: a disk without kernel and initrd boots through its bootloader, "
                             f"which firmware {firmware.name!r} cannot load (choose another firmware of {arch.name})")
        if self.disks or self.network is not None or self.rng:
            raise ValueError(f"group {self.name}: disks, network and rng are loaded and checked by soak's own agent; "
                             f"a disk image ({image.disk}) runs QEMU's guest agent, so give these devices to a "
                             "group on soak's default image")
        if agent == "none" and self.load is not None:
            raise ValueError(f"group {self.name}: load needs an agent in the guest, and the disk image has none "
                             "(set image.agent = 'qga' if it runs qemu-guest-agent)")
        for fault in self.fault:
            if not fault_type(fault.type).guest:
                continue
            if agent == "none":
                raise ValueError(f"group {self.name}: guest fault {fault.type!r} needs an agent in the guest, and the "
                                 "disk image has none (set image.agent = 'qga' if it runs qemu-guest-agent)")
            spec = GUEST_FAULT_SPECS.get(fault.type)
            if spec is not None and spec.source == MODULE:
                raise ValueError(f"group {self.name}: fault {fault.type!r} needs soak's agent and its fault module; "
                                 f"a disk image runs QEMU's guest agent, which can provoke "
                                 f"{', '.join(n for n, s in GUEST_FAULT_SPECS.items() if s.source != MODULE)}"
                                 " and corrupt")
        return self

    @field_validator("expect", "tolerate")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        known = {k.value for k in Kind}
        for entry in value:
            for kind in entry.split("|"):
                if kind not in known:
                    raise ValueError(f"unknown failure kind {kind!r}; known: {', '.join(sorted(known))}")
        return value

    @field_validator("vcpus")
    @classmethod
    def _vcpus_in_range(cls, value: int | list[int] | IntRange) -> int | list[int] | IntRange:
        values = value if isinstance(value, list) else [value] if isinstance(value, int) else []
        if isinstance(value, list) and not value:
            raise ValueError("the list of vCPU counts is empty")
        for v in values:
            if not 1 <= v <= 255:
                raise ValueError(f"{v} vCPUs: must be between 1 and 255")
        if isinstance(value, IntRange) and value.high > 255:
            raise ValueError(f"{value.high} vCPUs: must be between 1 and 255")
        return value

    @field_validator("memory")
    @classmethod
    def _memory_enough(cls, value: int | list[int]) -> int | list[int]:
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ValueError("the list of memory sizes is empty")
        for v in values:
            if v < MIN_MEMORY_MIB:
                raise ValueError(f"{v} MiB is too little: guests need at least {MIN_MEMORY_MIB} MiB")
            if v > MAX_MEMORY_MIB:
                raise ValueError(f"{quoted(v)} MiB is more than any guest can use"
                                 f" (at most {MAX_MEMORY_MIB // (1024 * 1024)} TiB)")
        return value


