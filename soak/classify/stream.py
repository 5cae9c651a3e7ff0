"""ConsoleTriage: crash detection on a live console, one line at a time.

Each line costs one precompiled regex search (plus an append to a bounded
tail), so a guest flooding its console costs microseconds per line and never
grows memory. A line that starts a crash opens a *pending* window: the report
usually goes on for a while and a panic may follow, so the window collects
lines for a grace period; ``due`` then classifies it, from a little before the
crash line to the last line seen, and the triage is ready for the next crash
(a hung task reported every 10 s gives a report every time). A report's end
marker (``---[ end trace ... ]---``) brings the deadline closer: the report is
whole, only a panic that may follow it is still awaited. Time is passed in,
never read, so the triage is pure and tests need no clock.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from soak.classify.assemble import classify_text
from soak.classify.headers import header_group, is_oom_line, may_have_header
from soak.classify.lines import CONSOLE_PREFIX
from soak.classify.report import Report

PRE_CONTEXT_LINES: Final = 200
"""Lines before the crash line handed to the classifier: the report's own context lines."""
END_OF_REPORT: Final = "---[ end "
SETTLE_SECONDS: Final = 1.0
"""After a report's end marker, how long a following panic (panic_on_oops ...) may take to start."""


class ConsoleTriage:
    """Watches one console: feed() every line, due() when the returned deadline passes."""

    def __init__(self, grace_seconds: float = 10.0, context_bytes: int = 128 * 1024,
                 settle_seconds: float = SETTLE_SECONDS) -> None:
        self.grace_seconds = grace_seconds
        self.settle_seconds = min(settle_seconds, grace_seconds)
        self.context_bytes = context_bytes
        self._tail: deque[str] = deque(maxlen=PRE_CONTEXT_LINES)
        self._tail_bytes = 0
        self._window: list[str] | None = None
        self._window_bytes = 0
        self._crash_at = 0
        self._deadline = 0.0
        self._kernel_seen = False
        self._first_boot = False
        self.dropped_lines = 0
        """Lines of a pending window not kept because it reached context_bytes."""

    @property
    def pending(self) -> bool:
        """A crash has started and is not finalised yet."""
        return self._window is not None

    @property
    def deadline(self) -> float | None:
        return self._deadline if self._window is not None else None

    def feed(self, line: str, now: float) -> float | None:
        """Take one console line (no newline).

        Returns the new finalise deadline when this line starts a crash or, as a
        report's end marker, brings the deadline closer; else None.
        """
        if "\r" in line:
            line = line.replace("\r", "")
        if not self._kernel_seen and CONSOLE_PREFIX.match(line):
            self._kernel_seen = True
        started = None
        if self._window is not None:
            if self._window_bytes < self.context_bytes:
                self._window.append(line)
                self._window_bytes += len(line) + 1
            else:
                self.dropped_lines += 1
            if END_OF_REPORT in line and self._deadline > now + self.settle_seconds:
                self._deadline = started = now + self.settle_seconds
        elif may_have_header(line) and (header_group(line) is not None or is_oom_line(line)):
            self._window = [*self._tail, line]
            self._crash_at = len(self._tail)
            self._window_bytes = len(line) + 1
            self._first_boot = not self._kernel_seen
            self._deadline = started = now + self.grace_seconds
        self._remember(line)
        return started

    def _remember(self, line: str) -> None:
        tail = self._tail
        if len(tail) == tail.maxlen:
            self._tail_bytes -= len(tail[0]) + 1
        tail.append(line)
        self._tail_bytes += len(line) + 1
        while self._tail_bytes > self.context_bytes and len(tail) > 1:
            self._tail_bytes -= len(tail.popleft()) + 1

    def due(self, now: float, *, force: bool = False) -> list[Report]:
        """Finalise the pending crash if its deadline passed (or ``force``): its reports, else []."""
        window = self._window
        if window is None or (not force and now < self._deadline):
            return []
        offset = sum(len(line) + 1 for line in window[: self._crash_at])
        text = "\n".join(window) + "\n"
        self._window = None
        self._window_bytes = 0
        return classify_text(text, first_offset=offset, first_boot=self._first_boot)
