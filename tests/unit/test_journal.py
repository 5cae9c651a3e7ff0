"""The journal: written per record, read back tolerating a torn last line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from soak import events as ev
from soak.journal import Journal, read_journal
from soak.kinds import Kind


def heartbeat(t: float, seq: int, lateness: float = 0.0) -> ev.Heartbeat:
    return ev.Heartbeat(t=t, vm="a-0", seq=seq, uptime_s=seq, load1=0.1, mem_free_kib=1, mem_available_kib=2,
                        gap_s=1.0, lateness_s=lateness)


async def write(path: Path, events: list[ev.Event]) -> Journal:
    journal = Journal(path, sample_every=60)
    writer = asyncio.create_task(journal.writer())
    for event in events:
        journal.observe(event)
    journal.close()
    await writer
    return journal


async def test_round_trip(tmp_path: Path) -> None:
    failure = ev.Failure(vm="a-0", kind=Kind.KERNEL_PANIC, title="kernel panic: x", boot=1, detected_by="console")
    started = ev.RunStarted(run_id="r", profile="p", profile_path="p.toml", seed=1, accel="tcg", accel_reason="",
                            version="0", duration_s=60, command=["soak"],
                            vms=[ev.VmInfo(name="a-0", group="a", vcpus=2, memory_mib=256, machine="pc", image="i")])
    await write(tmp_path / "j.jsonl", [started, failure])
    contents = read_journal(tmp_path / "j.jsonl")
    assert contents.events == [started, failure]
    assert not contents.torn_tail and contents.skipped == 0


async def test_heartbeats_are_sampled_but_late_ones_kept(tmp_path: Path) -> None:
    beats = [heartbeat(1000.0 + i, i) for i in range(120)] + [heartbeat(1120.5, 120, lateness=3.0)]
    journal = await write(tmp_path / "j.jsonl", beats)
    kept = [e.seq for e in read_journal(tmp_path / "j.jsonl").events if isinstance(e, ev.Heartbeat)]
    assert kept == [0, 60, 120]
    assert journal.written == 3


def test_torn_last_line_and_garbage(tmp_path: Path) -> None:
    good = json.dumps(ev.to_record(ev.VmRetired(vm="a-0", reason="x")))
    path = tmp_path / "j.jsonl"
    path.write_text(f"{good}\nnot json\n{{\"type\": \"from-the-future\"}}\n{good}\n{good[:25]}")
    contents = read_journal(path)
    assert len(contents.events) == 2
    assert contents.torn_tail
    assert contents.skipped == 2
