"""A real fleet under TCG: guests of different shapes boot, heartbeat, and fail the way they should."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from soak import events as ev
from soak.kinds import Kind
from tests.integration.harness import live_run, write_profile

pytestmark = pytest.mark.qemu


async def test_mixed_fleet_boots_and_heartbeats(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.toml", """
        [[group]]
        name = "mix"
        count = 3
        vcpus = [1, 2, 4]
        memory = ["256M", "320M", "384M"]
    """)
    async with live_run(profile, tmp_path / "run") as run:
        await run.probe.wait(lambda e: isinstance(e, ev.VmReady), count=3, timeout=120)
        for vm in ("mix-0", "mix-1", "mix-2"):
            await run.probe.wait(lambda e, vm=vm: isinstance(e, ev.Heartbeat) and e.vm == vm and e.seq >= 3)
    beats = run.probe.matching(lambda e: isinstance(e, ev.Heartbeat))
    assert all(b.lateness_s < 1.0 for b in beats if isinstance(b, ev.Heartbeat))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["verdict"] == "clean"
    assert sorted((vm["name"], vm["vcpus"], vm["memory_mib"]) for vm in summary["vms"]) == [
        ("mix-0", 1, 256), ("mix-1", 2, 320), ("mix-2", 4, 384)]
    assert all(vm["boots"] == 1 and vm["heartbeats"] >= 3 for vm in summary["vms"])
    console = (tmp_path / "run" / "vms" / "mix-2" / "console.log").read_text(errors="replace")
    assert "Linux version" in console and "soak-agent" in console


async def test_qemu_killed_from_the_host_is_a_qemu_crash(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.toml", """
        [restart]
        policy = "on-failure"
        max_restarts = 1
        backoff = "1s"

        [[group]]
        name = "k"
        vcpus = 2
    """)
    async with live_run(profile, tmp_path / "run") as run:
        await run.probe.wait(lambda e: isinstance(e, ev.VmReady))
        os.kill(run.qemu_pid("k-0"), signal.SIGSEGV)
        failures = await run.probe.wait(lambda e: isinstance(e, ev.Failure), timeout=15)
        await run.probe.wait(lambda e: isinstance(e, ev.VmReady) and e.boot == 2, timeout=120)
    failure = failures[0]
    assert isinstance(failure, ev.Failure)
    assert (failure.kind, failure.title) == (Kind.QEMU_CRASH, "QEMU killed by SIGSEGV (sent by another process)")
    evidence = tmp_path / "run" / failure.evidence
    assert {"console-tail.log", "qemu-argv.txt", "qemu-stderr.log", "reproduce.sh", "failure.json",
            "qemu-backtrace.txt"} <= {p.name for p in evidence.iterdir()}
    assert not list((tmp_path / "run" / "vms" / "k-0").glob("core*"))  # read by gdb, then deleted
    assert "--vm k-0" in (evidence / "reproduce.sh").read_text()


async def test_sigstopped_qemu_is_a_hang_and_soak_does_not_hang(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.toml", """
        [restart]
        policy = "never"

        [[group]]
        name = "s"
        vcpus = 1
    """, hang_timeout="8s")
    async with live_run(profile, tmp_path / "run") as run:
        await run.probe.wait(lambda e: isinstance(e, ev.VmReady))
        pid = run.qemu_pid("s-0")
        loop = asyncio.get_running_loop()
        os.kill(pid, signal.SIGSTOP)
        stopped_at = loop.time()
        failures = await run.probe.wait(lambda e: isinstance(e, ev.Failure), timeout=30)
        detected_after = loop.time() - stopped_at
        await run.probe.wait(lambda e: isinstance(e, ev.VmRetired), timeout=30)
    failure = failures[0]
    assert isinstance(failure, ev.Failure)
    assert failure.kind == Kind.QEMU_HANG
    assert failure.title == "QEMU hang: QMP not answering (process stopped)"
    assert detected_after < 8 + 1 + 3 + 1 + 3  # hang timeout + beat + QMP deadline + thread window + slack
    assert (tmp_path / "run" / failure.evidence / "threads.txt").read_text().count("state=T") >= 1


async def test_own_image_without_agent_is_watched_by_console_qmp_and_process(tmp_path: Path) -> None:
    from soak.image import ensure_default_image

    image = await asyncio.to_thread(ensure_default_image)
    profile = write_profile(tmp_path / "p.toml", f"""
        [restart]
        policy = "never"

        [[group]]
        name = "own"
        vcpus = 1
        image = {{ kernel = "{image.kernel}", initrd = "{image.initrd}" }}
    """)
    async with live_run(profile, tmp_path / "run") as run:
        await run.probe.wait(lambda e: isinstance(e, ev.VmReady))
        assert run.runner("own-0").machine.agent is None
        await asyncio.sleep(3)
        os.kill(run.qemu_pid("own-0"), signal.SIGKILL)
        failures = await run.probe.wait(lambda e: isinstance(e, ev.Failure), timeout=15)
    assert [(f.kind, f.title) for f in failures if isinstance(f, ev.Failure)] == [
        (Kind.QEMU_CRASH, "QEMU killed by SIGKILL")]
