"""The serial console: drained continuously, saved whole, handed on line by line.

QEMU blocks when nobody reads a chardev, so the reader never stops reading
while QEMU lives. Raw bytes go to the log with one unbuffered ``write`` per
chunk: what the guest printed is on disk even if soak is killed a moment later.
Each complete line (without ``\\r\\n``) goes to a callback; a line longer than
``max_line`` is cut, so a guest printing without newlines cannot grow memory.
A guest flooding its console gets one chunk processed per turn of the event
loop, so the other guests' watchers keep running on time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

CHUNK = 64 * 1024


class ConsoleStream(Protocol):
    """Where console bytes come from: QEMU's stdout pipe, or a fake machine's buffer."""

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; ``b""`` once the console is closed."""


class ConsoleLog:
    """An append-only console log file written without Python-side buffering."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class ConsoleReader:
    """Reads a console stream until EOF; counts what it saw."""

    def __init__(
        self,
        stream: ConsoleStream,
        log: ConsoleLog,
        on_line: Callable[[str], None],
        *,
        max_line: int = 4096,
    ) -> None:
        self._stream = stream
        self._log = log
        self._on_line = on_line
        self._max_line = max_line
        self._partial = b""
        self.bytes_read = 0
        self.lines = 0

    async def run(self) -> None:
        """Drain until QEMU closes the console; the last partial line is flushed."""
        while True:
            chunk = await self._stream.read(CHUNK)
            if not chunk:
                break
            self.bytes_read += len(chunk)
            self._log.write(chunk)
            self._split(chunk)
            await asyncio.sleep(0)  # fairness: a flood costs its own guest, not the others
        if self._partial:
            self._emit(self._partial)
            self._partial = b""

    def _split(self, chunk: bytes) -> None:
        data = self._partial + chunk if self._partial else chunk
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            self._emit(data[start:end])
            start = end + 1
        rest = data[start:]
        while len(rest) > self._max_line:
            self._emit(rest[: self._max_line])
            rest = rest[self._max_line :]
        self._partial = rest

    def _emit(self, raw: bytes) -> None:
        self.lines += 1
        self._on_line(raw.rstrip(b"\r").decode("utf-8", "replace"))


def read_tail(path: Path, limit: int = 64 * 1024) -> bytes:
    """The last ``limit`` bytes of a log, for evidence (empty if the file is missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read()
    except OSError:
        return b""
