"""Profiles: what a soak run is made of, read from TOML and validated with pydantic.

A profile names the run, its duration and seed, the watch thresholds, the
restart policy, and one or more VM groups. Every field has a default that makes
sense on a laptop; unknown fields are errors (a typo must never be ignored).
A bad profile becomes one ProfileError naming the file, the field and the problem.

Example::

    [run]
    name = "smoke"
    duration = "2m"
    seed = 7

    [[group]]
    name = "mixed"
    count = 4
    vcpus = [1, 2, 4, 8]
    memory = ["256M", "320M"]
"""

from __future__ import annotations

import random
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from soak.arch import ARCHES, DEFAULT_ARCH
from soak.devices.plan import pair_peer
from soak.devices.settings import MAX_DISKS, DiskSettings, Network
from soak.errors import ProfileError
from soak.faults.catalog import fault_type
from soak.faults.settings import FaultSettings
from soak.image.faults import FAULTS as GUEST_FAULT_SPECS
from soak.image.faults import MODULE
from soak.kinds import Kind
from soak.load.settings import LoadSettings
from soak.units import Bytes, Seconds, between, format_bytes, parse_size_bytes, parse_size_mib

MIN_MEMORY_MIB = 96
"""The default guest kernel needs 72 MiB to boot; leave it room for its agent."""
MAX_MEMORY_MIB = 64 * 1024 * 1024
"""64 TiB: more than an x86-64 guest kernel with 4-level paging can use; a bigger size is a typo."""
MAX_PROFILE_BYTES = 1 << 20
"""A profile is a page of settings; a bigger file is a mistake (or a log) passed by accident."""
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
"""Group names: they become VM names, file names and metric labels."""
RUN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Run names: part of the default run directory's name, so no ``/``, no leading dot."""
DAY_S = 86400.0
MAX_SEED = 2**63 - 1

Timeout = Annotated[Seconds, between(0.1, DAY_S)]
"""A watch timeout or interval: from 100 ms (tighter misses the event loop's own jitter) to a day."""


MIN_CONSOLE_LIMIT = 64 * 1024
"""Below this a console limit cannot hold one boot log."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _printable(value: str) -> str:
    """Text that goes into a command line or a file: no control characters, no NUL."""
    if any(not ch.isprintable() for ch in value):
        raise ValueError(f"{_quoted(value)} contains control characters")
    return value


def _quoted(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _name(value: str, pattern: str, rule: str) -> str:
    if not re.fullmatch(pattern, value):
        raise ValueError(f"{_quoted(value)} is not a name: {rule}")
    return value
def _disk_floor(value: Any) -> Any:
    """Accept a size (``"1G"``) or a share of the disk (``"5%"``)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            percent = float(value.strip()[:-1])
        except ValueError:
            raise ValueError(f"{value!r} is not a share such as '5%'") from None
        if not 0 <= percent < 100:
            raise ValueError(f"{value!r}: a share of the disk must be from 0% to under 100%")
        return {"share": percent / 100}
    if isinstance(value, str | int) and not isinstance(value, bool):
        return {"size": parse_size_bytes(value)}
    if isinstance(value, DiskFloor):
        return value
    raise ValueError(f"expected a size such as '1G' or a share of the disk such as '5%', got {type(value).__name__}")


class DiskFloor(_Strict):
    """Free space the run leaves on its disk: a size, or a share of the disk."""

    size: int = Field(default=0, ge=0)
    share: float = Field(default=0.0, ge=0.0, lt=1.0)

    def of(self, total_bytes: int) -> int:
        """The floor in bytes on a disk of ``total_bytes``."""
        return max(self.size, int(self.share * total_bytes))

    def __str__(self) -> str:
        return f"{self.share:.0%}" if self.share else format_bytes(self.size)


class RunSettings(_Strict):
    name: str = "soak"
    duration: Annotated[Seconds, between(1.0)] = 120.0
    seed: int = Field(default=1, ge=0, le=MAX_SEED)
    accel: Literal["auto", "tcg", "kvm"] = "auto"
    qemu: str = Field(default="qemu-system-x86_64", min_length=1, max_length=4096)
    max_parallel_boots: int = Field(default=2, ge=1, le=64)
    """Guests booting at once: a boot storm on a small host makes boots time out."""
    metrics_listen: str | None = Field(default="127.0.0.1:9464", max_length=300)
    """``host:port`` for /metrics; port 0 picks a free port; empty string disables."""
    qemu_cores: Literal["backtrace", "keep", "off"] = "backtrace"
    """A crashed QEMU's core dump: ``backtrace`` (gdb's backtrace of all threads into the
    evidence, the core deleted), ``keep`` (the core too, at most two per VM in
    ``vms/VM/cores/``), ``off`` (no core dump)."""
    console_limit: Bytes = Field(default=256 << 20, ge=MIN_CONSOLE_LIMIT, le=1 << 40)
    """Console bytes kept per VM over all its boots: each boot's head and the newest output."""
    evidence_per_signature: int = Field(default=3, ge=1, le=1000)
    """Evidence folders kept per failure signature (kind + title) per VM; repeats are counted only."""
    memory_overcommit: float = Field(default=1.0, gt=0.0, le=64.0)
    """The fleet's memory (guests + QEMU) may be this multiple of the host's memory."""
    min_free_disk: Annotated[DiskFloor, BeforeValidator(_disk_floor)] = DiskFloor(size=1 << 30)
    """The run stops cleanly when its disk has less free space (``"1G"``, or ``"5%"`` of the disk)."""

    @field_validator("name")
    @classmethod
    def _run_name(cls, value: str) -> str:
        return _name(value, RUN_NAME_PATTERN,
                     "1-64 letters, digits, '.', '-' or '_', starting with a letter or digit")

    @field_validator("qemu")
    @classmethod
    def _qemu_printable(cls, value: str) -> str:
        return _printable(value)

    @field_validator("metrics_listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if not value:
            return value
        host, sep, port = value.strip().rpartition(":")
        if not sep or not host or not re.fullmatch(r"\d{1,5}", port, re.ASCII) or int(port) > 65535 \
                or any(ch.isspace() or not ch.isprintable() for ch in host):
            raise ValueError(f"{_quoted(value)} is not host:port (e.g. 127.0.0.1:9464; port 0 = any free port)")
        return value


class WatchSettings(_Strict):
    boot_timeout: Annotated[Seconds, between(1.0, DAY_S)] = 120.0
    heartbeat_interval: Annotated[Seconds, between(0.1, 3600.0)] = 1.0
    hang_timeout: Timeout = 20.0
    """No heartbeat for this long means the guest (or QEMU) hangs."""
    console_grace: Annotated[Seconds, between(0.0, 3600.0)] = 10.0
    """After a crash line, how long the rest of the report may take to arrive."""
    qmp_timeout: Annotated[Seconds, between(0.1, 3600.0)] = 5.0
    shutdown_timeout: Annotated[Seconds, between(0.1, 3600.0)] = 15.0
    """Per step of the stop ladder (agent poweroff, QMP quit) before escalating."""
    sample_interval: Annotated[Seconds, between(0.1, 3600.0)] = 5.0
    """How often each QEMU process is sampled (CPU, RSS, threads, fds)."""

    @model_validator(mode="after")
    def _hang_after_interval(self) -> WatchSettings:
        if self.hang_timeout <= 2 * self.heartbeat_interval:
            raise ValueError("hang_timeout must be more than twice heartbeat_interval")
        return self


class RestartSettings(_Strict):
    policy: Literal["never", "on-failure", "always"] = "on-failure"
    """``on-failure``: reboot a guest after a failure; ``always``: also after it powered off."""
    max_restarts: int = Field(default=10, ge=0, le=1_000_000)
    """Per VM; once reached, the VM is retired for the rest of the run."""
    backoff: Annotated[Seconds, between(0.0, DAY_S)] = 2.0


class ImageSettings(_Strict):
    """The guest image; by default soak builds its own from Debian packages.

    ``kernel`` + ``initrd``: the user's own pair (booted by QEMU). ``disk``: a full OS on a disk
    image (a path, or ``soak:debian`` built by soak), booted by its bootloader through the
    group's firmware, or by ``kernel`` + ``initrd`` with the disk as their root; each VM writes
    to its own overlay, never to the file (`soak.image.disk`).
    """

    kernel: Path | None = None
    initrd: Path | None = None
    append: str = Field(default="", max_length=4096)
    """Extra kernel command line arguments."""
    disk: str | None = Field(default=None, min_length=1, max_length=4096)
    """A disk image file, or ``soak:NAME`` (`soak.image.disk.SOAK_DISKS`)."""
    format: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,15}$")
    """The disk's format as qemu-img names it (qcow2, raw, vmdk ...); default: what qemu-img finds."""
    agent: Literal["qga", "none"] | None = None
    """What runs in a disk's OS for soak to talk to: ``qga`` (QEMU's guest agent) or ``none``
    (console, QMP and process only); default ``qga`` for ``soak:`` disks, ``none`` for others."""

    @field_validator("kernel", "initrd", mode="before")
    @classmethod
    def _path_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value:
                raise ValueError("the path is empty")
            _printable(value)
        return value

    @field_validator("append", "disk")
    @classmethod
    def _append_printable(cls, value: str | None) -> str | None:
        return value if value is None else _printable(value)

    @field_validator("disk")
    @classmethod
    def _known_soak_disk(cls, value: str | None) -> str | None:
        from soak.image.disk import SOAK_DISKS, soak_disk_name

        name = soak_disk_name(value or "")
        if name is not None and name not in SOAK_DISKS:
            raise ValueError(f"no disk image {value!r}; soak builds {', '.join('soak:' + d for d in SOAK_DISKS)}")
        return value

    @model_validator(mode="after")
    def _both_or_neither(self) -> ImageSettings:
        if (self.kernel is None) != (self.initrd is None):
            raise ValueError("set both kernel and initrd, or neither (to use the default image)")
        if self.disk is None:
            if self.format is not None or self.agent is not None:
                raise ValueError(f"{'format' if self.format else 'agent'} applies to a disk image: set disk too")
            return self
        if self.soak_disk and self.kernel is not None:
            raise ValueError(f"{self.disk} boots its own kernel: drop kernel and initrd")
        if self.soak_disk and self.format not in (None, "qcow2"):
            raise ValueError(f"{self.disk} is a qcow2 image: drop format")
        if self.kernel is None and self.append and not self.soak_disk:
            raise ValueError("append needs kernel and initrd: a disk without them boots its bootloader's "
                             "command line")
        return self

    @property
    def is_default(self) -> bool:
        return self.kernel is None and self.disk is None

    @property
    def soak_disk(self) -> bool:
        """The disk is one soak builds (``soak:debian``)."""
        return self.disk is not None and self.disk.startswith("soak:")

    @property
    def disk_agent(self) -> str | None:
        """``qga`` or ``none`` for a disk image (its default decided), None without a disk."""
        if self.disk is None:
            return None
        return self.agent or ("qga" if self.soak_disk else "none")


def _int_choices(value: Any) -> Any:
    """Accept ``4``, ``[1, 2, 4]`` or a range string ``"1-8"``."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", value, re.ASCII)
        if match is None:
            raise ValueError(f"{_quoted(value)} is not a number, a list or a range like '1-8'")
        if max(len(match[1]), len(match[2])) > 6:
            raise ValueError(f"{_quoted(value)}: at most 255 vCPUs")
        return {"low": int(match[1]), "high": int(match[2])}
    return value


class IntRange(_Strict):
    low: int = Field(ge=1)
    high: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.low > self.high:
            raise ValueError(f"range {self.low}-{self.high} is empty")
        return self


def _size_choices(value: Any) -> Any:
    if isinstance(value, list):
        return [parse_size_mib(v) for v in value]
    return parse_size_mib(value)


def _vms_in_group(faults: list[FaultSettings], count: int) -> None:
    """A fault's ``vms`` must name VMs of its group: an index past the end would be ignored."""
    for i, fault in enumerate(faults):
        beyond = sorted(v for v in fault.vms or () if v >= count)
        if beyond:
            have = "VM 0" if count == 1 else f"VMs 0-{count - 1}"
            raise ValueError(f"fault[{i}].vms names VM {beyond[0]}, but the group has {count}"
                             f" ({have}); `vms` are indexes within the group")


class GroupSettings(_Strict):
    """A group of VMs of the same kind; vCPUs and memory may vary inside it."""

    name: str
    count: int = Field(default=1, ge=1, le=1000)
    vcpus: Annotated[int | list[int] | IntRange, BeforeValidator(_int_choices)] = 1
    """One count, a list cycled over the group's VMs, or a range drawn with the run's seed."""
    memory: Annotated[int | list[int], BeforeValidator(_size_choices)] = 256
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
        return _name(value, NAME_PATTERN,
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
                raise ValueError(f"{_quoted(v)} MiB is more than any guest can use"
                                 f" (at most {MAX_MEMORY_MIB // (1024 * 1024)} TiB)")
        return value


class Profile(_Strict):
    run: RunSettings = RunSettings()
    watch: WatchSettings = WatchSettings()
    restart: RestartSettings = RestartSettings()
    group: list[GroupSettings] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_groups(self) -> Profile:
        names = [g.name for g in self.group]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"group names must be unique: {', '.join(duplicates)}")
        return self


class VmSpec(_Strict):
    """One VM of the fleet, fully decided: what the supervisor launches."""

    name: str
    group: str
    index: int
    vcpus: int
    memory_mib: int
    machine: str
    arch: str = DEFAULT_ARCH
    firmware: str = "bios"
    max_vcpus: int | None = None
    image: ImageSettings
    index_in_group: int = 0
    load: LoadSettings | None = None
    faults: list[FaultSettings] = Field(default_factory=list)
    expect: list[str] = Field(default_factory=list)
    tolerate: list[str] = Field(default_factory=list)
    expect_within_s: float = 120.0
    disks: list[DiskSettings] = Field(default_factory=list)
    network: Network | None = None
    """Resolved per VM: the odd last VM of a ``pair`` group gets ``user``."""
    net_peer: str | None = None
    """The VM at the other end of this VM's ``pair`` link."""
    net_peer_index: int | None = None
    """Its index in the group."""
    rng: bool = False

    @property
    def needs_balloon(self) -> bool:
        return any(fault_type(f.type).needs == "balloon" for f in self.faults)

    @property
    def needs_snapshot_disk(self) -> bool:
        return any(fault_type(f.type).needs == "snapshot" for f in self.faults)

    @property
    def allowed_kinds(self) -> frozenset[str]:
        """Kinds that are expected outcomes on this VM, not findings."""
        return frozenset(k for entry in (*self.expect, *self.tolerate) for k in entry.split("|"))


def expand_fleet(profile: Profile) -> list[VmSpec]:
    """The VMs a profile describes, with varied shapes decided by the run's seed.

    Pure: the same profile and seed always give the same fleet.
    """
    rng = random.Random(profile.run.seed)
    fleet: list[VmSpec] = []
    for group in profile.group:
        hotplug = any(fault_type(f.type).needs == "hotplug" for f in group.fault)
        arch = ARCHES[group.arch]
        for i in range(group.count):
            vcpus = _pick_int(group.vcpus, i, rng)
            max_vcpus = group.max_vcpus or (vcpus + 1 if hotplug else None)
            peer = pair_peer(i, group.count) if group.network == "pair" else None
            fleet.append(
                VmSpec(
                    name=f"{group.name}-{i}",
                    group=group.name,
                    index=len(fleet),
                    index_in_group=i,
                    vcpus=vcpus,
                    memory_mib=_pick_int(group.memory, i, rng),
                    machine=group.machine or arch.default_machine,
                    arch=arch.name,
                    firmware=arch.firmware(group.firmware).name,
                    max_vcpus=max(max_vcpus, vcpus) if max_vcpus else None,
                    image=group.image,
                    load=group.load,
                    faults=group.fault,
                    expect=group.expect,
                    tolerate=group.tolerate,
                    expect_within_s=group.expect_within,
                    disks=group.disks,
                    network=("pair" if peer is not None else "user") if group.network == "pair" else group.network,
                    net_peer=f"{group.name}-{peer}" if peer is not None else None,
                    net_peer_index=peer,
                    rng=group.rng,
                )
            )
    return fleet


def _pick_int(choice: int | list[int] | IntRange, i: int, rng: random.Random) -> int:
    if isinstance(choice, int):
        return choice
    if isinstance(choice, list):
        return choice[i % len(choice)]
    return rng.randint(choice.low, choice.high)


def load_profile(path: Path, overrides: dict[str, Any] | None = None) -> Profile:
    """Read and validate a profile file; ``overrides`` replace ``run.*`` settings.

    :raise ProfileError: unreadable file, bad TOML, or an invalid field.
    """
    source = _printable_path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise ProfileError(source, "", f"cannot read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_PROFILE_BYTES:
        raise ProfileError(source, "", f"too large for a profile (more than {MAX_PROFILE_BYTES // 1024} KiB)")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProfileError(source, "", "not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(source, "", f"not valid TOML: {exc}") from exc
    except ValueError as exc:  # tomllib lets int()'s own errors through (a 5000-digit number)
        raise ProfileError(source, "", f"not valid TOML: {str(exc).split(';')[0]}") from exc
    except RecursionError:
        raise ProfileError(source, "", "not valid TOML: nested too deeply") from None
    if overrides and isinstance(data.get("run", {}), dict):  # else validation names `run`
        run = dict(data.get("run", {}))
        run.update({k: v for k, v in overrides.items() if v is not None})
        data["run"] = run
    return validate_profile(data, source)


def _printable_path(path: Path) -> str:
    """The path for a one-line message: control characters escaped."""
    text = str(path)
    return text if text.isprintable() else repr(text)[1:-1]


def validate_profile(data: dict[str, Any], source: str) -> Profile:
    """Validate parsed TOML; the first problem becomes a ProfileError.

    :raise ProfileError: naming the field (``group[1].vcpus``) and the problem.
    """
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # In a union (vcpus = 4 | [..] | "1-8") our own explanation beats "not an int".
        error = next((e for e in errors if e["type"] == "value_error"), errors[0])
        raise ProfileError(source, _field_path(error["loc"]), _problem(error)) from None
    except RecursionError:  # pydantic on data nested deeper than any profile needs
        raise ProfileError(source, "", "nested too deeply") from None


_UNION_TAGS = frozenset({"int", "list[int]", "IntRange", "str"})


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]" if parts else f"[{item}]"]
        elif str(item) in _UNION_TAGS or "(" in str(item):
            continue  # pydantic's names for union members and validators, not a user's field
        else:
            parts.append(_key(str(item)))
    return ".".join(parts) or "(top level)"


def _key(name: str) -> str:
    """A field name as TOML would quote it when it is not a bare key (``"na me"``)."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        return name
    return _quoted(name)


def _problem(error: Any) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if error["type"] == "extra_forbidden":
        return "unknown field (check the spelling)"
    if error["type"] == "missing":
        return "required field is missing"
    if "input" in error and error["type"] not in ("value_error",) and not isinstance(
        error["input"], dict | list
    ):
        message = f"{message} (got {_quoted(error['input'])})"
    return " ".join(message.split())  # one line, whatever the input held
