"""A paused migration of an x86_64 UEFI guest: source and destination share its variable store by path.

The destination opens ``efivars.fd`` as writable pflash while the source still runs with it;
with ``-incoming`` QEMU keeps its block devices inactive (no write lock) until the switchover,
so the store is handed over like a disk. The guest must go on on the destination (same boot,
heartbeats continuing) and the store must still be the VM's own, one file, unchanged in size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from soak import events as ev
from tests.integration.harness import live_run, write_profile

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(300)]


async def test_a_uefi_guest_migrates_with_its_variable_store(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.toml", """
        [restart]
        policy = "never"

        [[group]]
        name = "efi"
        firmware = "uefi"
        vcpus = 1
        memory = "256M"
        fault = [{ type = "migrate", mode = "paused", at = ["5s", "15s"] }]
    """, hang_timeout="20s")
    async with live_run(profile, tmp_path / "run") as run:
        migrated = await run.probe.wait(lambda e: isinstance(e, ev.Migrated), count=2, timeout=200)
        last = migrated[-1]
        beats = await run.probe.wait(lambda e: isinstance(e, ev.Heartbeat) and e.t > last.t, count=3, timeout=60)
    for m in migrated:
        assert isinstance(m, ev.Migrated) and m.ok, m
        print(f"UEFI paused migration: {m.total_s:.2f} s, downtime {m.downtime_s * 1000:.0f} ms")
    assert not run.probe.matching(lambda e: isinstance(e, ev.Failure | ev.InfraProblem))
    seqs = [b.seq for b in run.probe.matching(lambda e: isinstance(e, ev.Heartbeat))]
    assert seqs == sorted(seqs) and beats, "the same boot goes on: its heartbeat sequence never restarts"
    assert len(run.probe.matching(lambda e: isinstance(e, ev.VmStarting))) == 1
    store = tmp_path / "run" / "vms" / "efi-0" / "efivars.fd"
    assert store.stat().st_size == Path("/usr/share/OVMF/OVMF_VARS_4M.fd").stat().st_size
    stderr = (tmp_path / "run" / "vms" / "efi-0" / "qemu-stderr.log").read_text()
    assert "lock" not in stderr, stderr
