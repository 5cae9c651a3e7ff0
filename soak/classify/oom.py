"""OOM-killer events (a soak addition: syzkaller deliberately ignores them).

A soak wants to know when a guest ran out of memory, but an OOM kill is a
consequence more often than a kernel bug, so an OOM report never displaces a
real oops as the primary report. One event is the "invoked oom-killer" line
up to its "Killed process" line; the title names the victim (else the
invoker), which is what repeats of the same memory hog have in common.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from soak.classify.headers import OOM_INVOKED, OOM_KILLED
from soak.classify.lines import LineTable

MAX_EVENT_LINES: Final = 2000
"""An invoker line further than this from a kill line starts a separate event."""


@dataclass
class OomEvent:
    first: int
    last: int
    invoker: str = ""
    victim: str = ""
    memcg: bool = False

    @property
    def title(self) -> str:
        if self.victim:
            scope = "Memory cgroup out of memory" if self.memcg else "Out of memory"
            return f"{scope}: Killed process {self.victim}"
        return f"Out of memory: {self.invoker} invoked oom-killer"

    @property
    def alts(self) -> list[str]:
        if self.victim and self.invoker:
            return [f"Out of memory: {self.invoker} invoked oom-killer"]
        return []


def oom_events(table: LineTable, first_line: int = 0) -> list[OomEvent]:
    """OOM events whose first line is at or after ``first_line``, in order."""
    events: list[OomEvent] = []
    current: OomEvent | None = None
    for idx in table.oom:
        if idx < first_line:
            continue
        line = table.lines[idx]
        invoked = OOM_INVOKED.search(line)
        if invoked:
            if current is not None:
                events.append(current)
            current = OomEvent(idx, idx, invoker=invoked.group(1))
        killed = OOM_KILLED.search(line)
        if killed:
            if current is None or idx - current.first > MAX_EVENT_LINES:
                if current is not None:
                    events.append(current)
                current = OomEvent(idx, idx)
            current.victim = killed.group(2)
            current.memcg = killed.group(1).startswith("Memory")
            current.last = idx
            events.append(current)
            current = None
    if current is not None:
        events.append(current)
    return events
