"""The serial console: drained continuously, every line handed on, the bytes kept within a bound.

Reading: QEMU blocks when nobody reads a chardev, so `ConsoleReader` never
stops reading while QEMU lives. Each complete line (without ``\\r\\n``) goes to
a callback, *every* line whatever storage keeps: a flood cannot hide a crash
printed in its middle. A line longer than ``max_line`` is cut, so a guest
printing without newlines cannot grow memory. A flooding guest gets one chunk
processed per turn of the event loop, so the other guests' watchers keep time.

Storing is `soak.vm.consolestore` (a bounded store per VM).
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


class ConsoleSink(Protocol):
    """Where console bytes go: a `ConsoleStore`'s boot."""

    def write(self, data: bytes) -> None: ...


class ConsoleReader:
    """Reads a console stream until EOF; counts what it saw."""

    def __init__(
        self,
        stream: ConsoleStream,
        log: ConsoleSink,
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


class ConsoleLog:
    """An unbounded append-only log written on the event loop.

    Superseded by `ConsoleStore`; kept until the guest runner opens its boots there.
    """

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


def read_tail(path: Path, limit: int = 64 * 1024) -> bytes:
    """The last ``limit`` bytes of one file (empty if it is missing): for QEMU's stderr log."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read()
    except OSError:
        return b""


def read_console_tail(directory: Path, n_bytes: int) -> bytes:
    """The last ``n_bytes`` of a VM's console as stored, across segments, without a live store.

    For evidence written without a `ConsoleStore` at hand, and for tools reading a finished run.
    """
    numbered = [p for p in directory.glob("console.*.log") if p.name.split(".")[1].isdigit()]
    files = [*sorted(numbered, key=lambda p: int(p.name.split(".")[1])), directory / "console.log"]
    parts: list[bytes] = []
    need = n_bytes
    for path in reversed(files):
        if need <= 0:
            break
        data = read_tail(path, need)
        parts.append(data)
        need -= len(data)
    return b"".join(reversed(parts))
