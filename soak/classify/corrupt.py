"""When is a report too damaged to trust its title (§7 of crash-formats.md)?

A report is corrupted when its stack is missing or unreadable: lines of other
CPUs glued into it, a truncated console, a header whose second half never
arrived. The title of such a report may name the wrong function, so it is
flagged rather than trusted for deduplication.
"""

from __future__ import annotations

import re

from soak.classify.formats import Format
from soak.classify.patterns import (
    ANY_STACK_START,
    FLAGS,
    FRAME_LINES,
    RISCV_STACK_START,
    STACK_STARTS,
    maybe_stack_start,
)

_BACKTRACE = STACK_STARTS[5]

_TIMESTAMP_IN_TITLE = re.compile(r"\[ *[0-9]+\.[0-9]+\]", FLAGS)
CONSOLE_HANGUP = "serialport: VM disconnected."


def _has_frame(line: str) -> bool:
    return "(stack is not available)" in line or any(r.search(line) for r in FRAME_LINES)


def _first(marker: re.Pattern[str], report: str) -> int:
    """Start of the marker's first match, or -1 (with a fast path for the slow pattern)."""
    if marker is _BACKTRACE:
        # "[^k] backtrace": a character other than k, then " backtrace" (optionally a crc).
        pos = report.find(" backtrace")
        while pos != -1:
            if pos > 0 and report[pos - 1] != "k" and marker.match(report, pos - 1):
                return pos - 1
            pos = report.find(" backtrace", pos + 1)
        return -1
    match = marker.search(report)
    return -1 if match is None else match.start()


def corrupted_reason(title: str, report: str, fmt: Format | None) -> str:
    """Why the report cannot be trusted, or "" when it can."""
    if _TIMESTAMP_IN_TITLE.search(title):
        return "title matches corrupted regexp"
    if fmt is None or fmt.no_stack:
        # A raw header line, or a format that legitimately has no stack.
        return ""
    has_stack = False
    for marker in STACK_STARTS:
        start = _first(marker, report)
        if start == -1:
            continue
        lines = report[start:].split("\n", 16)
        if len(lines) < 4:
            return "call trace is missed"
        found = False
        for line in lines[1:16]:
            if maybe_stack_start(line) and ANY_STACK_START.search(line):
                break
            if _has_frame(line):
                found = has_stack = True
                break
        if not found and marker is not RISCV_STACK_START:
            return "no frames in a stack trace"
    if not has_stack:
        return "no stack trace in report"
    return ""
