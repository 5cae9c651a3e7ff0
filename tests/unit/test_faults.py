"""Fault declarations, the seeded timeline and the catalogue's outcomes."""

from __future__ import annotations

import itertools

import pytest

from soak.errors import ProfileError
from soak.faults.catalog import FAULT_TYPES, fault_type
from soak.faults.schedule import fault_timeline
from soak.faults.settings import FaultSettings
from soak.kinds import Kind
from soak.profile import expand_fleet, validate_profile


def timeline(faults: list[FaultSettings], vm: str = "g-0", index: int = 0, n: int = 20) -> list[tuple[float, str]]:
    return [(p.at_s, p.settings.type) for p in itertools.islice(
        fault_timeline(faults, seed=5, vm=vm, vm_index_in_group=index), n)]


def test_at_offsets_once_each_in_order() -> None:
    faults = [FaultSettings(type="nmi", at=[50, 10]), FaultSettings(type="pause", at=[30])]
    assert timeline(faults) == [(10, "nmi"), (30, "pause"), (50, "nmi")]


def test_every_with_seeded_jitter_is_reproducible() -> None:
    faults = [FaultSettings(type="pause", every=60, start=20, jitter=0.25)]
    first = timeline(faults)
    assert first == timeline(faults)
    assert first != timeline(faults, vm="g-1")
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(first)]
    assert all(45 <= g <= 75 for g in gaps)
    assert first[0][0] == 20


def test_count_and_vm_filter() -> None:
    faults = [FaultSettings(type="kill", every=10, count=3, vms=[1])]
    assert timeline(faults, index=0) == []
    assert len(timeline(faults, index=1)) == 3


def test_outcomes() -> None:
    assert fault_type("pause").expect == "survive"
    assert fault_type("kill").outcome == {Kind.QEMU_CRASH}
    assert Kind.KERNEL_OOPS in fault_type("oops").outcome
    assert fault_type("softlockup").outcome >= {Kind.SOFT_LOCKUP, Kind.RCU_STALL}
    assert all(f.guest == (name not in {"pause", "sigstop", "reset", "nmi", "vcpu-hotplug", "snapshot", "migrate", "kill",
                                         "segv", "balloon", "disk-error", "disk-full", "disk-corrupt",
                                         "link-down"}) for name, f in FAULT_TYPES.items())


@pytest.mark.parametrize(
    ("fault", "problem"),
    [({"type": "teleport", "every": "1m"}, "unknown fault 'teleport'"),
     ({"type": "pause"}, "say when"),
     ({"type": "pause", "every": "1m", "jiter": 0.1}, "unknown field")],
)
def test_bad_fault_declarations(fault: dict[str, object], problem: str) -> None:
    with pytest.raises(ProfileError) as info:
        validate_profile({"group": [{"name": "a", "fault": [fault]}]}, "p.toml")
    assert problem in str(info.value)
    assert info.value.field.startswith("group[0].fault[0]")


def test_hotplug_gets_a_spare_slot_and_expectations_are_checked() -> None:
    profile = validate_profile({"group": [{"name": "h", "vcpus": 2, "expect": ["kernel-oops|kernel-panic"],
                                           "fault": [{"type": "vcpu-hotplug", "at": ["10s"]}]}]}, "p")
    vm = expand_fleet(profile)[0]
    assert vm.max_vcpus == 3
    assert vm.allowed_kinds == {"kernel-oops", "kernel-panic"}
    with pytest.raises(ProfileError, match="unknown failure kind 'kernel-opps'"):
        validate_profile({"group": [{"name": "h", "expect": ["kernel-opps"]}]}, "p")
