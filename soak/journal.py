"""The run journal: append-only JSONL, one event per line, the record of a run.

Writing: `Journal` is an observer; `observe` only queues, and one writer
thread (soak.diskio.WriterThread) appends each record with one ``write``, so
a stalled disk never stalls the event loop, and a crash of soak loses at most
the records still queued (a torn last line at worst). High-rate events are
sampled here (one heartbeat and one process sample per VM per ``sample_every``
seconds, plus every late heartbeat) so a run of many days keeps a journal of
bounded rate.

The policy when the disk is slower than the events: once ``backlog_bytes``
wait in the queue, *sampled* records (heartbeats, process samples, workload
figures) are dropped and counted, and the count is journaled (`JournalDropped`,
at most once a minute and at the end). Failures, faults and lifecycle records
are never dropped: they are few, and if they pile up past ``stall_bytes`` the
disk has stopped taking writes, which is reported like a full disk.

A write the disk refuses (full, read-only) is reported once through
``on_write_error`` (the run's `soak.diskio.DiskAlarm`: an InfraProblem and a
clean stop); the records are kept in memory (at most `UNWRITTEN_MAX`) and
retried with each later record and at the end, when the alarm has freed its
reserve.

Reading: `JournalReading` streams the events of a journal line by line and
`read_journal` lists them; both tolerate a torn last line and skip (and count)
records they do not understand or that fail validation (a wrong type, a
missing field: see `events.from_record`), so `soak summary` works on a run
that crashed, is still running, or whose journal was damaged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak.diskio import WriterThread, write_problem
from soak.events import (
    Event,
    Heartbeat,
    JournalDropped,
    ProcessSample,
    RecordError,
    WorkloadMetrics,
    from_record,
    to_record,
)

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"
SAMPLED = (Heartbeat, ProcessSample, WorkloadMetrics)
"""Records that may be dropped when the disk falls behind; every other record is kept."""
BACKLOG_BYTES = 256 * 1024
STALL_BYTES = 16 << 20
UNWRITTEN_MAX = 20_000
CLOSE_TIMEOUT_S = 30.0
DROPPED_REPORT_S = 60.0


class Journal:
    """Appends events to ``journal.jsonl``; run `writer()` as a task, `close()` at the end."""

    def __init__(self, path: Path, *, sample_every: float = 60.0, late_s: float = 0.5,
                 backlog_bytes: int = BACKLOG_BYTES, stall_bytes: int = STALL_BYTES,
                 on_write_error: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """:param on_write_error: ``(problem, message)`` once, on the event loop, when the disk
            refuses a record (``disk-full``, ``disk-error``) or stops taking them (``disk-stalled``).
        """
        self.path = path
        self._sample_every = sample_every
        self._late_s = late_s
        self._stall_bytes = stall_bytes
        self.on_write_error = on_write_error
        self._clock = clock
        self._thread = WriterThread("soak journal", max_pending_bytes=backlog_bytes)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_sampled: dict[tuple[str, str], float] = {}
        self._closed = False
        self._stop_requested = asyncio.Event()
        self._reported_trouble = False
        self.written = 0
        self.dropped = 0
        """Sampled records dropped because the disk fell behind."""
        self._dropped_journaled = 0
        self._next_dropped_report = 0.0
        self._fd = -1
        self._unwritten: list[bytes] = []
        self.lost = 0
        """Records neither written nor kept (past `UNWRITTEN_MAX` while the disk refused)."""

    def observe(self, event: Event) -> None:
        if self._closed or not self._keep(event):
            return
        line = (json.dumps(to_record(event), separators=(",", ":")) + "\n").encode()
        if isinstance(event, SAMPLED):
            if not self._thread.submit(lambda: self._write(line), len(line)):
                self.dropped += 1
                self._journal_dropped(final=False)
            return
        self._thread.submit(lambda: self._write(line), len(line), force=True)
        if self._thread.pending_bytes > self._stall_bytes:
            self._trouble("disk-stalled", f"the journal's disk took no writes while "
                                          f"{self._thread.pending_bytes} bytes of records waited")

    def _keep(self, event: Event) -> bool:
        if isinstance(event, Heartbeat) and event.lateness_s >= self._late_s:
            return True
        if isinstance(event, Heartbeat | ProcessSample):
            key = (event.type, event.vm)
            last = self._last_sampled.get(key)
            if last is not None and event.t - last < self._sample_every:
                return False
            self._last_sampled[key] = event.t
        return True

    async def writer(self) -> None:
        """Write records until `close`; then the queued ones, for at most `CLOSE_TIMEOUT_S`.

        The end waits for the thread in real time, blocking (the run is over by then):
        no loop timer races the thread, on a real or a virtual clock.
        """
        self._loop = asyncio.get_running_loop()
        self._thread.start()
        deadline = 1.0  # cancelled (a second Ctrl-C): give queued records a moment only
        try:
            await self._stop_requested.wait()
            self._journal_dropped(final=True)
            deadline = CLOSE_TIMEOUT_S
        finally:
            self._thread.submit(self._finish, force=True)
            self._thread.stop()
            if not self._thread.join(deadline):
                log.error("journal: the disk did not take the last %d bytes of records within %.0fs",
                          self._thread.pending_bytes, deadline)

    def close(self) -> None:
        """No more records; the writer finishes what is queued, then returns."""
        if not self._closed:
            self._closed = True
            self._stop_requested.set()

    def _journal_dropped(self, *, final: bool) -> None:
        now = self._clock()
        if self.dropped == self._dropped_journaled or (not final and now < self._next_dropped_report):
            return
        self._dropped_journaled = self.dropped
        self._next_dropped_report = now + DROPPED_REPORT_S
        line = (json.dumps(to_record(JournalDropped(dropped=self.dropped)), separators=(",", ":")) + "\n")
        self._thread.submit(lambda: self._write(line.encode()), force=True)
        log.warning("journal: %d sampled records dropped so far (the disk is slower than the events)",
                    self.dropped)

    def _trouble(self, problem: str, message: str) -> None:
        """Once per journal, on the event loop."""
        if self._reported_trouble:
            return
        self._reported_trouble = True
        if self.on_write_error is not None:
            self.on_write_error(problem, message)
        else:
            log.error("journal: %s: %s", problem, message)

    # ---------------------------------------------------------- the writer thread

    def _write(self, line: bytes) -> None:
        self._unwritten.append(line)
        if len(self._unwritten) > UNWRITTEN_MAX:
            self._unwritten.pop(0)
            self.lost += 1
        self._flush_unwritten()

    def _flush_unwritten(self) -> bool:
        try:
            if self._fd < 0:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            while self._unwritten:
                data = self._unwritten[0]
                written = os.write(self._fd, data)
                if written < len(data):  # a short write: the disk is full; keep the rest for later
                    self._unwritten[0] = data[written:]
                    raise OSError(28, os.strerror(28), str(self.path))
                self._unwritten.pop(0)
                self.written += 1
        except OSError as exc:
            problem, message = write_problem("the journal", exc)
            if self._loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop is gone: soak is exiting
                    self._loop.call_soon_threadsafe(self._trouble, problem, message)
            return False
        return True

    def _finish(self) -> None:
        self._flush_unwritten()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._unwritten or self.lost:
            log.error("journal: %d records could not be written (and %d lost): the disk refused them",
                      len(self._unwritten), self.lost)

    @property
    def unwritten(self) -> int:
        """Records still waiting for the disk (it refused them)."""
        return len(self._unwritten) + self.lost


@dataclass
class JournalReading:
    """What reading a journal found beyond its events (filled in while `events` is iterated)."""

    path: Path
    torn_tail: bool = False
    """The last line was cut short (soak was killed while writing it)."""
    skipped: int = 0
    """Records that could not be understood: not JSON, not an object, an unknown type
    (a newer soak), a missing field or a value of the wrong type (see `events.from_record`)."""

    def events(self) -> Iterator[Event]:
        """The journal's events in order, one line at a time (constant memory, however long
        the run); damaged records are counted in `skipped` / `torn_tail`, never raised.

        :raise FileNotFoundError: no journal at `path`.
        """
        with open(self.path, encoding="utf-8", errors="replace", newline="\n") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record: Any = json.loads(line)
                    if not isinstance(record, dict):
                        raise RecordError("not an object")
                    event = from_record(record)
                except (ValueError, RecursionError) as exc:  # JSONDecodeError and RecordError are ValueErrors
                    if not line.endswith("\n"):  # the last line, cut short
                        self.torn_tail = True
                    else:
                        self.skipped += 1
                        log.debug("journal %s line %d skipped: %s", self.path, number, exc)
                    continue
                yield event


@dataclass
class JournalContents:
    events: list[Event] = field(default_factory=list)
    torn_tail: bool = False
    """The last line was cut short (soak was killed while writing it)."""
    skipped: int = 0
    """Records that could not be understood (see `JournalReading.skipped`)."""


def read_journal(path: Path) -> JournalContents:
    """Every event in a journal as a list, tolerating damage (see the module docstring).
    For long runs prefer iterating `JournalReading(path).events()`, which keeps no list.

    :raise FileNotFoundError: no journal at ``path``.
    """
    reading = JournalReading(path)
    events = list(reading.events())
    return JournalContents(events, reading.torn_tail, reading.skipped)
