"""Benchmark console storage: what a chunk costs the event loop, what a flood costs the disk.

Prints, for a run directory on the disk given by ``--dir`` (default: a temporary
directory under runs/, on the disk runs go to):

  * microseconds of event-loop time per chunk: a direct ``os.write`` (what soak
    did before) and `ConsoleStore.write` (a queue append), for a 100-byte line
    and a 64 KiB chunk; plus the direct write's p99.9 and worst case while the
    disk takes ``--flood-mib`` at full speed (what a stall costs every watcher);
  * how long a chunk waits in the queue before the kernel has it (all that a
    SIGKILL of soak can lose);
  * the flood one VM's store absorbs with no drop (MB/s), and what it keeps and
    drops of a flood many times its limit.

    .venv/bin/python bench/console.py [--dir DIR] [--flood-mib 512] [--limit-mib 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from soak.vm.console import ConsoleLog
from soak.vm.consolestore import ConsoleStore, FloodMeter

LINE = b"[  123.456789] a typical kernel console line of about one hundred bytes, printed by a guest\n"
CHUNK = bytes(range(32, 127)) * 689 + b"\n" * 10  # 64 KiB of printable text


def per_write_us(write: Callable[[bytes], object], data: bytes, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        write(data)
    return (time.perf_counter() - start) / n * 1e6


def direct_latencies(directory: Path, total_mib: int) -> list[float]:
    log = ConsoleLog(directory / "direct.log")
    times = []
    for _ in range(total_mib * 16):
        start = time.perf_counter()
        log.write(CHUNK)
        times.append(time.perf_counter() - start)
    log.close()
    os.unlink(directory / "direct.log")
    return times


async def store_costs(directory: Path, limit: int) -> tuple[float, float, float]:
    store = ConsoleStore("bench", directory, limit_bytes=limit, queue_bytes=256 << 20,
                         flood=FloodMeter(threshold=float("inf")))
    store.open_boot(1)
    line_us = per_write_us(store.write, LINE, 20_000)
    await store.tail(1)
    chunk_us = per_write_us(store.write, CHUNK, 2_000)
    queued_at = time.perf_counter()
    await store._thread.run_after_pending(lambda: None, 60)  # the queue drained: all is in the kernel
    drain_ms = (time.perf_counter() - queued_at) * 1e3
    await store.close()
    return line_us, chunk_us, drain_ms


async def queue_wait_ms(directory: Path, limit: int, chunks: int = 200) -> list[float]:
    """Time from `write` to the thread having written the chunk, at a TCG flood's pace (9 chunks/s x 4)."""
    store = ConsoleStore("bench", directory, limit_bytes=limit, flood=FloodMeter(threshold=float("inf")))
    store.open_boot(1)
    waits = []
    for _ in range(chunks):
        store.write(CHUNK)
        sent = time.perf_counter()
        await store._thread.run_after_pending(lambda: None, 10)
        waits.append((time.perf_counter() - sent) * 1e3)
        await asyncio.sleep(0.025)
    await store.close()
    return waits


async def absorbed(directory: Path, limit: int, total_mib: int) -> tuple[float, int, int, int]:
    """Feed chunks as fast as the loop can; (MB/s without drop, kept, dropped, on disk)."""
    store = ConsoleStore("bench", directory, limit_bytes=limit, flood=FloodMeter(threshold=float("inf")))
    store.open_boot(1)
    start = time.perf_counter()
    for _ in range(total_mib * 16):
        store.write(CHUNK)
        while store._thread.pending_bytes > 512 * 1024:  # pace at what the disk takes, as a flood would
            await asyncio.sleep(0.0005)
    await store._thread.run_after_pending(lambda: None, 60)
    rate = total_mib * (1 << 20) / (time.perf_counter() - start) / 1e6
    await store.close()
    on_disk = sum(p.stat().st_size for p in directory.glob("console*"))
    return rate, store.kept_bytes, store.dropped_bytes, on_disk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("runs"))
    parser.add_argument("--flood-mib", type=int, default=512)
    parser.add_argument("--limit-mib", type=int, default=64)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="bench-console-", dir=args.dir))
    limit = args.limit_mib << 20
    try:
        fd = os.open(base / "probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        direct_line = per_write_us(lambda data: os.write(fd, data), LINE, 20_000)
        direct_chunk = per_write_us(lambda data: os.write(fd, data), CHUNK, 2_000)
        os.close(fd)
        os.unlink(base / "probe")
        (base / "a").mkdir()
        line_us, chunk_us, drain_ms = asyncio.run(store_costs(base / "a", limit))
        print(f"event-loop cost per write: direct os.write: line {direct_line:.1f} us, 64 KiB {direct_chunk:.1f} us"
              f" | ConsoleStore.write: line {line_us:.1f} us, 64 KiB {chunk_us:.1f} us"
              f" (its thread then wrote the 127 MiB in {drain_ms:.0f} ms)")
        times = sorted(direct_latencies(base, args.flood_mib))
        p999 = times[int(len(times) * 0.999)] * 1e3
        print(f"direct 64 KiB writes, {args.flood_mib} MiB at full speed: median {statistics.median(times) * 1e6:.0f} us,"
              f" p99.9 {p999:.1f} ms, worst {times[-1] * 1e3:.1f} ms (each one a stall of every watcher)")
        (base / "b").mkdir()
        waits = sorted(asyncio.run(queue_wait_ms(base / "b", limit)))
        print(f"queue wait before the kernel has a chunk: median {statistics.median(waits):.2f} ms,"
              f" worst {waits[-1]:.1f} ms (what a SIGKILL of soak can lose)")
        (base / "c").mkdir()
        rate, kept, dropped, on_disk = asyncio.run(absorbed(base / "c", limit, args.flood_mib))
        print(f"flood absorbed by one VM's store: {rate:.0f} MB/s with no drop (TCG floods at 0.25-0.56 MB/s);"
              f" {args.flood_mib} MiB into console_limit {args.limit_mib} MiB: kept {kept / 2**20:.1f} MiB"
              f" (on disk {on_disk / 2**20:.1f} MiB), dropped {dropped / 2**20:.1f} MiB")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
