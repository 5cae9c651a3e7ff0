"""The format model: what a crash format is, and the recipe helpers the catalogue uses.

A Group is a header keyword with its formats and suppressions; a Format says
how to recognise and title one kind of report; a Recipe says how to find the
frame that names it (see frames.py). The catalogue itself is pure data in
catalogue.py.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from soak.classify.patterns import (
    CALL_TRACE,
    FLAGS,
    GLOBAL_SKIPS,
    RIP_LINE,
    RIP_LINE_SRC,
    NameMatcher,
    rx,
)

STACK: Final = None
"""A recipe step that reads the frames of a stack (a find step is a regex)."""

Step = re.Pattern[str] | None


class Picker(enum.Enum):
    """How the key frame is chosen among the candidate frames of a stack."""

    FIRST = "first"
    STALL = "stall"
    """Stalls and lockups: the frame just above the first dispatch anchor."""
    HANG = "hang"
    """Hung tasks: rtnl_lock/synchronize_rcu buckets, else the first non-waiting frame."""


@dataclass(frozen=True)
class Recipe:
    """How a format finds the frame that names the crash."""

    steps: tuple[Step, ...]
    fallback: tuple[Step, ...] = ()
    skip: tuple[str, ...] = ()
    picker: Picker = Picker.FIRST

    @property
    def skips(self) -> NameMatcher | None:
        """The format's own skips (the global list is SKIP, checked first)."""
        if not self.skip:
            return None
        matcher = _SKIP_CACHE.get(self.skip)
        if matcher is None:
            matcher = _SKIP_CACHE[self.skip] = NameMatcher(self.skip)
        return matcher


_SKIP_CACHE: dict[tuple[str, ...], NameMatcher] = {}

SKIP: Final = NameMatcher(GLOBAL_SKIPS)
"""Frames that are infrastructure in every format."""


@dataclass(frozen=True)
class Format:
    """One crash format: how to recognise it and how to title it."""

    title: re.Pattern[str]
    template: str
    report: re.Pattern[str] | None = None
    alts: tuple[str, ...] = ()
    recipe: Recipe | None = None
    no_stack: bool = False
    """The report legitimately carries no stack trace, so a missing one is no corruption."""
    corrupted: bool = False
    """Seeing this format means the real header was lost."""


@dataclass(frozen=True)
class Group:
    """Formats sharing a header keyword, plus lines that look like it but are not crashes."""

    header: str
    formats: tuple[Format, ...]
    suppress: tuple[re.Pattern[str], ...] = ()


def rct(*skip: str, picker: Picker = Picker.FIRST) -> Recipe:
    """RIP line, then Call Trace, then its stack."""
    return Recipe((RIP_LINE, CALL_TRACE, STACK), skip=skip, picker=picker)


def ct(*skip: str, picker: Picker = Picker.FIRST) -> Recipe:
    """Call Trace, then its stack."""
    return Recipe((CALL_TRACE, STACK), skip=skip, picker=picker)


WARN_START: Final = re.compile(
    "(?:" + RIP_LINE_SRC + r"|--- interrupt: [0-9]+ at ([a-zA-Z0-9_]+)(?:\.|\+))", FLAGS
)


def warn(*skip: str) -> Recipe:
    """WARN(): the RIP function (or powerpc interrupt), else the call trace."""
    return Recipe((WARN_START, STACK), fallback=(CALL_TRACE, STACK), skip=skip)


RIP_ONLY: Final = Recipe((RIP_LINE,))
RCU_IRQ: Final = rx("(?:apic_timer_interrupt|Exception stack|el1h_64_irq)")

_RIP_HINTS = ("IP", "pc ", "PC is at")
HINTS: Final[dict[re.Pattern[str], tuple[str, ...]]] = {
    CALL_TRACE: ("race:",),
    RIP_LINE: _RIP_HINTS,
    WARN_START: (*_RIP_HINTS, "--- interrupt: "),
    RCU_IRQ: ("apic_timer_interrupt", "Exception stack", "el1h_64_irq"),
}
"""Substrings a line needs before a find step's (slow, alternation) regex can match it."""

BAD = "bad-access in {0}"
KASAN_HW_SKIPS = ("kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_")
USB_SKIPS = ("usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg", "usb_interrupt_msg",
             "usb_control_msg")  # fmt: skip
KMSAN_ORIGIN = rx(r"(Local variable .* created at:|Uninit was created at:)")
LOCKDEP_AT = rx(r"at: (?:%PC% +)?%FUNC%")
HINTS[KMSAN_ORIGIN] = (" created at:",)


def F(
    title: str,
    template: str,
    *,
    report: str = "",
    alts: tuple[str, ...] = (),
    recipe: Recipe | None = None,
    no_stack: bool = False,
    corrupted: bool = False,
) -> Format:
    """A format whose regex sources may use the %PC%/%FUNC%/%SRC% macros."""
    return Format(rx(title), template, rx(report) if report else None, alts, recipe,
                  no_stack, corrupted)  # fmt: skip


def sup(*sources: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(s, FLAGS) for s in sources)
