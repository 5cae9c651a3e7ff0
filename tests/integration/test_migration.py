"""Live migration of real TCG guests: the VM moves to a new QEMU, and every failure path ends clean."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import psutil
import pytest

from soak import events as ev
from soak.kinds import Kind
from tests.integration.harness import LiveRun, live_run, qemu_children, write_profile

pytestmark = pytest.mark.qemu

LOADED = """
    [restart]
    policy = "never"

    [[group]]
    name = "m"
    vcpus = 2
    memory = "256M"

    [group.load]
    stressors = ["vm"]
    pattern = "steady"
    period = "15s"
    memory_share = 0.3
"""


async def destination(run: LiveRun, timeout: float = 60) -> psutil.Process:
    """The QEMU started with -incoming: a migration's destination, while it waits or loads."""
    async with asyncio.timeout(timeout):
        while True:
            for child in qemu_children():
                try:
                    if "-incoming" in child.cmdline():
                        return child
                except psutil.Error:
                    continue
            await asyncio.sleep(0.2)


async def test_paused_migrations_ping_pong_a_loaded_guest_cleanly(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.toml", LOADED + """
        [[group.fault]]
        type = "migrate"
        mode = "paused"
        every = "8s"
        start = "5s"
        jitter = 0.0
    """)
    async with live_run(profile, tmp_path / "run") as run:
        migrated = await run.probe.wait(lambda e: isinstance(e, ev.Migrated), count=3, timeout=180)
        first_pid = run.probe.matching(lambda e: isinstance(e, ev.VmStarting))[0]
        pid_now = run.qemu_pid("m-0")
        await run.probe.wait(lambda e: isinstance(e, ev.Heartbeat) and e.t > migrated[-1].t + 3)
    assert all(isinstance(m, ev.Migrated) and m.ok and m.mode == "paused" for m in migrated)
    assert isinstance(first_pid, ev.VmStarting) and pid_now != first_pid.pid
    assert [m.pid for m in migrated if isinstance(m, ev.Migrated)][-1] == pid_now
    assert run.probe.matching(lambda e: isinstance(e, ev.Failure)) == []
    assert run.probe.matching(lambda e: isinstance(e, ev.InfraProblem)) == []
    assert len(run.probe.matching(lambda e: isinstance(e, ev.VmStarting))) == 1  # one boot, many QEMUs
    assert run.probe.matching(lambda e: isinstance(e, ev.WorkloadMetrics) and e.t > migrated[0].t)


async def test_a_destination_with_other_memory_is_a_migration_failure_and_the_guest_lives_on(
        tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.toml", LOADED + """
        [[group.fault]]
        type = "migrate"
        at = ["5s"]
        mismatch = "memory"
    """)
    async with live_run(profile, tmp_path / "run") as run:
        (failure,) = await run.probe.wait(lambda e: isinstance(e, ev.Failure), timeout=120)
        await run.probe.wait(lambda e: isinstance(e, ev.Heartbeat) and e.t > failure.t + 5)
    assert isinstance(failure, ev.Failure)
    assert (failure.kind, failure.title) == (Kind.MIGRATION_FAILURE,
                                             "migration failed: destination QEMU ended (exit code 1)")
    assert failure.expected and failure.faults == ["migrate#1"]
    stderr = (tmp_path / "run" / failure.evidence / "qemu-stderr.log").read_text()
    assert "mismatch" in stderr.lower()  # the destination's own words are in the evidence


@pytest.mark.parametrize("victim", ["destination", "source"])
async def test_a_qemu_killed_during_migration_ends_clear_and_leaves_no_qemu(tmp_path: Path, victim: str) -> None:
    profile = write_profile(tmp_path / "p.toml", LOADED + """
        [[group.fault]]
        type = "migrate"
        at = ["5s"]
        bandwidth = "2M"
        timeout = "5m"
    """)
    async with live_run(profile, tmp_path / "run") as run:
        await run.probe.wait(lambda e: isinstance(e, ev.FaultInjected), timeout=120)
        dest = await destination(run)
        await asyncio.sleep(2)  # the migration is streaming (2 MB/s of ~100 MB)
        os.kill(dest.pid if victim == "destination" else run.qemu_pid("m-0"), signal.SIGKILL)
        failures = await run.probe.wait(lambda e: isinstance(e, ev.Failure), timeout=60)
        if victim == "destination":
            await run.probe.wait(lambda e: isinstance(e, ev.Heartbeat) and e.t > failures[0].t + 3)
    titles = [(f.kind, f.title) for f in failures if isinstance(f, ev.Failure)]
    if victim == "destination":
        assert titles == [(Kind.MIGRATION_FAILURE, "migration failed: destination QEMU ended (killed by SIGKILL)")]
    else:
        assert titles[0][0] == Kind.QEMU_CRASH and "SIGKILL" in titles[0][1]
        assert all(kind != Kind.MIGRATION_FAILURE for kind, _ in titles)  # the crash says it all
    assert not qemu_children()
