"""A real guest flooding its console: stored within the limit, journaled, and its crash still found.

Drives soak's own pieces (QemuProcess, ConsoleReader, ConsoleStore, ConsoleTriage,
Journal) against a real QEMU, as the guest runner does, without the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from soak import events as ev
from soak.classify import ConsoleTriage
from soak.image import GuestImage
from soak.journal import Journal, read_journal
from soak.kinds import Kind
from soak.rundir import RunDir
from soak.vm.argv import build_argv
from soak.vm.console import ConsoleReader
from soak.vm.consolestore import ConsoleStore, FloodMeter
from tests.console.flood_guest import PANIC_TITLE, boot_config, flood_initrd

pytestmark = pytest.mark.qemu
LIMIT = 1 << 20


def on_disk(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("console*"))


async def test_a_flood_is_bounded_journaled_observed_and_hides_no_crash(tmp_path: Path,
                                                                       default_image: GuestImage) -> None:
    from soak.vm.process import QemuProcess

    run_dir = RunDir(tmp_path / "run")
    run_dir.create()
    journal = Journal(run_dir.journal)
    writer = asyncio.create_task(journal.writer())
    store = ConsoleStore("flood-0", run_dir.vm_dir("flood-0"), limit_bytes=LIMIT, emit=journal.observe,
                         flood=FloodMeter(window_s=8, threshold=16 * 1024), report_every_s=2)
    triage = ConsoleTriage(grace_seconds=3)
    crash_seen: list[float] = []
    evidence_due = asyncio.Event()
    after_crash = asyncio.Event()

    def on_line(line: str) -> None:
        now = time.monotonic()
        if triage.feed(line, now) is not None and not crash_seen:
            crash_seen.append(now)
            loop = asyncio.get_running_loop()
            loop.call_later(1, evidence_due.set)  # the runner takes evidence after its grace period
            loop.call_later(5, after_crash.set)  # and the flood goes on

    sockets = tmp_path / "s"
    sockets.mkdir()
    config = boot_config(default_image, flood_initrd(default_image, tmp_path / "i.gz"), sockets)
    qemu = await QemuProcess.spawn(build_argv(config), stderr_path=run_dir.stderr_log("flood-0"))
    reader = ConsoleReader(qemu.console, store.open_boot(1), on_line)
    reading = asyncio.create_task(reader.run())
    most_on_disk = 0
    try:
        evidence = b""
        async with asyncio.timeout(120):
            while not after_crash.is_set():
                most_on_disk = max(most_on_disk, on_disk(run_dir.vm_dir("flood-0")))
                if evidence_due.is_set() and not evidence:
                    evidence = await store.around(crash_seen[0], before=48 * 1024, after=64 * 1024)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.25):
                        await after_crash.wait()
    finally:
        await qemu.kill()
        await reading
        store.end_boot()
        await store.close()
        journal.close()
        await writer

    console_dir = run_dir.vm_dir("flood-0")
    assert reader.bytes_read > 3 * LIMIT, "the guest did not flood"
    assert most_on_disk <= LIMIT and on_disk(console_dir) <= LIMIT
    assert b"Linux version" in (console_dir / "console.head-1.log").read_bytes()
    reports = triage.due(time.monotonic(), force=True)
    assert [(r.kind, r.title) for r in reports] == [(Kind.KERNEL_PANIC, PANIC_TITLE)]
    assert b"Kernel panic - not syncing: soak-flood-test" in evidence
    events = read_journal(run_dir.journal).events
    drops = [e for e in events if isinstance(e, ev.ConsoleDropped)]
    assert drops and drops[-1].dropped_bytes == store.dropped_bytes > reader.bytes_read - 2 * LIMIT
    floods = [e for e in events if isinstance(e, ev.Observation) and e.topic == "console-flood"]
    assert len(floods) == 1 and floods[0].vm == "flood-0" and floods[0].value > 16 * 1024
