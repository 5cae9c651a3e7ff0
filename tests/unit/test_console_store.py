"""The console store: bounded files written off the event loop, drops journaled, floods observed."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from soak import events as ev
from soak.vm.consolestore import MEMORY_TAIL_BYTES, ConsoleStore, FloodMeter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def on_disk(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("console*"))


async def test_boots_are_stored_with_markers_and_tail_comes_from_memory(tmp_path: Path) -> None:
    events: list[ev.Event] = []
    store = ConsoleStore("vm-0", tmp_path, limit_bytes=1 << 20, emit=events.append)
    sink = store.open_boot(1)
    sink.write(b"Linux version 6.1\n")
    sink.write(b"hello\n")
    assert await store.tail(6) == b"hello\n"
    store.open_boot(2)
    store.write(b"second boot\n")
    await store.close()
    text = (tmp_path / "console.log").read_text()
    assert "===== soak: vm-0 boot 1 at" in text and "===== soak: vm-0 boot 2 at" in text
    assert text.endswith("second boot\n")
    assert events == []  # nothing dropped, no flood


async def test_a_flood_stays_within_the_limit_is_journaled_and_observed_once(tmp_path: Path) -> None:
    events: list[ev.Event] = []
    clock = Clock()
    store = ConsoleStore("vm-0", tmp_path, limit_bytes=256 * 1024, emit=events.append, clock=clock,
                         flood=FloodMeter(window_s=10), report_every_s=30)
    store.open_boot(1)
    store.write(b"Linux version 6.1\n")
    chunk = bytes(range(32, 127)) * 690  # 65 KiB
    for _ in range(200):  # 13 MiB at 650 KiB/s
        store.write(chunk)
        clock.now += 0.1
        if len(events) > 3:
            break
    store.end_boot()
    await store.close()
    assert on_disk(tmp_path) <= 256 * 1024
    assert (tmp_path / "console.head-1.log").read_bytes().count(b"Linux version 6.1") == 1
    floods = [e for e in events if isinstance(e, ev.Observation)]
    assert len(floods) == 1 and floods[0].topic == "console-flood" and floods[0].value > 600_000
    drops = [e for e in events if isinstance(e, ev.ConsoleDropped)]
    assert drops and all(d.limit_bytes == 256 * 1024 and d.kept_bytes <= 256 * 1024 for d in drops)
    assert [d.dropped_bytes for d in drops] == sorted(d.dropped_bytes for d in drops)
    assert drops[-1].dropped_bytes == store.dropped_bytes > 0
    assert drops[-1].dropped_bytes + store.kept_bytes >= store.seen_bytes - 3 * 1024  # heads are copies


async def test_a_stalled_disk_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    store = ConsoleStore("vm-0", tmp_path, limit_bytes=1 << 20, queue_bytes=256 * 1024)
    store.open_boot(1)
    await store._thread.run_after_pending(lambda: None, 5)  # the marker is written
    stall = threading.Event()
    store._thread.submit(stall.wait, force=True)  # the disk stops answering
    chunk = b"x" * 64 * 1024
    for _ in range(10):
        store.write(chunk)  # returns at once: the loop never waits for the disk
    assert store.queue_dropped == 6 * len(chunk)
    store.write(b"the last line\n")  # past the full queue too, yet evidence still sees it
    assert (await store.tail(14)) == b"the last line\n"
    stall.set()
    await store.close()
    marker = len("\n===== soak: vm-0 boot 1 at 2026-11-30 10:33:03 =====\n")
    assert on_disk(tmp_path) == marker + 4 * len(chunk)
    assert store.dropped_bytes == 6 * len(chunk) + 14


async def test_around_gives_the_console_of_a_moment_not_only_the_newest(tmp_path: Path) -> None:
    clock = Clock()
    store = ConsoleStore("vm-0", tmp_path, limit_bytes=4 << 20, clock=clock)
    store.open_boot(1)
    noise = b"n" * 4095 + b"\n"
    for second in range(60):
        if second == 30:
            store.write(b"Kernel panic - not syncing: in the middle\n")
        for _ in range(16):
            store.write(noise)
        await store._thread.run_after_pending(lambda: None, 5)  # a disk that keeps up
        clock.now += 1
    assert store.queue_dropped == 0
    crash_seen = 1030.5  # the line came in the second that began at 1030
    evidence = await store.around(crash_seen, before=8192, after=8192)
    assert evidence.index(b"Kernel panic - not syncing: in the middle") == 8192
    assert len(evidence) == 8192 + 42 + 16 * 4096 + 8192
    assert b"Kernel panic" not in await store.tail(MEMORY_TAIL_BYTES)  # the flood pushed it out of the tail
    await store.close()


async def test_a_disk_that_refuses_is_reported_once_and_the_rest_counted(tmp_path: Path) -> None:
    (tmp_path / "console.log").mkdir()  # every open of the live file fails (EISDIR), as a full disk would
    errors: list[tuple[str, OSError]] = []
    store = ConsoleStore("vm-0", tmp_path, limit_bytes=1 << 20,
                         on_write_error=lambda what, exc: errors.append((what, exc)))
    store.open_boot(1)
    for _ in range(5):
        store.write(b"line\n")
    assert await store.tail(5) == b"line\n"
    await store.close()
    await asyncio.sleep(0)  # the writer thread's report reaches the loop
    assert len(errors) == 1 and errors[0][0] == "the console of vm-0"
    marker = store._memory_tail().index(b"line")
    assert store.dropped_bytes == marker + store.seen_bytes


def test_flood_meter_ignores_a_burst_and_sees_a_sustained_rate() -> None:
    meter = FloodMeter(threshold=64 * 1024, window_s=30)
    assert all(meter.add(100.0 + i * 0.1, 1_000_000) is None for i in range(20))  # a 20 MB burst
    quiet = [meter.add(102.0 + s, 100) for s in range(0, 60, 3)]
    assert quiet == [None] * 20
    rates = [meter.add(200.0 + s, 100_000) for s in range(40)]
    assert rates[:16] == [None] * 16  # a flood is only a flood once it lasted half the window
    assert rates[31] is not None and 90_000 < rates[31] <= 100_000
