"""A mixed fleet in one real soak: x86_64 through UEFI, i386 and aarch64 side by side, under load.

aarch64's kernel has no pvpanic driver, so its panic must still be found: by the
console, with the guest resetting itself (QMP RESET), and the guest must come back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from soak import events as ev
from soak.kinds import Kind
from tests.integration.harness import live_run, write_profile

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(600)]

LOAD = """
        [group.load]
        stressors = ["cpu", "vm"]
        pattern = "bursts"
        period = "10s"
        idle = "5s"
        memory_share = 0.3
"""


async def test_mixed_fleet_runs_and_a_panic_without_pvpanic_is_found(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.toml", f"""
        [restart]
        policy = "on-failure"

        [[group]]
        name = "efi"
        firmware = "uefi"
        vcpus = 2
        memory = "320M"
        {LOAD}
        [[group]]
        name = "old"
        arch = "i386"
        vcpus = 2
        memory = "320M"
        fault = [{{ type = "nmi", at = ["5s"] }}]
        {LOAD}
        [[group]]
        name = "arm"
        arch = "aarch64"
        firmware = "uefi"
        vcpus = 2
        memory = "320M"
        expect = ["kernel-panic"]
        fault = [{{ type = "panic", at = ["10s"] }}]
        {LOAD}
    """, hang_timeout="30s")
    async with live_run(profile, tmp_path / "run") as run:
        ready = await run.probe.wait(lambda e: isinstance(e, ev.VmReady), count=3, timeout=300)
        for r in ready:
            assert isinstance(r, ev.VmReady)
            print(f"{r.vm}: ready in {r.boot_s:.1f} s")
        failures = await run.probe.wait(lambda e: isinstance(e, ev.Failure), timeout=120)
        # the guest reset itself; soak records the panic from the console and boots the VM again
        await run.probe.wait(lambda e: isinstance(e, ev.VmReady) and e.vm == "arm-0", count=2, timeout=180)
        await run.probe.wait(lambda e: isinstance(e, ev.Heartbeat) and e.vm == "old-0" and e.seq >= 20, timeout=120)
    panic = failures[0]
    assert isinstance(panic, ev.Failure)
    assert (panic.vm, panic.kind, panic.expected) == ("arm-0", Kind.KERNEL_PANIC, True), panic
    assert "soak-faultinject: requested panic" in panic.title

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    shapes = {vm["name"]: (vm["arch"], vm["firmware"]) for vm in summary["vms"]}
    assert shapes == {"efi-0": ("x86_64", "uefi"), "old-0": ("i386", "bios"), "arm-0": ("aarch64", "uefi")}
    assert summary["totals"]["unexpected_failures"] == 0, summary["failures"]
    vms = {vm["name"]: vm for vm in summary["vms"]}
    assert vms["efi-0"]["heartbeats"] >= 10 and vms["old-0"]["heartbeats"] >= 20, vms
    assert vms["arm-0"]["boots"] == 2 and vms["arm-0"]["heartbeats"] >= 1, vms["arm-0"]
