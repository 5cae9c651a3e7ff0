"""Titles: choose the format, fill its template, derive ALT titles, normalise.

A title is a signature: two crashes with the same title are the same bug, so
everything that varies between occurrences (addresses, pids, line numbers,
CPU numbers, executor ids) is normalised away, and syscall prefixes are
canonicalised (``__x64_sys_rmdir`` and ``SyS_rmdir`` are both ``sys_rmdir``).
ALT titles add the raw-frame spellings and family names (``bad-access in f``)
so a crash seen through two different detectors still dedupes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from soak.classify.formats import Format, Group
from soak.classify.frames import Frame, extract_frames
from soak.classify.patterns import FLAGS, SYSCALL_PREFIXES

NO_FRAMES = "extracted no frames"
TITLE_BUT_NO_REPORT = "matched title but not report regexp"
FORMAT_CORRUPTED = "report format is marked as corrupted"


@dataclass
class Description:
    """What a report's text says: its title, why it may be corrupted, and its format."""

    title: str
    corrupted: str = ""
    alts: list[str] = field(default_factory=list)
    fmt: Format | None = None


def _fill(template: str, args: list[str]) -> str:
    # Padding keeps a template/catalogue mismatch a bad title rather than a crash.
    return template.format(*args, *([""] * 4))


def _stripped_arg_lists(prefix: list[str], frames: list[Frame]) -> list[list[str]]:
    """Raw frames, then the frames with each syscall prefix that strips at least one of them."""
    lists = [prefix + [f.raw for f in frames]]
    if not any(f.raw.startswith(SYSCALL_PREFIXES) for f in frames):
        return lists
    for strip in SYSCALL_PREFIXES:
        trimmed = [f.raw[len(strip) :] if f.raw.startswith(strip) else f.raw for f in frames]
        if any(f.raw.startswith(strip) for f in frames):
            lists.append(prefix + trimmed)
    return lists


def describe(report: str, group: Group) -> Description:
    """Title a report of a group: the earliest-matching format wins (ties: first listed)."""
    start = len(report)
    title = ""
    corrupted = ""
    alts: list[str] = []
    chosen: Format | None = None
    matched_title = False
    for fmt in group.formats:
        if start == 0 and title:
            break  # nothing can match earlier, and ties go to the earlier format
        match = fmt.title.search(report)
        if match is None or match.start() > start:
            continue
        if match.start() == start and title:
            continue
        if match.start() < start:
            title, chosen, start = "", None, match.start()
        matched_title = True
        if fmt.report is not None:
            match = fmt.report.search(report)
            if match is None:
                continue
        prefix = [g or "" for g in match.groups()]
        frames: list[Frame] = []
        corrupted = ""
        if fmt.recipe is not None:
            frames, ok = extract_frames(fmt.recipe, report[match.start() :])
            if not ok:
                corrupted = NO_FRAMES
        args = prefix + [f.canonical for f in frames]
        title = _fill(fmt.template, args)
        alts.extend(_fill(alt, args) for alt in fmt.alts)
        for variant in _stripped_arg_lists(prefix, frames):
            other = _fill(fmt.template, variant)
            if other != title:
                alts.append(other)
            alts.extend(_fill(alt, variant) for alt in fmt.alts)
        alts = list(dict.fromkeys(alts))
        chosen = fmt
    if not title:
        if matched_title:
            corrupted = TITLE_BUT_NO_REPORT
        pos = report.find(group.header)
        if pos == -1:
            return Description("", corrupted, alts, chosen)
        end = report.find("\n", pos)
        title = report[pos : end if end != -1 else len(report)]
    if not corrupted and chosen is not None and chosen.corrupted:
        corrupted = FORMAT_CORRUPTED
    return Description(title, corrupted, alts, chosen)


_NORMALISE = tuple(
    (re.compile(pattern, FLAGS), replacement)
    for pattern, replacement in (
        (r"syz-executor\.?[0-9]+((/|:)[0-9]+)?", "syz-executor"),  # executor pids
        (r"syzkaller[0-9]+((/|:)[0-9]+)?", "syzkaller"),
        (r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}", r"\1ADDR"),  # anything that looks like an address
        (r"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})", "IP"),
        (r"(\.\w+)(:[0-9]+)+", r"\1:LINE"),  # file.c:123
        (r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+", r"\1"),  # f+0x1/0x2
        (r"CPU#[0-9]+", "CPU"),
        (r"(\W)(\d+)(\W|\Z)", r"\1NUM\3"),  # overlapping ("0,1,2") needs several passes
        (r"(\d+){7,}", "NUM"),  # long digit runs, but keep cfg80211 and nl802154
    )
)

MAX_TITLE_BYTES = 120
"""Glued or intermixed lines can be very long; a title is a name, not a report."""


def normalise(title: str) -> str:
    """Replace what varies between occurrences, each rule to a fixpoint, in order."""
    for pattern, replacement in _NORMALISE:
        title, count = pattern.subn(replacement, title)
        while count:  # every rule changes what it matches, so no match means a fixpoint
            title, count = pattern.subn(replacement, title)
    return title


_UNPRINTABLE = {i: None for i in (*range(0x20), 0x7F)} | {9: " "}
_SPACES = re.compile(" {2,}")


def sanitise(title: str) -> str:
    """First 120 bytes, printable ASCII only, single spaces, trimmed."""
    raw = title.encode("utf-8", "surrogateescape")[:MAX_TITLE_BYTES]
    if not raw.isascii():
        raw = bytes(b for b in raw if b < 0x80)
    return _SPACES.sub(" ", raw.decode("ascii").translate(_UNPRINTABLE)).strip()


_FINISHED: dict[str, str] = {}


def finish(title: str) -> str:
    """The final form of a title or ALT title (memoised: the same titles recur)."""
    done = _FINISHED.get(title)
    if done is None:
        if len(_FINISHED) > 50_000:
            _FINISHED.clear()
        done = _FINISHED[title] = sanitise(normalise(title))
    return done
