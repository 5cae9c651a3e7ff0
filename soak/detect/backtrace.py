"""A QEMU core's backtrace as gdb prints it, read back: frames, modules, who sent the signal.

`soak.vm.coredump` runs ``gdb -batch`` on a core with section markers (`MARK`)
and hands the text here. Debian's QEMU exports most of its functions (modules
need them), so many frames have names; static functions show as ``?? ()``.
Those are given as ``module+offset`` from the core's own mappings: stable for
one build of QEMU whatever ASLR did, so they can name a crash; with QEMU's
debug symbols installed gdb names them itself.

Pure: text in, `GdbReport` out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

MARK = "@@soak:"
"""Each section of soak's gdb script starts with a line ``@@soak:NAME``."""
SI_USER, SI_TKILL = 0, -6
"""``si_code`` of a signal sent with kill(2) or tgkill(2); abort() is a tgkill from QEMU itself,
a real fault (SEGV_MAPERR ...) has a positive code."""

_FRAME = re.compile(
    r"^#(?P<n>\d+)\s+(?:(?P<addr>0x[0-9a-f]+) in )?(?P<func>\S+) \((?P<args>.*?)\)"
    r"(?: at (?P<src>\S+)| from (?P<lib>\S+))?\s*$"
)
_MAPPING = re.compile(r"^\s*(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)\s+(/\S.*)$")
_SIGNAL = re.compile(r"^Program terminated with signal (SIG[A-Z0-9]+)")
_VALUE = re.compile(r"^\$\d+ = (-?\d+)$")

SYSTEM_LIBRARIES = re.compile(r"/(?:libc|libpthread|ld-linux[^/]*|libglib-2\.0|libstdc\+\+|libgcc_s)\.so")
"""Frames in these are the machinery of the crash (abort, raise, malloc_printerr, g_assert),
not where QEMU went wrong."""
NAMELESS = frozenset({"code_gen_buffer"})
"""TCG's translated guest code: a frame of the guest's, not of QEMU's."""


@dataclass(frozen=True, slots=True)
class Frame:
    number: int
    address: int | None
    function: str
    """gdb's name, or "??" when it has none."""
    module: str = ""
    """The file the address lies in (from the core's mappings), when known."""
    offset: int | None = None
    """The address relative to the module's start: stable across runs of one QEMU build."""
    source: str = ""

    @property
    def name(self) -> str:
        """``func``, or ``module+0xoffset`` for a frame gdb could not name."""
        if self.function != "??":
            return self.function
        if self.module and self.offset is not None:
            return f"{PurePosixPath(self.module).name}+{self.offset:#x}"
        return "??"

    @property
    def in_system_library(self) -> bool:
        return bool(SYSTEM_LIBRARIES.search(self.module)) or self.source.startswith(
            ("../sysdeps/", "./nptl/", "../csu/", "./stdlib/", "./assert/", "./malloc/", "../nptl/")
        )


@dataclass(frozen=True, slots=True)
class GdbReport:
    signal: str = ""
    """``SIGABRT`` ..., from "Program terminated with signal"."""
    sender_pid: int | None = None
    """Set when another process sent the signal with kill(2): not QEMU's own crash."""
    crashing: list[Frame] = field(default_factory=list)
    """The thread that took the signal, innermost first."""
    threads: str = ""
    """``thread apply all bt``, with ``module+offset`` added to every unnamed frame."""

    def culprit(self, depth: int = 1) -> list[str]:
        """The innermost ``depth`` frames of QEMU itself: what a title names."""
        names = [f.name for f in self.crashing
                 if not f.in_system_library and f.function not in NAMELESS and f.name != "??"]
        return names[:depth]


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        if line.startswith(MARK):
            current = line[len(MARK):].strip()
            sections[current] = []
        else:
            sections[current].append(line)
    return sections


def _mappings(lines: list[str]) -> list[tuple[int, int, str, int]]:
    """(start, end, file, module base) for every file-backed mapping."""
    spans = []
    bases: dict[str, int] = {}
    for line in lines:
        match = _MAPPING.match(line)
        if match is None:
            continue
        start, end, offset, path = int(match[1], 16), int(match[2], 16), int(match[3], 16), match[4].strip()
        bases.setdefault(path, start - offset)
        bases[path] = min(bases[path], start - offset)
        spans.append((start, end, path))
    return [(s, e, p, bases[p]) for s, e, p in spans]


def _frame(line: str, maps: list[tuple[int, int, str, int]]) -> Frame | None:
    match = _FRAME.match(line.strip())
    if match is None:
        return None
    address = int(match["addr"], 16) if match["addr"] else None
    module, offset = match["lib"] or "", None
    if address is not None:
        for start, end, path, base in maps:
            if start <= address < end:
                module, offset = path, address - base
                break
    return Frame(int(match["n"]), address, match["func"], module, offset, match["src"] or "")


def _annotated(lines: list[str], maps: list[tuple[int, int, str, int]]) -> str:
    out = []
    for line in lines:
        frame = _frame(line, maps)
        if frame is not None and frame.function == "??" and frame.offset is not None:
            line = f"{line}  <- {frame.name}"
        out.append(line)
    return "\n".join(out).strip() + "\n"


def _int_value(lines: list[str]) -> int | None:
    for line in lines:
        match = _VALUE.match(line.strip())
        if match:
            return int(match[1])
    return None


def parse_gdb(text: str, pid: int) -> GdbReport:
    """Read soak's gdb script output for QEMU ``pid`` (sections ``siginfo-code``,
    ``siginfo-pid``, ``mappings``, ``crashing``, ``threads``); missing sections leave
    fields empty."""
    sections = _sections(text)
    maps = _mappings(sections.get("mappings", []))
    signal = next((m[1] for line in sections[""] if (m := _SIGNAL.match(line))), "")
    code = _int_value(sections.get("siginfo-code", []))
    sender = _int_value(sections.get("siginfo-pid", []))
    crashing = [f for line in sections.get("crashing", []) if (f := _frame(line, maps)) is not None]
    return GdbReport(
        signal=signal,
        sender_pid=sender if code in (SI_USER, SI_TKILL) and sender and sender != pid else None,
        crashing=crashing,
        threads=_annotated(sections.get("threads", []), maps),
    )
