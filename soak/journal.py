"""The run journal: append-only JSONL, one event per line, the record of a run.

Writing: `Journal` is an observer; `observe` only enqueues, and one writer task
appends each record with aiofiles and flushes it, so a crash of soak loses at
most the record being written (a torn last line). High-rate events are sampled
here (one heartbeat and one process sample per VM per ``sample_every``
seconds, plus every late heartbeat) so a run of many days keeps a journal of
bounded rate.

Reading: `JournalReading` streams the events of a journal line by line and
`read_journal` lists them; both tolerate a torn last line and skip (and count)
records they do not understand or that fail validation (a wrong type, a
missing field: see `events.from_record`), so `soak summary` works on a run
that crashed, is still running, or whose journal was damaged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiofiles

from soak.events import (
    Event,
    Heartbeat,
    ProcessSample,
    RecordError,
    from_record,
    to_record,
)

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"


class Journal:
    """Appends events to ``journal.jsonl``; run `writer()` as a task, `close()` at the end."""

    def __init__(self, path: Path, *, sample_every: float = 60.0, late_s: float = 0.5) -> None:
        self.path = path
        self._sample_every = sample_every
        self._late_s = late_s
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._last_sampled: dict[tuple[str, str], float] = {}
        self._closed = False
        self.written = 0

    def observe(self, event: Event) -> None:
        if self._closed or not self._keep(event):
            return
        self._queue.put_nowait(json.dumps(to_record(event), separators=(",", ":")) + "\n")

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
        """Write records until `close`; each record is flushed before the next."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        async with aiofiles.open(self.path, "a", encoding="utf-8") as f:
            while (line := await self._queue.get()) is not None:
                await f.write(line)
                await f.flush()
                self.written += 1

    def close(self) -> None:
        """No more records; the writer finishes what is queued, then returns."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)


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
