"""A whole profile, and the fleet of fully decided VMs it expands to (seeded)."""

from __future__ import annotations

import random

from pydantic import (
    Field,
    model_validator,
)

from soak.arch import ARCHES, DEFAULT_ARCH
from soak.devices.plan import pair_peer
from soak.devices.settings import DiskSettings, Network
from soak.faults.catalog import fault_type
from soak.faults.settings import FaultSettings
from soak.load.settings import LoadSettings
from soak.profile.fields import (
    IntRange,
    Strict,
)
from soak.profile.group import GroupSettings
from soak.profile.settings import ImageSettings, RestartSettings, RunSettings, WatchSettings


class Profile(Strict):
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


class VmSpec(Strict):
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


