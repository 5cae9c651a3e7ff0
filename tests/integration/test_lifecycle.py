"""soak as a process: a kill -9 takes its guests with it; SIGTERM stops in order and summarizes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from soak import events as ev
from soak.kinds import Kind
from tests.integration.harness import live_run, write_profile

pytestmark = pytest.mark.qemu


def start_soak(profile: Path, run_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "soak", "run", str(profile), "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_ready(process: subprocess.Popen[str], count: int, timeout: float = 120) -> list[str]:
    """Lines of soak's output until ``count`` VMs said they are ready."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while sum("ready in" in line for line in lines) < count:
        assert time.monotonic() < deadline, "guests not ready in time:\n" + "".join(lines)
        line = process.stdout.readline()
        assert line, "soak exited early:\n" + "".join(lines)
        lines.append(line)
    return lines


def qemu_pids(run_dir: Path) -> list[int]:
    pids = []
    for line in (run_dir / "journal.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["type"] == "vm-starting":
            pids.append(record["pid"])
    return pids


def alive(pid: int) -> bool:
    """Running and not a zombie (this machine's pid 1 does not reap orphans)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def two_guests(tmp_path: Path) -> Path:
    return write_profile(tmp_path / "p.toml", """
        [[group]]
        name = "life"
        count = 2
        vcpus = [1, 2]
    """)


def test_kill_9_of_soak_leaves_no_qemu(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    soak = start_soak(two_guests(tmp_path), run_dir)
    try:
        wait_ready(soak, 2)
        pids = qemu_pids(run_dir)
        assert len(pids) == 2 and all(alive(p) for p in pids)
        soak.kill()
        soak.wait(10)
        deadline = time.monotonic() + 5
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in pids if alive(p)], "QEMU outlived a kill -9 of soak"
        # the evidence so far survives: the journal reads, the consoles are on disk
        summary = subprocess.run([sys.executable, "-m", "soak", "summary", str(run_dir), "--json"],
                                 capture_output=True, text=True, timeout=60)
        data = json.loads(summary.stdout)
        assert data["complete"] is False and len(data["vms"]) == 2
        assert "Linux version" in (run_dir / "vms" / "life-0" / "console.log").read_text(errors="replace")
    finally:
        if soak.poll() is None:
            soak.kill()


def test_sigterm_stops_in_order_and_writes_the_summary(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    soak = start_soak(two_guests(tmp_path), run_dir)
    try:
        wait_ready(soak, 2)
        pids = qemu_pids(run_dir)
        soak.send_signal(signal.SIGTERM)
        out, _ = soak.communicate(timeout=60)
        assert soak.returncode == 0, out
        assert not [p for p in pids if alive(p)]
        data = json.loads((run_dir / "summary.json").read_text())
        assert data["finish_reason"] == "signal" and data["verdict"] == "clean"
        stops = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
        stopped = [r for r in stops if r["type"] == "vm-stopped"]
        assert len(stopped) == 2
        # stopped gently: the guest powered off (exit 0), it was not killed
        assert all(r["exit_code"] == 0 and r["reason"] == "signal" for r in stopped), stopped
        assert "Verdict: clean" in out
    finally:
        if soak.poll() is None:
            soak.kill()


async def test_guest_panic_is_a_kernel_panic(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.toml", """
        [restart]
        policy = "never"

        [[group]]
        name = "pan"
        vcpus = 2
    """)
    async with live_run(profile, tmp_path / "run") as run:
        await run.probe.wait(lambda e: isinstance(e, ev.VmReady))
        agent = run.runner("pan-0").machine.agent
        assert agent is not None
        await agent.sysrq("c")
        failures = await run.probe.wait(lambda e: isinstance(e, ev.Failure), timeout=30)
        await run.probe.wait(lambda e: isinstance(e, ev.VmRetired), timeout=30)
    failure = failures[0]
    assert isinstance(failure, ev.Failure)
    assert failure.kind == Kind.KERNEL_PANIC
    assert failure.title == "kernel panic: sysrq triggered crash"
    assert len(failures) == 1  # the pvpanic event and the reset that follow are the same failure
    evidence = tmp_path / "run" / failure.evidence
    assert "sysrq triggered crash" in (evidence / "report.txt").read_text()
    assert "RIP=" in (evidence / "registers.txt").read_text()
