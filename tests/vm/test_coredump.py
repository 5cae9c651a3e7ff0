"""A real QEMU that dies of SIGABRT or SIGSEGV: a bounded core, a gdb backtrace, a title, no core left.

QEMU runs paused (``-S``, no guest image needed) the way soak spawns it: in the
VM's folder with RLIMIT_CORE set. One test makes QEMU abort *itself* after
printing glibc's heap-corruption words (gdb calls ``write`` and ``abort`` inside
it, which is what glibc's ``malloc_printerr`` does); the other sends SIGSEGV from
outside, as soak's ``segv`` fault or a stray ``kill`` would.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from soak.detect.exit import qemu_exit_verdict
from soak.kinds import Kind
from soak.vm.coredump import (
    BACKTRACE_FILE,
    CORE_LIMIT_BYTES,
    MAX_KEPT_CORES,
    _keep_or_delete,
    collect_core,
    core_limit,
)
from soak.vm.process import QemuProcess

pytestmark = [pytest.mark.qemu, pytest.mark.skipif(
    not Path("/proc/sys/kernel/core_pattern").read_text().strip().startswith(("core", "/")),
    reason="this host pipes core dumps to a helper")]

QEMU = "qemu-system-x86_64"
ARGV = [QEMU, "-machine", "pc,dump-guest-core=off", "-accel", "tcg,tb-size=16", "-m", "128",
        "-nodefaults", "-display", "none", "-S", "-msg", "timestamp=on"]
LAST_WORDS = "malloc(): largebin double linked list corrupted (nextsize)"


async def _spawn(vm_dir: Path) -> QemuProcess:
    qemu = await QemuProcess.spawn(ARGV, stderr_path=vm_dir / "qemu-stderr.log", cwd=vm_dir,
                                   core_limit=core_limit())
    limits = Path(f"/proc/{qemu.pid}/limits")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # exec done and QEMU's threads up
        if "qemu-system" in Path(f"/proc/{qemu.pid}/comm").read_text() and len(os.listdir(
                f"/proc/{qemu.pid}/task")) > 1:
            break
        await asyncio.sleep(0.1)
    soft = next(line.split()[4] for line in limits.read_text().splitlines() if line.startswith("Max core"))
    assert int(soft) == core_limit() <= CORE_LIMIT_BYTES
    return qemu


def _no_core_left(vm_dir: Path) -> None:
    assert not [p.name for p in vm_dir.iterdir() if p.name == "core" or p.name.startswith("core.")]


@pytest.mark.timeout(240)
async def test_qemu_abort_with_last_words(tmp_path: Path) -> None:
    qemu = await _spawn(tmp_path)
    gdb = await asyncio.create_subprocess_exec(
        "gdb", "-p", str(qemu.pid), "-batch", "-nx", "-ex", "set debuginfod enabled off",
        "-ex", f'call (long)write(2, "{LAST_WORDS}\\n", {len(LAST_WORDS) + 1})', "-ex", "call (void)abort()",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await asyncio.wait_for(gdb.wait(), 60)
    code = await asyncio.wait_for(qemu.wait(), 60)
    assert code == -signal.SIGABRT
    evidence = await collect_core(tmp_path, qemu.pid, QEMU, deadline=120)
    assert evidence.report is not None, evidence.note
    assert evidence.report.signal == "SIGABRT" and evidence.report.sender_pid is None  # QEMU's own abort
    text = evidence.files[BACKTRACE_FILE]
    assert text.startswith("# QEMU backtrace of all threads")
    assert "Thread 1 " in text and "__GI_abort" in text
    stderr = (tmp_path / "qemu-stderr.log").read_text()
    verdict = qemu_exit_verdict(code, guest_shutdown=False, boot_stderr=stderr, backtrace=evidence.report)
    assert (verdict.kind, verdict.title) == (Kind.QEMU_CRASH, f"QEMU abort: {LAST_WORDS}")
    _no_core_left(tmp_path)


@pytest.mark.timeout(240)
async def test_qemu_segv_from_outside_keeps_a_bounded_core_on_request(tmp_path: Path) -> None:
    qemu = await _spawn(tmp_path)
    os.kill(qemu.pid, signal.SIGSEGV)
    code = await asyncio.wait_for(qemu.wait(), 60)
    assert code == -signal.SIGSEGV
    evidence = await collect_core(tmp_path, qemu.pid, QEMU, deadline=120, keep=True)
    assert evidence.report is not None, evidence.note
    assert evidence.report.sender_pid == os.getpid()
    text = evidence.files[BACKTRACE_FILE]
    assert f"sent by pid {os.getpid()}" in text
    assert re.search(r" in (?:qemu_\w+|main) \(", text)  # QEMU's exported functions have names
    assert "<- qemu-system-x86_64+0x" in text  # QEMU's static functions as module+offset
    verdict = qemu_exit_verdict(code, guest_shutdown=False, boot_stderr="", backtrace=evidence.report)
    assert verdict.title == "QEMU killed by SIGSEGV (sent by another process)"
    assert evidence.kept is not None and evidence.kept.parent == tmp_path / "cores"
    assert 0 < evidence.kept.stat().st_size <= CORE_LIMIT_BYTES
    _no_core_left(tmp_path)


async def test_no_core_is_a_note_not_an_error(tmp_path: Path) -> None:
    evidence = await collect_core(tmp_path, 999_999, QEMU, deadline=5)
    assert evidence.report is None and evidence.files == {} and "no core dump found" in evidence.note


def test_kept_cores_are_bounded(tmp_path: Path) -> None:
    for pid in range(5):
        (tmp_path / "core").write_bytes(b"\0" * 10)
        kept = _keep_or_delete(tmp_path / "core", tmp_path, pid, keep=True)
        assert (kept is not None) == (pid < MAX_KEPT_CORES)
        _no_core_left(tmp_path)
    assert len(list((tmp_path / "cores").iterdir())) == MAX_KEPT_CORES


def test_gdb_is_installed() -> None:
    assert shutil.which("gdb"), "gdb is needed for QEMU backtraces: scripts/bootstrap installs it"
