"""Console lines: prefixes, printk caller contexts and header positions.

A kernel console line may carry ``[  12.345678]`` (a timestamp), a caller tag
``[ T123]``/``[C1]`` (CONFIG_PRINTK_CALLER), a syslog level ``<6>``, a glued
login prompt or a "printk messages dropped" note. The line's *context* is the
caller tag ("console" with only a timestamp, "" with no prefix); a report keeps
only lines of its own context, which is how several CPUs' interleaved reports
and user-space chatter are told apart. Per-line facts are computed in blocks,
and only for the part of the text near a crash.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate, repeat
from operator import add
from typing import Final

from soak.classify.catalogue import CONTINUATIONS, INFO_WITH_STACK
from soak.classify.formats import Group
from soak.classify.headers import REPLAY_MARKER
from soak.classify.patterns import FLAGS

CONSOLE_PREFIX: Final = re.compile(
    r"(?:\*\* [0-9]+ printk messages dropped \*\* )?(?:.* login: )?(?:<[0-9]+>)?"
    r"\[ *[0-9]+\.[0-9]+\](\[ *(?:C|T)[0-9]+\])? ",
    FLAGS,
)
_SIMPLE_PREFIX: Final = re.compile(r"(?:<[0-9]+>)?\[ *[0-9]+\.[0-9]+\](\[ *(?:C|T)[0-9]+\])? ", FLAGS)
TASK_CONTEXT: Final = re.compile(r"\[ *T[0-9]+\]", FLAGS)
CPU_CONTEXT: Final = re.compile(r"\[ *C[0-9]+\]", FLAGS)
CONSOLE = "console"
BLOCK = 256


def to_text(data: str | bytes) -> str:
    """Console bytes or text as one str without carriage returns."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return data.replace("\r", "") if "\r" in data else data


def line_info(line: str) -> tuple[str, str, bool]:
    """(context, line without its console prefix, questionable) of one line.

    A questionable line is an unreliable " ? func+0x.." frame (or powerpc's
    "(unreliable)"): reports drop them, because stale stack words name
    functions that are not on the stack.
    """
    ctx, stripped, questionable = _infos([line], plain=False)
    return ctx[0], stripped[0], questionable[0]


def _infos(lines: list[str], *, plain: bool) -> tuple[list[str], list[str], list[bool]]:
    """line_info of many lines, as three lists (this runs for every line near a crash).

    ``plain``: no line has a login prompt or a "messages dropped" note glued in
    front, so the short prefix regex does, and the prefix ends where it matched.
    Written as whole-list passes: per-line Python work is what costs here.
    """
    if not plain:
        return _infos_general(lines)
    matches = list(map(_SIMPLE_PREFIX.match, lines))
    ctxs = [(m.group(1) or CONSOLE) if m else "" for m in matches]
    strs = [line[m.end() :] if m else line for line, m in zip(lines, matches, strict=True)]
    quest = [False] * len(lines)
    for i, rest in enumerate(strs):
        if (" ? " in rest or rest.endswith(" (unreliable)")) and ctxs[i] and "<EOI>" not in rest:
            pos = rest.find(" ? ")
            strs[i] = rest[pos + 2 :] if pos != -1 else rest[:-13]
            quest[i] = True
    return ctxs, strs, quest


def _infos_general(lines: list[str]) -> tuple[list[str], list[str], list[bool]]:
    simple = _SIMPLE_PREFIX.match
    full = CONSOLE_PREFIX.match
    ctxs: list[str] = []
    strs: list[str] = []
    quest: list[bool] = []
    for line in lines:
        match = full(line) if (" login: " in line or line[:3] == "** ") else simple(line)
        if match is None:
            ctxs.append("")
            strs.append(line)
            quest.append(False)
            continue
        rest = line[line.find("] ") + 2 :]
        ctxs.append(match.group(1) or CONSOLE)
        if " ? " in rest and "<EOI>" not in rest:
            strs.append(rest[rest.find(" ? ") + 2 :])
            quest.append(True)
        elif rest.endswith(" (unreliable)") and "<EOI>" not in rest:
            strs.append(rest[:-13])
            quest.append(True)
        else:
            strs.append(rest)
            quest.append(False)
    return ctxs, strs, quest


class LineTable:
    """A console text split into lines, with its header lines located."""

    def __init__(self, text: str, hits: list[tuple[int, Group | None, bool]]) -> None:
        """``hits``: (line start offset, header group or None, is an OOM line) per candidate."""
        self.text = text
        self.lines = text.split("\n")
        # Line start offsets, with C-level iterators only (this runs over every line).
        self.starts: list[int] = list(accumulate(map(add, map(len, self.lines), repeat(1)), initial=0))
        self.oops: dict[int, Group] = {}
        self.oom: list[int] = []
        for start, group, oom in hits:
            idx = bisect_right(self.starts, start) - 1
            if group is not None:
                nxt = idx + 1
                if nxt >= len(self.lines) or REPLAY_MARKER not in self.lines[nxt]:
                    self.oops[idx] = group  # else the console replays it on the next line
            if oom:
                self.oom.append(idx)
        self.oops_order = sorted(self.oops)
        self.continuation = {i for i in self.oops_order if CONTINUATIONS.search(self.lines[i])}
        self.info_stack = self.lines_with(INFO_WITH_STACK) if self.oops else set()
        count = len(self.lines)
        self.ctx: list[str] = [""] * count
        self.stripped: list[str] = [""] * count
        self.questionable: list[bool] = [False] * count
        self._done: set[int] = set()
        self._plain = " login: " not in text and "** " not in text
        self.events: dict[int, int] | None = None

    def lines_with(self, needles: tuple[str, ...]) -> set[int]:
        """Indices of the lines that contain any of the substrings."""
        found = set()
        for needle in needles:
            pos = self.text.find(needle)
            while pos != -1:
                idx = bisect_right(self.starts, pos) - 1
                found.add(idx)
                pos = self.text.find(needle, self.starts[idx + 1])
        return found

    def ensure(self, lo: int, hi: int) -> None:
        """Compute context, stripped text and questionable for lines [lo, hi)."""
        for block in range(max(lo, 0) // BLOCK, (min(hi, len(self.lines)) - 1) // BLOCK + 1):
            if block in self._done:
                continue
            self._done.add(block)
            a, b = block * BLOCK, min((block + 1) * BLOCK, len(self.lines))
            self.ctx[a:b], self.stripped[a:b], self.questionable[a:b] = _infos(
                self.lines[a:b], plain=self._plain
            )

    def end(self, idx: int) -> int:
        """Offset just past line idx (its newline excluded)."""
        return self.starts[idx] + len(self.lines[idx])

    def line_at(self, offset: int) -> int:
        return bisect_right(self.starts, offset) - 1
