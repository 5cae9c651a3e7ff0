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

from soak.classify.catalogue import GROUPS, Group
from soak.classify.patterns import FLAGS

OOM_INVOKED: Final = re.compile(r"(\S+) invoked oom-killer", FLAGS)
OOM_KILLED: Final = re.compile(
    r"(Out of memory|Memory cgroup out of memory)(?: \([a-z_]+\))?: Kill(?:ed)? process "
    r"[0-9]+ \(([^)]*)\)",
    FLAGS,
)
"""OOM killer events (a soak addition: syzkaller ignores them)."""

NEEDLES: Final = (
    "BUG", "WARNING:", "INFO:", "handle kernel", "fault", "anic", "rror", "segment: ",
    "opcode:", "int3:", "UBSAN:", "Booting the kernel", "unregister_netdevice", "VFS: ",
    "Alignment trap:", "SYZFA", "LOCKUP", "oom-killer", "of memory",
)  # fmt: skip
"""Substrings at least one of which is in every header keyword and OOM line."""

PREFILTER: Final = re.compile(
    "|".join(re.escape(g.header) for g in GROUPS)
    + "|invoked oom-killer|of memory: Kill",
    FLAGS,
)
"""One search per streamed line: does it contain any header keyword or OOM event?"""

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


def candidate_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of every line that contains a needle, in order, each once."""
    spans: dict[int, int] = {}
    for needle in NEEDLES:
        pos = text.find(needle)
        while pos != -1:
            start = text.rfind("\n", 0, pos) + 1
            end = text.find("\n", pos)
            if end == -1:
                end = len(text)
            spans[start] = end
            pos = text.find(needle, end)
    return sorted(spans.items())
