"""A run directory on a small tmpfs that fills up: one InfraProblem, a clean stop, nothing lost
that could be kept, no traceback. The journal, a console store, evidence and the summary write
into the same full disk, as in a run; the DiskAlarm is the run's one reaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import pytest

from soak import events as ev
from soak.detect.verdict import Verdict
from soak.diskio import DiskAlarm, watch_free_disk
from soak.faults.driver import FaultDriver
from soak.guest.recording import Evidence, FailureRecorder
from soak.image import GuestImage
from soak.journal import Journal, read_journal
from soak.kinds import Kind
from soak.profile import ImageSettings, VmSpec
from soak.rundir import RunDir
from soak.session import write_summary_files
from soak.summary import load_summary
from soak.vm.argv import build_argv
from soak.vm.console import ConsoleReader
from soak.vm.consolestore import ConsoleStore
from soak.vm.process import QemuProcess
from tests.console.flood_guest import boot_config, flood_initrd, small_tmpfs

SPEC = VmSpec(name="flood-0", group="flood", index=0, vcpus=1, memory_mib=256, machine="pc", image=ImageSettings())


class Run:
    """The writers of one run on ``root``, wired to one DiskAlarm as the session wires them."""

    def __init__(self, root: Path) -> None:
        self.run_dir = RunDir(root)
        self.run_dir.create()
        self.stops: list[str] = []
        self.events: list[ev.Event] = []
        self.journal = Journal(self.run_dir.journal)
        self.alarm = DiskAlarm(self.emit, self.stops.append, reserve=self.run_dir.make_reserve(256 * 1024))
        self.journal.on_write_error = self.alarm.trip
        self.store = ConsoleStore(SPEC.name, self.run_dir.vm_dir(SPEC.name), limit_bytes=64 << 20, emit=self.emit,
                                  on_write_error=self.alarm.write_failed)
        self.recorder = FailureRecorder(SPEC, self.run_dir, seed=1, soak_command=lambda _s: "soak run",
                                        faults=FaultDriver(SPEC.name, SPEC.faults, index_in_group=0, seed=1, emit=self.emit, memory_s=60),
                                        emit=self.emit, console=self.store, on_write_error=self.alarm.write_failed)

    def emit(self, event: ev.Event) -> None:
        self.events.append(event)
        self.journal.observe(event)


def fill(directory: Path, leave: int) -> None:
    """Take all free space of the file system but ``leave`` bytes."""
    st = os.statvfs(directory)
    with open(directory / "filler", "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


async def test_every_writer_on_a_full_disk(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "fs") as fs:
        run = Run(fs / "run")
        writer = asyncio.create_task(run.journal.writer())
        run.emit(ev.VmStarting(vm=SPEC.name, boot=1, pid=1, argv=["qemu"]))
        run.store.open_boot(1)
        fill(fs, leave=64 * 1024)
        for _ in range(64):  # 4 MiB of console into 64 KiB of room
            run.store.write(b"x" * 65535 + b"\n")
            await asyncio.sleep(0)
        await asyncio.sleep(0.2)  # the writer thread meets ENOSPC and tells the loop
        failure = await run.recorder.record(1, ["qemu"], Verdict(Kind.KERNEL_OOPS, "BUG: oops in f"),
                                            Evidence("console", report_text="BUG: ...\n" * 50_000))
        run.emit(ev.RunFinished(reason="disk-full", verdict="infra-error", failures=1, infra_problems=1))
        run.store.end_boot()
        await run.store.close()
        run.journal.close()
        await writer
        problems = write_summary_files(load_summary(run.run_dir.journal), run.run_dir.root)

        infra = [e for e in run.events if isinstance(e, ev.InfraProblem)]
        assert [(e.problem, e.vm) for e in infra] == [("disk-full", None)]  # the disk is the run's
        assert "No space left on device" in infra[0].message and run.stops == ["disk-full"]
        assert not (run.run_dir.root / ".soak-reserve").exists()
        assert failure.evidence_note.startswith("not written: ") or failure.evidence == ""
        journaled = read_journal(run.run_dir.journal).events
        assert [e.type for e in journaled if e.type in ("infra", "failure", "run-finished")] == [
            "infra", "failure", "run-finished"]
        assert run.store.dropped_bytes > 3 << 20
        assert problems == [] and (run.run_dir.root / "summary.json").exists()


@pytest.mark.qemu
async def test_a_flooding_guest_fills_a_small_disk_and_the_run_stops_cleanly(tmp_path: Path,
                                                                          default_image: GuestImage) -> None:
    initrd = flood_initrd(default_image, tmp_path / "i.gz")
    sockets = tmp_path / "s"
    sockets.mkdir()
    with small_tmpfs(tmp_path / "fs") as fs:
        run = Run(fs / "run")
        writer = asyncio.create_task(run.journal.writer())
        stop = asyncio.Event()
        run.alarm.stop = lambda reason: (run.stops.append(reason), stop.set())  # RunControl.request_stop
        qemu = await QemuProcess.spawn(build_argv(boot_config(default_image, initrd, sockets)),
                                       stderr_path=sockets / "stderr")
        reader = asyncio.create_task(ConsoleReader(qemu.console, run.store.open_boot(1), lambda _line: None).run())
        try:
            async with asyncio.timeout(120):
                await stop.wait()
        finally:
            await qemu.kill()
            await reader
            run.store.end_boot()
            await run.store.close()
        run.emit(ev.RunFinished(reason="disk-full", verdict="infra-error", failures=0, infra_problems=1))
        run.journal.close()
        await writer
        summary = load_summary(run.run_dir.journal)
        assert write_summary_files(summary, run.run_dir.root) == []
        assert run.stops == ["disk-full"]
        assert summary.finish_reason == "disk-full" and summary.verdict == "infra-error"
        assert [p["problem"] for p in summary.infra_problems] == ["disk-full"]
        assert summary.vms[SPEC.name].console_dropped_bytes > 0


async def test_the_free_disk_watch_stops_a_run_before_the_disk_is_full(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "fs") as fs:
        lows: list[str] = []
        watch = asyncio.create_task(watch_free_disk(fs, lambda total: total // 2, lows.append, every_s=0.05))
        await asyncio.sleep(0.2)
        assert not lows
        fill(fs, leave=1 << 20)
        await asyncio.wait_for(watch, timeout=5)
        assert len(lows) == 1 and "under run.min_free_disk" in lows[0]
