"""A VM's console kept within a bound: its boot heads, its newest output, what was dropped.

Storing: `ConsoleStore` keeps one VM's console within ``run.console_limit``
over all its boots: each boot's head and the newest output (the files and the
policy at the bound are in `soak.vm.segments`). The last `MEMORY_TAIL_BYTES`
also stay in memory, so evidence gets the lines before a report at once and
whole, even when the disk is slow or full. The store remembers where in the
console the output of each recent tenth of a second arrived (`INDEX_SPANS` of
them, `INDEX_GRAIN_S` each), so `around` gives
the bytes around the moment a failure was first seen, not only the newest:
under a flood the newest 64 KiB are a tenth of a second of noise.

Why a writer thread (`soak.diskio.WriterThread`) and not a write per chunk on
the event loop: a write to the page cache costs microseconds (bench/console.py),
but one write to a stalled disk (a dying drive, a hung NFS server, dirty-page
throttling) would stall every guest's watchers, which would then report hangs
that are soak's own. The loop only queues each chunk. The queue holds at most
`QUEUE_BYTES` per VM; a chunk that does not fit (the disk is stalled) is
dropped and counted, never waited for. A SIGKILL of soak loses only what is
queued, which is nothing but the chunk in flight unless the disk is stalled.

What the journal gets: `ConsoleDropped` with the bytes dropped so far, at most
once per ``report_every_s`` while dropping and at the end of each boot that
dropped; one `Observation` ``console-flood`` per VM when its output stays over
`FLOOD_BYTES_PER_S` for `FLOOD_WINDOW_S` (a guest's bug or a test's noise, not
soak's trouble and not a guest failure).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from soak import clock as run_clock
from soak import events as ev
from soak.diskio import WriterThread
from soak.units import format_bytes
from soak.vm.segments import ConsoleFiles

log = logging.getLogger(__name__)

QUEUE_BYTES = 1 << 20
"""Per VM: 2 s of the worst TCG flood seen (560 KB/s); a healthy disk never fills it."""
MEMORY_TAIL_BYTES = 64 * 1024
FLOOD_BYTES_PER_S = 64 * 1024
"""5 GiB a day: no healthy guest prints this much (an idle one prints nothing after its boot log)."""
FLOOD_WINDOW_S = 30.0
"""Sustained this long (output in at least half its seconds): a boot log or a long report is a burst."""
INDEX_SPANS = 1024
INDEX_GRAIN_S = 0.1
"""Chunks arriving within this of each other share one index span: 100 s of a flood at least
(far longer for a quiet guest), in at most 1024 small records per VM."""
TAIL_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 0.5
"""Per VM at the end of its runner: a stalled disk costs the end of a run at most this per VM."""


class FloodMeter:
    """A console's rate over the last ``window_s`` whole seconds; says when it is a flood.

    A flood is sustained: over ``threshold`` on average *and* output in at least half
    of the window's seconds, so a burst (a boot log, one long report) never counts.
    """

    def __init__(self, *, threshold: float = FLOOD_BYTES_PER_S, window_s: float = FLOOD_WINDOW_S) -> None:
        self.threshold = threshold
        self.window_s = window_s
        self._buckets: collections.deque[list[int]] = collections.deque()
        self._sum = 0
        self._first: int | None = None

    def add(self, now: float, n: int) -> float | None:
        """Count ``n`` bytes at ``now``; the rate (bytes/s) when it is a flood, else None."""
        second = int(now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += n
            self._sum += n
            return None
        # a new second: judge the window of whole seconds before it
        while self._buckets and self._buckets[0][0] < second - self.window_s:
            self._sum -= self._buckets.popleft()[1]
        if self._first is None:
            self._first = second
        watched = second - self._first >= self.window_s
        rate = self._sum / self.window_s
        busy = len(self._buckets) >= self.window_s / 2
        self._buckets.append([second, n])
        self._sum += n
        return rate if watched and busy and rate >= self.threshold else None


@dataclass(slots=True)
class _Span:
    """Output that arrived from ``since`` on, within `INDEX_GRAIN_S`: where it lies in memory and files."""

    since: float
    seen_start: int
    seen_end: int
    stored_start: int
    """Less than ``stored_end`` by what the writer thread took of it (not what the full queue refused)."""
    stored_end: int


class ConsoleStore:
    """One VM's console on disk within ``limit_bytes`` over all its boots (see the module docstring).

    Call `open_boot` at each boot and give its result to `ConsoleReader`;
    `close` when the VM is done. ``on_write_error(what, exc)`` is called once,
    on the event loop, when the disk refuses a write; the store then keeps
    only its memory tail and counts the rest as dropped.
    """

    def __init__(self, vm: str, directory: Path, *, limit_bytes: int,
                 emit: Callable[[ev.Event], None] = lambda _event: None,
                 on_write_error: Callable[[str, OSError], None] | None = None,
                 queue_bytes: int = QUEUE_BYTES, flood: FloodMeter | None = None,
                 report_every_s: float = 60.0, clock: Callable[[], float] = run_clock.now) -> None:
        self.vm = vm
        self.directory = directory
        self.limit_bytes = limit_bytes
        self.emit = emit
        self.on_write_error = on_write_error
        self.report_every_s = report_every_s
        self.clock = clock
        self._flood = flood or FloodMeter()
        self._flood_reported = False
        self._thread = WriterThread(f"soak console {vm}", max_pending_bytes=queue_bytes)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._files: ConsoleFiles | None = None
        """Created and used on the writer thread only."""
        self._failed = False
        self._memory: collections.deque[bytes] = collections.deque()
        """The newest chunks, at least `MEMORY_TAIL_BYTES` of them (kept, not copied)."""
        self._memory_bytes = 0
        self._memory_trimmed = False
        self._seen_position = 0
        """Bytes seen (markers included), the positions of `_memory`."""
        self._stored_position = 0
        """Bytes handed to the writer thread: positions in the files, from `_files_base`."""
        self._files_base = 0
        self._index: collections.deque[_Span] = collections.deque(maxlen=INDEX_SPANS)
        self.boot = 0
        self.seen_bytes = 0
        self.queue_dropped = 0
        """Chunks the full queue refused (loop side)."""
        self._refused = 0
        """Bytes not written after the disk refused once (writer thread side)."""
        self._boot_dropped_from = 0
        self._reported = 0
        self._next_report = 0.0

    # -------------------------------------------------------------- the loop side

    def open_boot(self, boot: int) -> ConsoleStore:
        """Start boot ``boot``: soak's marker line opens its head. Returns the sink to write to."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._thread.start()
        self.end_boot()
        self.boot = boot
        self._boot_dropped_from = self.dropped_bytes
        marker = f"\n===== soak: {self.vm} boot {boot} at {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n".encode()
        self._remember(marker)
        self._thread.submit(partial(self._begin_boot, boot, marker), len(marker), force=True)
        self._stored_position += len(marker)
        return self

    def write(self, data: bytes) -> None:
        """Queue a chunk the guest printed; drop and count it when the queue is full."""
        n = len(data)
        self.seen_bytes += n
        self._remember(data)
        stored = self._thread.submit(partial(self._append, data), n)
        if stored:
            self._stored_position += n
        else:
            self.queue_dropped += n
        now = self.clock()
        last = self._index[-1] if self._index else None
        if last is not None and now - last.since < INDEX_GRAIN_S:
            last.seen_end, last.stored_end = self._seen_position, self._stored_position
        else:
            self._index.append(_Span(now, self._seen_position - n, self._seen_position,
                                     self._stored_position - (n if stored else 0), self._stored_position))
        rate = self._flood.add(now, n)
        if rate is not None and not self._flood_reported:
            self._flood_reported = True
            self.emit(ev.Observation(
                vm=self.vm, topic="console-flood", value=round(rate),
                message=f"{self.vm} floods its console at {format_bytes(rate)}/s (boot {self.boot}); "
                        f"soak keeps each boot's head and its newest output within "
                        f"console_limit {format_bytes(self.limit_bytes)}"))
        if now >= self._next_report and self.dropped_bytes > self._reported:
            self._report_drops(now)

    def end_boot(self) -> None:
        """The boot is over: its drops (if any) go to the journal."""
        if not self.boot:
            return
        self._thread.submit(self._end_boot, force=True)
        if self.dropped_bytes > self._boot_dropped_from and self.dropped_bytes > self._reported:
            self._report_drops(self.clock())

    async def tail(self, n_bytes: int, *, timeout: float = TAIL_TIMEOUT_S) -> bytes:
        """The last ``n_bytes`` of the console: from memory when it holds them, else across segments."""
        if n_bytes <= self._memory_bytes or not self._memory_trimmed or not self._thread.alive:
            return self._memory_tail()[-n_bytes:]
        try:
            return await self._thread.run_after_pending(partial(self._read_tail, n_bytes), timeout)
        except (TimeoutError, OSError, RuntimeError) as exc:
            log.warning("%s: console tail from disk failed (%s); using the last %d bytes in memory",
                        self.vm, exc or "timeout", self._memory_bytes)
            return self._memory_tail()

    async def around(self, t: float, *, before: int, after: int, timeout: float = TAIL_TIMEOUT_S) -> bytes:
        """The console around time ``t`` (``self.clock``): the index span that had arrived
        by ``t`` (the line seen at ``t`` is in it), ``before`` bytes before it and at most
        ``after`` bytes after it. From memory when it still holds them, else from the files;
        the tail when ``t`` is older than the index.
        """
        span = next((span for span in reversed(self._index) if span.since <= t), None)
        if span is None:
            return await self.tail(before + after, timeout=timeout)
        start, end = max(0, span.seen_start - before), min(self._seen_position, span.seen_end + after)
        memory_start = self._seen_position - self._memory_bytes
        if start >= memory_start or not self._thread.alive:
            return self._memory_tail()[max(0, start - memory_start):end - memory_start]
        read = partial(self._read_range, max(0, span.stored_start - before),
                       min(self._stored_position, span.stored_end + after))
        try:
            return await self._thread.run_after_pending(read, timeout)
        except (TimeoutError, OSError, RuntimeError) as exc:
            log.warning("%s: console from disk failed (%s); using the last %d bytes in memory",
                        self.vm, exc or "timeout", self._memory_bytes)
            return self._memory_tail()

    async def close(self, *, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Write what is queued, close the files, stop the thread.

        Waits for the thread in real time, at most ``timeout`` seconds (a healthy disk
        takes microseconds), blocking: no loop timer races the thread, so a loop on a
        virtual clock (the runner's tests) closes as a real one does.
        """
        self.end_boot()
        if self._thread.alive:
            self._thread.submit(self._close_files, force=True)
            self._thread.stop()
            if not self._thread.join(timeout):
                log.warning("%s: %d console bytes still queued for a slow disk", self.vm, self._thread.pending_bytes)
        if self.dropped_bytes > self._reported:
            self._report_drops(self.clock())

    @property
    def dropped_bytes(self) -> int:
        files = self._files.dropped_bytes if self._files is not None else 0
        return files + self.queue_dropped + self._refused

    @property
    def kept_bytes(self) -> int:
        return self._files.kept_bytes if self._files is not None else 0

    def _remember(self, data: bytes) -> None:
        self._seen_position += len(data)
        self._memory.append(data)
        self._memory_bytes += len(data)
        while self._memory_bytes - len(self._memory[0]) >= MEMORY_TAIL_BYTES:
            self._memory_bytes -= len(self._memory.popleft())
            self._memory_trimmed = True

    def _memory_tail(self) -> bytes:
        return b"".join(self._memory)

    def _report_drops(self, now: float) -> None:
        self._reported = dropped = self.dropped_bytes
        self._next_report = now + self.report_every_s
        self.emit(ev.ConsoleDropped(vm=self.vm, boot=self.boot, dropped_bytes=dropped,
                                    kept_bytes=self.kept_bytes, limit_bytes=self.limit_bytes))

    def _write_failed(self, exc: OSError) -> None:
        if self.on_write_error is not None:
            self.on_write_error(f"the console of {self.vm}", exc)
        else:
            log.error("%s: console not written from now on: %s", self.vm, exc.strerror or exc)

    # ---------------------------------------------------------- the writer thread

    def _ensure_files(self) -> ConsoleFiles:
        if self._files is None:
            self._files = ConsoleFiles(self.directory, self.limit_bytes)
            self._files_base = self._files.written_bytes  # bytes of an earlier run in the directory
        return self._files

    def _begin_boot(self, boot: int, marker: bytes) -> None:
        self._guarded(lambda files: files.begin_boot(boot, marker), len(marker))

    def _append(self, data: bytes) -> None:
        self._guarded(lambda files: files.append(data), len(data))

    def _end_boot(self) -> None:
        if self._files is not None:
            self._files.end_boot()

    def _close_files(self) -> None:
        if self._files is not None:
            self._files.close()

    def _read_tail(self, n_bytes: int) -> bytes:
        return self._ensure_files().tail(n_bytes)

    def _read_range(self, start: int, end: int) -> bytes:
        files = self._ensure_files()
        return files.read(self._files_base + start, self._files_base + end)

    def _guarded(self, write: Callable[[ConsoleFiles], None], size: int) -> None:
        """After the disk refused once, count instead of writing (room for the journal)."""
        if self._failed:
            self._refused += size
            return
        try:
            write(self._ensure_files())
        except OSError as exc:
            self._failed = True
            if self._loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop is gone: soak is exiting anyway
                    self._loop.call_soon_threadsafe(self._write_failed, exc)
