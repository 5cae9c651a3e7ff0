"""Pre-flight checks: pure functions of the profile, the fleet and the host's facts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from soak.diskio import watch_free_disk
from soak.errors import CapacityError, ProfileError
from soak.preflight import (
    HostFacts,
    check_disk,
    check_guest_faults,
    check_memory,
    estimate_disk,
    host_facts,
)
from soak.profile import Profile, expand_fleet, validate_profile

GIB = 1 << 30
HOST = HostFacts(disk_free=100 * GIB, disk_total=200 * GIB, memory_total=24 * GIB, memory_available=20 * GIB)


def profile(run: dict[str, Any] | None = None, **group: Any) -> Profile:
    return validate_profile({"run": run or {}, "group": [{"name": "g", **group}]}, "p.toml")


@dataclass(frozen=True)
class Image:
    label: str = "default:6.1"
    agent: bool = True
    features: frozenset[str] = frozenset({"agent", "faultinject"})
    notes: tuple[str, ...] = ()


def test_a_fleet_larger_than_the_host_is_one_line() -> None:
    p = profile(count=2, memory="1T")
    with pytest.raises(CapacityError) as err:
        check_memory("p.toml", p, expand_fleet(p), HOST, "tcg")
    message = str(err.value)
    assert message.startswith("p.toml: the fleet needs 2.0 TiB of memory") and "\n" not in message
    assert "run.memory_overcommit = 1" in message


def test_overcommit_is_a_deliberate_setting() -> None:
    p = profile({"memory_overcommit": 1.5}, count=100, memory="256M")  # 34 GiB with QEMU's own
    check_memory("p.toml", p, expand_fleet(p), HOST, "tcg")
    with pytest.raises(CapacityError):
        check_memory("p.toml", profile(count=100, memory="256M"), expand_fleet(p), HOST, "tcg")


def test_disk_must_hold_every_console_at_its_limit_plus_the_floor() -> None:
    p = profile({"console_limit": "1G", "min_free_disk": "10%"}, count=80)
    small = HostFacts(disk_free=50 * GIB, disk_total=200 * GIB, memory_total=24 * GIB, memory_available=0)
    with pytest.raises(CapacityError, match=r"may write up to 80\.\d GiB .* must leave 20\.0 GiB free"):
        check_disk("p.toml", p, expand_fleet(p), small, Path("runs/x"))
    q = profile({"console_limit": "256M"}, count=80)
    check_disk("p.toml", q, expand_fleet(q), small, Path("runs/x"))


def test_a_guest_fault_needs_its_module_in_the_image() -> None:
    p = profile(fault=[{"type": "pause", "every": "60s"}, {"type": "oops", "at": ["30s"]}])
    check_guest_faults("p.toml", p, {"g": Image()})
    bare = Image(features=frozenset({"agent"}), notes=("faultinject: no gcc on this host",))
    with pytest.raises(ProfileError) as err:
        check_guest_faults("p.toml", p, {"g": bare})
    assert str(err.value) == ("p.toml: group[0].fault[1]: guest fault 'oops' cannot be provoked in the image of "
                              "group 'g' (default:6.1): it has no faultinject module (faultinject: no gcc on this host)")
    user_space = profile(fault=[{"type": "sysrq-crash", "at": ["30s"]}])
    check_guest_faults("p.toml", user_space, {"g": bare})
    with pytest.raises(ProfileError, match="no soak agent"):
        check_guest_faults("p.toml", user_space, {"g": Image(agent=False, features=frozenset())})


def test_estimates_per_vm_hour_follow_the_profile() -> None:
    idle = estimate_disk(profile({"duration": "8h"}, count=4), expand_fleet(profile(count=4)))
    assert 10_000 < idle.journal_per_vm_hour < 40_000  # two samples a minute, the boot's records
    assert idle.console_per_vm_hour < 10_000  # one boot log in eight hours
    loaded = profile({"duration": "8h"}, count=4, load={"stressors": ["cpu", "vm"], "period": "30s"},
                     fault=[{"type": "oops", "every": "10m"}])
    busy = estimate_disk(loaded, expand_fleet(loaded))
    assert busy.journal_per_vm_hour > idle.journal_per_vm_hour + 20_000
    assert busy.console_per_vm_hour > idle.console_per_vm_hour + 6 * 6 * 1024
    assert busy.console_bound == 4 * (256 << 20)
    assert "per VM-hour" in busy.describe(4)


def test_host_facts_of_a_directory_that_does_not_exist_yet(tmp_path: Path) -> None:
    facts = host_facts(tmp_path / "runs" / "new")
    assert facts.disk_total > facts.disk_free > 0 and facts.memory_total > 0


async def test_the_free_disk_watch_stops_once_under_the_floor() -> None:
    free = iter([10 * GIB, 5 * GIB, 900 << 20, 800 << 20])
    lows: list[str] = []
    await asyncio.wait_for(watch_free_disk(Path("/run"), lambda total: GIB, lows.append, every_s=0.01,
                                           stat=lambda _p: (next(free), 100 * GIB)), timeout=5)
    assert len(lows) == 1 and lows[0].startswith("900.0 MiB free on the disk of /run")


def test_run_settings_for_bounds() -> None:
    run = profile({"console_limit": "64M", "min_free_disk": "5%", "evidence_per_signature": 1}).run
    assert run.console_limit == 64 << 20 and run.evidence_per_signature == 1
    assert run.min_free_disk.of(200 * GIB) == 10 * GIB
    assert profile({"min_free_disk": "2G"}).run.min_free_disk.of(200 * GIB) == 2 * GIB
    for bad, field in (({"console_limit": "1K"}, "run.console_limit"), ({"min_free_disk": "150%"}, "run.min_free_disk"),
                       ({"memory_overcommit": 0}, "run.memory_overcommit")):
        with pytest.raises(ProfileError) as err:
            profile(bad)
        assert err.value.field == field
