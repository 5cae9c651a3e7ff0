"""The cpio "newc" format the Linux kernel unpacks as an initramfs, written in pure Python.

Writing it ourselves needs neither ``cpio`` nor root: device nodes such as
``/dev/console`` are just headers. Output is reproducible: every entry gets
uid/gid 0, mtime 0 and an inode number from a counter, so the same inputs give
the same bytes. The reader exists for tests and for checking a built image.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from soak.errors import ImageError

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
_CHUNK = 1 << 20


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, mode: int, nlink: int, size: int, name: bytes, rdev: tuple[int, int]) -> bytes:
    fields = (ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
    return MAGIC + b"".join(b"%08X" % f for f in fields)


class CpioWriter:
    """Writes newc entries to a binary stream; parent directories are added on demand."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._ino = 0
        self._names: set[str] = set()
        self._closed = False

    def _entry(self, name: str, mode: int, size: int, rdev: tuple[int, int] = (0, 0)) -> None:
        name = _normalize(name)
        if name in self._names:
            raise ImageError(f"initramfs: duplicate entry {name!r}")
        parent = str(PurePosixPath(name).parent)
        if parent != "." and parent not in self._names:
            self.add_dir(parent)
        self._names.add(name)
        self._ino += 1
        raw = name.encode()
        nlink = 2 if stat.S_ISDIR(mode) else 1
        header = _header(self._ino, mode, nlink, size, raw, rdev) + raw + b"\0"
        self._out.write(header + _pad(len(header)))

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | mode, 0)

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, len(data))
        self._out.write(data + _pad(len(data)))

    def add_file(self, name: str, source: Path, mode: int | None = None) -> None:
        """Add ``source``'s contents (symlinks followed), streamed in chunks."""
        st = source.stat()
        self._entry(name, stat.S_IFREG | (stat.S_IMODE(st.st_mode) if mode is None else mode), st.st_size)
        written = 0
        with source.open("rb") as f:
            while chunk := f.read(_CHUNK):
                self._out.write(chunk)
                written += len(chunk)
        if written != st.st_size:
            raise ImageError(f"{source} changed size while being added to the initramfs")
        self._out.write(_pad(written))

    def add_symlink(self, name: str, target: str) -> None:
        raw = target.encode()
        self._entry(name, stat.S_IFLNK | 0o777, len(raw))
        self._out.write(raw + _pad(len(raw)))

    def add_char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, 0, (major, minor))

    def __contains__(self, name: str) -> bool:
        return _normalize(name) in self._names

    def close(self) -> None:
        """Write the trailer; the stream itself stays open."""
        if not self._closed:
            self._closed = True
            raw = TRAILER.encode()
            header = _header(0, 0, 1, 0, raw, (0, 0)) + raw + b"\0"
            self._out.write(header + _pad(len(header)))


def _normalize(name: str) -> str:
    """Archive names are relative ("bin/sh"), as the kernel and ``cpio -i`` expect."""
    clean = str(PurePosixPath("/", name))[1:]
    if not clean or ".." in PurePosixPath(clean).parts:
        raise ImageError(f"initramfs: bad entry name {name!r}")
    return clean


@dataclass(frozen=True, slots=True)
class CpioEntry:
    name: str
    mode: int
    data: bytes
    """File contents, or the target of a symlink."""
    rdev: tuple[int, int] = (0, 0)


def read_cpio(data: bytes) -> Iterator[CpioEntry]:
    """The entries of a newc archive up to its trailer."""
    pos = 0
    while True:
        if data[pos : pos + 6] != MAGIC:
            raise ImageError(f"cpio: bad magic at offset {pos}")
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rdev, namesize = fields[1], fields[6], (fields[9], fields[10]), fields[11]
        name_start = pos + 110
        name = data[name_start : name_start + namesize - 1].decode()
        pos = name_start + namesize
        pos += -pos % 4
        if name == TRAILER:
            return
        body = data[pos : pos + size]
        pos += size
        pos += -pos % 4
        yield CpioEntry(name=name, mode=mode, data=body, rdev=rdev)
