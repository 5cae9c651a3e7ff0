"""Real TCG guests with every device and device fault at once: three VMs, each check on the events
of one run (a pair with disks on their own tmpfs, a user-mode VM migrated back and forth)."""

from __future__ import annotations

from pathlib import Path

import pytest

from soak import events as ev
from soak.kinds import Kind
from tests.integration.harness import Probe, live_run, write_profile

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

MIB = 1024

PROFILE = """
    [restart]
    policy = "never"

    [[group]]
    name = "a"
    count = 2
    memory = "256M"
    network = "pair"
    rng = true
    disks = [{ size = "64M", backing = "tmpfs", cache = "writeback", io_size = "2M", io_idle = "1s" }]
    fault = [
      { type = "balloon", at = ["12s"], duration = "10s", target = 0.5, vms = [0] },
      { type = "disk-error", at = ["26s"], duration = "4s", vms = [0] },
      { type = "link-down", at = ["36s"], duration = "4s", vms = [0] },
      { type = "disk-corrupt", at = ["12s"], duration = "8s", vms = [1] },
      { type = "disk-full", at = ["28s"], duration = "10s", vms = [1] },
    ]

    [[group]]
    name = "m"
    memory = "256M"
    network = "user"
    disks = [{ size = "64M", io_size = "2M", io_idle = "1s" }]
    fault = [{ type = "migrate", mode = "paused", at = ["10s", "25s"] }]
"""


def io(probe: Probe, vm: str, device: str, after: float = 0.0) -> list[ev.DeviceIo]:
    return [e for e in probe.events if isinstance(e, ev.DeviceIo) and e.vm == vm and e.device == device
            and e.t > after and e.seconds > 0]


def fault(probe: Probe, vm: str, name: str) -> ev.FaultInjected:
    return next(e for e in probe.events if isinstance(e, ev.FaultInjected) and e.vm == vm and e.fault == name)


async def test_devices_and_device_faults_on_real_guests(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.toml", PROFILE, hang_timeout="20s")
    async with live_run(profile, tmp_path / "run") as run:
        probe = run.probe
        await probe.wait(lambda e: isinstance(e, ev.FaultInjected) and e.fault == "link-down", timeout=240)
        await probe.wait(lambda e: isinstance(e, ev.Migrated), count=2, timeout=120)
        await probe.wait(lambda e: isinstance(e, ev.Failure), count=3, timeout=60)
        link = fault(probe, "a-0", "link-down")
        await probe.wait(lambda e: isinstance(e, ev.Heartbeat) and e.t > link.t + 12, count=3, timeout=120)
        mounts = Path("/proc/mounts").read_text()
        assert mounts.count(".disks tmpfs") == 2, "each VM with tmpfs disks has a tmpfs of its own"
        run.stop()
        summary = await run.task

    # every device carries verified traffic, and the run directory says so
    for vm, devices in (("a-0", ("disk0", "net", "rng")), ("a-1", ("disk0", "net", "rng")), ("m-0", ("disk0", "net"))):
        for device in devices:
            assert io(probe, vm, device), f"no verified {device} traffic on {vm}"
        assert set(summary.vms[vm].devices) == set(devices)
    assert summary.vms["a-0"].devices["disk0"]["write_mb_s"] > 0

    failures = [e for e in probe.events if isinstance(e, ev.Failure)]
    assert not [f for f in failures if not f.expected], "only the faults' own outcomes failed"
    found = {(f.vm, f.kind, f.title.split(":")[0]) for f in failures}
    assert ("a-0", Kind.IO_ERROR, "disk write failed") in found or ("a-0", Kind.IO_ERROR, "disk read failed") in found
    assert ("a-1", Kind.WORKLOAD_FAILURE, "disk verify failed") in found  # corruption from the host is found
    full = next(f for f in failures if f.vm == "a-1" and f.kind is Kind.IO_ERROR)
    assert any(name.startswith("disk-full#") for name in full.faults)
    assert not [e for e in probe.events if isinstance(e, ev.InfraProblem)]

    # the balloon takes the guest's memory for its window and gives it back: the heartbeats show both
    inflate = fault(probe, "a-0", "balloon")
    beats = [e for e in probe.events if isinstance(e, ev.Heartbeat) and e.vm == "a-0"]
    before = max(b.mem_available_kib for b in beats if b.t < inflate.t)
    during = min(b.mem_available_kib for b in beats if inflate.t < b.t < inflate.t + 10)
    after = max(b.mem_available_kib for b in beats if b.t > inflate.t + 13)
    assert during < before - 80 * MIB and after > during + 80 * MIB

    # a link down drops transfers, and the traffic recovers clean
    assert io(probe, "a-0", "net", after=link.t + 4)
    # the migrated VM's disk and network go on in the destination QEMU
    second = [e for e in probe.events if isinstance(e, ev.Migrated) and e.vm == "m-0"][1]
    assert isinstance(second, ev.Migrated) and second.ok and io(probe, "m-0", "disk0", after=second.t)
    assert ".disks tmpfs" not in Path("/proc/mounts").read_text(), "the disks' tmpfs are unmounted"
