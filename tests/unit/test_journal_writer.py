"""The journal writer: off the event loop, a drop policy when the disk falls behind, errors once."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from soak import events as ev
from soak.journal import Journal, read_journal
from soak.kinds import Kind


def heartbeat(vm: str, t: float = 1000.0) -> ev.Heartbeat:
    return ev.Heartbeat(t=t, vm=vm, seq=1, uptime_s=1, load1=0.1, mem_free_kib=1, mem_available_kib=2,
                        gap_s=1.0, lateness_s=0.0)


def failure(n: int) -> ev.Failure:
    return ev.Failure(vm="a-0", kind=Kind.KERNEL_WARNING, title=f"WARNING in f{n}", boot=1, detected_by="console")


async def test_a_slow_disk_costs_sampled_records_never_failures(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl", backlog_bytes=16 * 1024)
    writer = asyncio.create_task(journal.writer())
    await asyncio.sleep(0)
    stall = threading.Event()
    journal._thread.submit(stall.wait, force=True)  # the disk stops answering for a while
    for i in range(500):
        journal.observe(heartbeat(f"vm-{i}"))  # one per VM: all pass the sampling
        if i % 50 == 0:
            journal.observe(failure(i))
    stall.set()
    journal.close()
    await writer
    events = read_journal(tmp_path / "j.jsonl").events
    assert [e.title for e in events if isinstance(e, ev.Failure)] == [f"WARNING in f{i}" for i in range(0, 500, 50)]
    beats = [e for e in events if isinstance(e, ev.Heartbeat)]
    assert 0 < len(beats) < 500
    assert journal.dropped == 500 - len(beats)
    drops = [e for e in events if isinstance(e, ev.JournalDropped)]
    assert drops and drops[-1].dropped == journal.dropped


async def test_a_refused_write_is_reported_once_and_kept_for_later(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.mkdir()  # the journal cannot be opened: as a disk that refuses every write
    troubles: list[tuple[str, str]] = []
    journal = Journal(path, on_write_error=lambda problem, message: troubles.append((problem, message)))
    writer = asyncio.create_task(journal.writer())
    for i in range(3):
        journal.observe(failure(i))
    await asyncio.sleep(0.1)
    path.rmdir()  # space came back (the DiskAlarm released its reserve)
    journal.observe(failure(3))
    journal.close()
    await writer
    assert len(troubles) == 1 and troubles[0][0] == "disk-error" and "cannot write the journal" in troubles[0][1]
    assert [e.title for e in read_journal(path).events] == [f"WARNING in f{i}" for i in range(4)]
    assert journal.unwritten == 0
