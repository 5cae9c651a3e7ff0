"""Evidence folders seen from the report: safe relative links, their files, a bounded excerpt.

An evidence path comes from the journal, so it is untrusted like any console
line: it is linked only when it is a plain relative path inside the run
directory (no ``..``, not absolute), percent-encoded, so a path such as
``javascript:...`` becomes a harmless relative file name. Links are relative to
where the report is written (`link_prefix`): from ``RUN/report.html`` they
are ``vms/VM/failures/...``; a report written elsewhere gets the relative path
from its folder to the run directory in front, which works while both stay
where they are (or are archived together).

What is read from a folder is bounded: at most `MAX_FILES` names and two
excerpts (the classified report's head, the console's tail) of at most
`EXCERPT_LINES` lines / `EXCERPT_BYTES` bytes each, so a failure with a huge
console costs the report a few KiB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

MAX_FILES = 16
EXCERPT_LINES = 60
EXCERPT_BYTES = 8192
EXCERPT_SOURCES = (("report.txt", "head"), ("console-tail.log", "tail"))
"""The files excerpted, and which end of each: the classified report, the console before the failure."""


def link_prefix(run_dir: Path, report: Path) -> str:
    """The path from the report's folder to the run directory, as a URL prefix ("" if the same)."""
    relative = os.path.relpath(run_dir.resolve(), report.resolve().parent)
    if relative == ".":
        return ""
    return quote(PurePosixPath(*Path(relative).parts).as_posix()) + "/"


def safe_relative(evidence: str) -> PurePosixPath | None:
    """The evidence path if it is a plain relative path below the run directory, else None."""
    if not evidence or "\\" in evidence or any(ord(c) < 32 for c in evidence):
        return None
    path = PurePosixPath(evidence)
    if path.is_absolute() or any(part in ("..", "") for part in path.parts) or not path.parts:
        return None
    return path


def href(prefix: str, evidence: str, name: str = "") -> str | None:
    """A relative URL of an evidence folder (or a file in it), or None when it cannot be trusted."""
    path = safe_relative(evidence)
    if path is None:
        return None
    if name:
        path = path / name
    return prefix + quote(path.as_posix()) + ("/" if not name else "")


@dataclass(frozen=True, slots=True)
class Folder:
    """What the report shows of one evidence folder."""

    files: tuple[str, ...]
    more_files: int
    excerpts: tuple[tuple[str, str], ...]
    """(file name, its excerpt) of each of `EXCERPT_SOURCES` present and readable."""


def read_folder(run_dir: Path, evidence: str) -> Folder | None:
    """The folder's files and excerpt, or None when it is missing or outside the run directory."""
    relative = safe_relative(evidence)
    if relative is None:
        return None
    try:
        root = run_dir.resolve()
        folder = (root / relative).resolve()
        if not folder.is_relative_to(root) or not folder.is_dir():
            return None
        names = sorted(entry.name for entry in folder.iterdir() if entry.is_file())
    except OSError:
        return None
    excerpts = []
    for name, end in EXCERPT_SOURCES:
        if name in names and (folder / name).resolve().is_relative_to(root):
            text = _excerpt(folder / name, end)
            if text:
                excerpts.append((name, text))
    return Folder(tuple(names[:MAX_FILES]), max(0, len(names) - MAX_FILES), tuple(excerpts))


def _excerpt(path: Path, end: str) -> str:
    """The first or last lines of a file, within the bounds; "" if it cannot be read."""
    try:
        with path.open("rb") as f:
            if end == "tail":
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - EXCERPT_BYTES))
            data = f.read(EXCERPT_BYTES)
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    if end == "tail":
        return "\n".join(lines[-EXCERPT_LINES:])
    return "\n".join(lines[:EXCERPT_LINES])
