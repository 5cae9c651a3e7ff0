"""Finding crash header lines, fast: the only work done on crash-free text.

Crash-free console text is by far the common case, so it is never walked line
by line in Python: a handful of ``str.find`` passes for rare substrings
(``NEEDLES``, which between them cover every header keyword) run at C speed,
and only lines containing one are checked against the header groups. The
streaming triage uses ``PREFILTER`` instead: one compiled regex per line.
"""

from __future__ import annotations

import re
from typing import Final

from soak.classify.catalogue import GROUPS
from soak.classify.formats import Group
from soak.classify.patterns import FLAGS

OOM_INVOKED: Final = re.compile(r"(\S+) invoked oom-killer", FLAGS)
OOM_KILLED: Final = re.compile(
    r"(Out of memory|Memory cgroup out of memory)(?: \([a-z_]+\))?: Kill(?:ed)? process "
    r"[0-9]+ \(([^)]*)\)",
    FLAGS,
)
"""OOM killer events (a soak addition: syzkaller ignores them)."""

COLON_WORDS: Final = (
    "BUG", "WARNING", "INFO", "segment", "PANIC", "rust_kernel", "error", "opcode", "int3",
    "UBSAN", "netdevice", "VFS", "fault", "trap", "trusty", "SYZFAIL", "SYZFATAL", "panic",
)  # fmt: skip
"""Words that end right before a colon in some header keyword ("BUG:", "divide error:" ...)."""


def _colon_source(words: tuple[str, ...]) -> str:
    # Cheap first: two character classes before the colon; then the whole word, by length.
    second_last = re.escape("".join(sorted({w[-2] for w in words})))
    last = re.escape("".join(sorted({w[-1] for w in words})))
    by_length: dict[int, list[str]] = {}
    for word in words:
        by_length.setdefault(len(word), []).append(word)
    whole = "|".join(f"(?<=(?:{'|'.join(ws)}):)" for ws in by_length.values())
    return f":(?<=[{second_last}][{last}]:)(?:{whole})"


COLON_KEYWORDS: Final = re.compile(_colon_source(COLON_WORDS), FLAGS)
"""Matches the colon of every "word:" that ends a COLON_WORDS entry."""

NEEDLES: Final = (
    " BUG", "BUG kmalloc-", "general protection fault", "Kernel panic", "handle kernel",
    "Booting the kernel", "hard LOCKUP", "oom-killer", "of memory: Kill",
)  # fmt: skip
"""Substrings for the header keywords and OOM lines that have no COLON_WORDS colon."""

PREFILTER: Final = re.compile(
    "|".join(re.escape(g.header) for g in GROUPS)
    + "|invoked oom-killer|of memory: Kill",
    FLAGS,
)
"""Every header keyword and OOM event in one regex (the reference the fast scans must match)."""

REPLAY_MARKER: Final = "** replaying previous printk message **"


def header_group(line: str) -> Group | None:
    """The first group whose keyword is in the line and which does not suppress it."""
    for group in GROUPS:
        if group.header in line and not any(s.search(line) for s in group.suppress):
            return group
    return None


def is_oom_line(line: str) -> bool:
    return ("oom-killer" in line and OOM_INVOKED.search(line) is not None) or (
        "of memory: Kill" in line and OOM_KILLED.search(line) is not None
    )


def may_have_header(line: str) -> bool:
    """The per-line pre-check: could this line hold a header keyword or an OOM event?"""
    if ":" in line and COLON_KEYWORDS.search(line):
        return True
    for needle in NEEDLES:  # noqa: SIM110 -- a plain loop is faster than any() here
        if needle in line:
            return True
    return False


def candidate_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of every line that may hold a header or OOM event, in order, each once.

    This is all the work done on crash-free text: one regex pass that stops
    only at the colons of header words, and a few ``str.find`` passes for long
    keywords, all at C speed.
    """
    positions = [m.start() for m in COLON_KEYWORDS.finditer(text)]
    for needle in NEEDLES:
        pos = text.find(needle)
        while pos != -1:
            positions.append(pos)
            pos = text.find(needle, pos + 1)
    spans: dict[int, int] = {}
    for pos in positions:
        start = text.rfind("\n", 0, pos) + 1
        if start not in spans:
            end = text.find("\n", pos)
            spans[start] = len(text) if end == -1 else end
    return sorted(spans.items())
