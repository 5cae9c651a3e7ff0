"""A minimal ELF64 reader: what a binary needs at run time, and a module's modinfo.

The image carries stress-ng's shared libraries from Debian debs, not from the
host, so we must know which sonames a binary asks for (DT_NEEDED) and which
loader it names (PT_INTERP) without running ``ldd``. Kernel modules keep their
dependencies in the ``.modinfo`` section (``depends=a,b``). Only what those
questions need is parsed: little-endian ELF, 64-bit (x86_64, arm64) or 32-bit
(i386).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from soak.errors import ImageError

_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
_DT_NULL, _DT_NEEDED, _DT_STRTAB, _DT_SONAME = 0, 1, 5, 14


@dataclass(frozen=True, slots=True)
class ElfDeps:
    """What the dynamic loader needs to run a binary or library."""

    needed: tuple[str, ...]
    """DT_NEEDED sonames, in file order."""
    soname: str | None
    interp: str | None
    """PT_INTERP, e.g. ``/lib64/ld-linux-x86-64.so.2``; None for libraries and static binaries."""


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the fields sit in one ELF class (32 or 64 bit)."""

    header: str
    """e_phoff, e_shoff"""
    header_at: int
    sizes_at: int
    """e_phentsize ... e_shstrndx"""
    phdr: str
    """(p_type, p_offset, p_vaddr, p_filesz) are picked by `phdr_fields`."""
    phdr_fields: tuple[int, int, int, int]
    dyn: str
    shdr: str


_ELF64 = _Layout("<QQ", 0x20, 0x36, "<IIQQQQ", (0, 2, 3, 5), "<qQ", "<IIQQQQ")
_ELF32 = _Layout("<II", 0x1C, 0x2A, "<IIIII", (0, 1, 2, 4), "<iI", "<IIIIII")


def _header(data: bytes, path: Path) -> tuple[_Layout, int, int, int, int, int, int, int]:
    """(layout, phoff, shoff, phentsize, phnum, shentsize, shnum, shstrndx), after checking the ident."""
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise ImageError(f"{path}: not an ELF file")
    if data[4] not in (1, 2) or data[5] != 1:
        raise ImageError(f"{path}: not a little-endian ELF file")
    layout = _ELF64 if data[4] == 2 else _ELF32
    phoff, shoff = struct.unpack_from(layout.header, data, layout.header_at)
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, layout.sizes_at)
    return layout, phoff, shoff, phentsize, phnum, shentsize, shnum, shstrndx


def _cstr(data: bytes, offset: int) -> str:
    end = data.find(b"\0", offset)
    if end < 0:
        raise ImageError(f"unterminated ELF string at offset {offset}")
    return data[offset:end].decode("utf-8", "replace")


def parse_deps(data: bytes, path: Path = Path("<bytes>")) -> ElfDeps:
    """The dynamic dependencies of an ELF image held in ``data``."""
    layout, phoff, _, phentsize, phnum, *_ = _header(data, path)
    t_at, off_at, vaddr_at, size_at = layout.phdr_fields
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dynamic: tuple[int, int] | None = None
    interp: str | None = None
    for i in range(phnum):
        fields = struct.unpack_from(layout.phdr, data, phoff + i * phentsize)
        p_type, p_offset, p_vaddr, p_filesz = fields[t_at], fields[off_at], fields[vaddr_at], fields[size_at]
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
        elif p_type == _PT_INTERP:
            interp = _cstr(data, p_offset)
    if dynamic is None:
        return ElfDeps(needed=(), soname=None, interp=interp)

    entries: list[tuple[int, int]] = []
    off, size = dynamic
    for pos in range(off, off + size, struct.calcsize(layout.dyn)):
        tag, val = struct.unpack_from(layout.dyn, data, pos)
        if tag == _DT_NULL:
            break
        entries.append((tag, val))
    strtab_vaddr = next((v for t, v in entries if t == _DT_STRTAB), None)
    if strtab_vaddr is None:
        raise ImageError(f"{path}: dynamic section without DT_STRTAB")
    strtab = _vaddr_to_offset(strtab_vaddr, loads, path)
    needed = tuple(_cstr(data, strtab + v) for t, v in entries if t == _DT_NEEDED)
    soname = next((_cstr(data, strtab + v) for t, v in entries if t == _DT_SONAME), None)
    return ElfDeps(needed=needed, soname=soname, interp=interp)


def _vaddr_to_offset(vaddr: int, loads: list[tuple[int, int, int]], path: Path) -> int:
    for seg_vaddr, seg_offset, seg_size in loads:
        if seg_vaddr <= vaddr < seg_vaddr + seg_size:
            return seg_offset + (vaddr - seg_vaddr)
    raise ImageError(f"{path}: address {vaddr:#x} is in no loadable segment")


def read_deps(path: Path) -> ElfDeps:
    """`parse_deps` of a file."""
    return parse_deps(path.read_bytes(), path)


def section(data: bytes, name: str, path: Path = Path("<bytes>")) -> bytes | None:
    """The contents of the section called ``name``, or None if there is none."""
    layout, _, shoff, _, _, shentsize, shnum, shstrndx = _header(data, path)
    if shoff == 0 or shstrndx >= shnum:
        return None

    def sh(i: int) -> tuple[int, int, int]:
        name_off, _t, _f, _a, offset, size = struct.unpack_from(layout.shdr, data, shoff + i * shentsize)
        return name_off, offset, size

    _, names_off, _ = sh(shstrndx)
    for i in range(shnum):
        name_off, offset, size = sh(i)
        if _cstr(data, names_off + name_off) == name:
            return data[offset : offset + size]
    return None


def modinfo(data: bytes, path: Path = Path("<bytes>")) -> dict[str, str]:
    """A kernel module's ``.modinfo`` as a dict (the last value wins for repeated keys)."""
    raw = section(data, ".modinfo", path)
    if raw is None:
        raise ImageError(f"{path}: no .modinfo section; not a kernel module?")
    info: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.decode("utf-8", "replace").partition("=")
        if sep:
            info[key] = value
    return info
