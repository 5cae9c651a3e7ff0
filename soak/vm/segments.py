"""One VM's console on disk: the head of every boot and a rolling tail, within one byte limit.

Files in the VM's directory::

    console.log              the live segment: the newest bytes; the whole console until it is full
    console.0001.log ...     older segments, numbered in the order they were written
    console.head-B.log       the first bytes of boot B (its boot log), kept when its segment was dropped

``cat console.[0-9]*.log console.log`` is the console in order, with a gap where
old segments were dropped. A run whose guests print less than ``segment_bytes``
per VM (every normal run) has only ``console.log``, exactly as before.

The bound: all these files together stay within ``limit``. When the live
segment reaches ``segment_bytes`` (limit / 8) it becomes the next numbered
segment, then the oldest segments are deleted until the rest leaves room for a
full live segment again. Before a segment goes, the head (``head_bytes``, at
most 1 MiB) of every boot that starts in it is copied to ``console.head-B.log``,
so a flood never costs a boot log. Heads count against the limit; when
segments alone cannot make room, the oldest heads go too.

Plain synchronous file I/O, meant for one writer thread (soak.vm.console):
nothing here is shared with the event loop but integer counters.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

LIVE_NAME = "console.log"
_SEGMENT = re.compile(r"^console\.(\d+)\.log$")
_HEAD = re.compile(r"^console\.head-(\d+)\.log$")
MAX_HEAD_BYTES = 1 << 20
"""A kernel boot log is 20-60 KiB (22 KiB for soak's default image); a debug kernel's can be more."""


@dataclass
class _Span:
    """Bytes ``[start, end)`` of the VM's console, counted over all its boots."""

    start: int
    end: int

    def overlap(self, start: int, end: int) -> int:
        return max(0, min(self.end, end) - max(self.start, start))


@dataclass
class _Segment(_Span):
    number: int


@dataclass
class _Head(_Span):
    boot: int
    path: Path


@dataclass
class _Boot:
    number: int
    start: int
    end: int | None = None


class ConsoleFiles:
    """Appends a VM's console to rotating segments; counts what the limit made it drop."""

    def __init__(self, directory: Path, limit: int) -> None:
        self.directory = directory
        self.limit = limit
        self.segment_bytes = max(4096, limit // 8)
        self.head_bytes = min(MAX_HEAD_BYTES, self.segment_bytes)
        self.dropped_bytes = 0
        """Bytes of the console no longer on disk (dropped segments, less the heads saved from them)."""
        self._segments: list[_Segment] = []
        self._heads: list[_Head] = []
        self._boots: list[_Boot] = []
        """Boots whose head still lies in the segments (not yet copied to a head file)."""
        self._position = 0
        self._live_start = 0
        self._next_number = 1
        self._fd = -1
        self._adopt_existing()

    # ------------------------------------------------------------------ writing

    def begin_boot(self, boot: int, marker: bytes) -> None:
        """A new boot starts here; ``marker`` (soak's boot line) opens its head."""
        self.end_boot()
        self._boots.append(_Boot(boot, self._position))
        self.append(marker)

    def end_boot(self) -> None:
        if self._boots and self._boots[-1].end is None:
            self._boots[-1].end = self._position

    def append(self, data: bytes) -> None:
        """Write ``data``, rotating as segments fill.

        :raise OSError: the disk refused; what was not written is counted as dropped.
        """
        view = memoryview(data)
        try:
            while view:
                room = self.segment_bytes - (self._position - self._live_start)
                if room <= 0:
                    self._rotate()
                    continue
                written = os.write(self._live_fd(), view[:room])
                self._position += written
                view = view[written:]
        except OSError:
            self.dropped_bytes += len(view)
            raise

    def close(self) -> None:
        self.end_boot()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def kept_bytes(self) -> int:
        return (sum(s.end - s.start for s in self._segments) + (self._position - self._live_start)
                + sum(h.end - h.start for h in self._heads))

    @property
    def written_bytes(self) -> int:
        """Every byte appended (kept or since dropped), this run and any before in the directory."""
        return self._position

    # ------------------------------------------------------------------ reading

    def tail(self, n_bytes: int) -> bytes:
        """The last ``n_bytes`` of the console, read across segments (less if fewer are kept)."""
        start = max(self._position - n_bytes, self._segments[0].start if self._segments else self._live_start)
        return self._read(start, self._position)

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the console (positions as in `written_bytes`), those still kept."""
        return self._read(max(0, start), min(end, self._position))

    def _read(self, start: int, end: int) -> bytes:
        parts: list[bytes] = []
        live = _Segment(self._live_start, self._position, 0)
        for segment in [*self._segments, live]:
            lo, hi = max(start, segment.start), min(end, segment.end)
            if lo >= hi:
                continue
            path = self.directory / LIVE_NAME if segment is live else self._segment_path(segment.number)
            try:
                with open(path, "rb") as f:
                    f.seek(lo - segment.start)
                    parts.append(f.read(hi - lo))
            except OSError:
                continue  # deleted behind our back: the rest is still worth having
        return b"".join(parts)

    # ----------------------------------------------------------------- rotation

    def _live_fd(self) -> int:
        if self._fd < 0:
            self._fd = os.open(self.directory / LIVE_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return self._fd

    def _segment_path(self, number: int) -> Path:
        return self.directory / f"console.{number:04d}.log"

    def _rotate(self) -> None:
        os.close(self._live_fd())
        self._fd = -1
        number = self._next_number
        os.rename(self.directory / LIVE_NAME, self._segment_path(number))
        self._next_number += 1
        self._segments.append(_Segment(self._live_start, self._position, number))
        self._live_start = self._position
        self._make_room(self.limit - self.segment_bytes)

    def _make_room(self, budget: int) -> None:
        while self.kept_bytes > budget:
            if self._segments:
                self._drop_segment(self._segments[0])
            elif (heads := [h for h in self._heads if not self._is_current(h.boot)]):
                self._drop_head(heads[0])
            else:
                return

    def _is_current(self, boot: int) -> bool:
        return bool(self._boots) and self._boots[-1].number == boot and self._boots[-1].end is None

    def _drop_segment(self, segment: _Segment) -> None:
        for boot in [b for b in self._boots if b.start < segment.end]:
            self._save_head(boot)
        self._segments.remove(segment)
        rescued = sum(h.overlap(segment.start, segment.end) for h in self._heads)
        self.dropped_bytes += (segment.end - segment.start) - rescued
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._segment_path(segment.number))

    def _save_head(self, boot: _Boot) -> None:
        self._boots.remove(boot)
        end = min(boot.start + self.head_bytes, self._position if boot.end is None else boot.end)
        path = self.directory / f"console.head-{boot.number}.log"
        for stale in [h for h in self._heads if h.path == path]:  # left by an earlier run here
            self._drop_head(stale)
        with open(path, "wb") as f:
            f.write(self._read(boot.start, end))
        self._heads.append(_Head(boot.start, end, boot.number, path))

    def _drop_head(self, head: _Head) -> None:
        self._heads.remove(head)
        oldest = self._segments[0].start if self._segments else self._live_start
        self.dropped_bytes += head.overlap(head.start, oldest)  # its bytes that no segment holds
        with contextlib.suppress(FileNotFoundError):
            os.unlink(head.path)

    def _adopt_existing(self) -> None:
        """Files of an earlier run in the same directory count against the limit too."""
        numbered: list[tuple[int, Path]] = []
        for path in self.directory.glob("console.*"):
            if match := _SEGMENT.match(path.name):
                numbered.append((int(match.group(1)), path))
            elif match := _HEAD.match(path.name):
                size = path.stat().st_size
                self._heads.append(_Head(-size, 0, int(match.group(1)), path))  # no segment overlaps
        for number, path in sorted(numbered):
            size = path.stat().st_size
            self._segments.append(_Segment(self._position, self._position + size, number))
            self._position += size
            self._next_number = number + 1
        live = self.directory / LIVE_NAME
        self._live_start = self._position
        if live.exists():
            self._position += live.stat().st_size
        self._make_room(self.limit - self.segment_bytes)
