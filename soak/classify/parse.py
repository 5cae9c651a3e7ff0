"""Report extraction: from a header line to a titled report (syzkaller's Parse/ParseAll).

For a header line the report is built from the lines that follow it: prefixes
stripped, only lines of the header's printk context kept (plus other CPUs'
lines once an all-CPU NMI backtrace starts), unreliable frames dropped, the
panic or lockdep report that the crash itself triggered trimmed off. Without
caller contexts a second crash's lines would mix in, so the text used for the
title is cut just before the next header. Reports are then found one after
the other: each parse resumes on the line after the previous header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from soak.classify.corrupt import corrupted_reason
from soak.classify.formats import Format, Group
from soak.classify.lines import CONSOLE, CPU_CONTEXT, TASK_CONTEXT, LineTable
from soak.classify.patterns import FLAGS
from soak.classify.titles import describe, finish

REPORT_WINDOW: Final = 256 * 1024
"""Bytes after a header that belong to its report at most, so a long log stays linear."""
PREFIX_WINDOW: Final = 128 * 1024
"""Bytes before a header searched for its context lines."""
TITLE_FRAME: Final = re.compile(r".* in ((?:<[a-zA-Z0-9_: ]+>)?[a-zA-Z0-9_:]+)", FLAGS)


@dataclass
class Parsed:
    """One report as the syzkaller rules see it, before soak's own post-processing."""

    line: int
    """Index of the header line."""
    group: Group
    title: str
    alts: list[str]
    corrupted: str
    text: str
    fmt: Format | None
    end_line: int
    """Last line of the text (within the report window) holding any header."""
    last_line: int
    """Last line kept in the report text."""
    frame: str = ""


def _prefix(table: LineTable, start: int, context: str, floor: int) -> list[str]:
    """The context lines just before a header (5, or 50 with a task context)."""
    wanted = 50 if TASK_CONTEXT.search(context) else 5
    lowest = max(floor, table.line_at(max(0, table.starts[start] - PREFIX_WINDOW)))
    found: list[str] = []
    hi = start
    while hi > lowest and len(found) < wanted:
        lo = max(lowest, hi - 64)
        table.ensure(lo, hi)
        ctx, stripped, questionable = table.ctx, table.stripped, table.questionable
        for idx in range(hi - 1, lo - 1, -1):
            if ctx[idx] == context and stripped[idx] and not questionable[idx]:
                found.append(stripped[idx])
                if len(found) == wanted:
                    break
        hi = lo
    found.reverse()
    return found


_LOCK_DEBUG = "Disabling lock debugging due to kernel taint"
_NMI = "Sending NMI from CPU"
_TRIGGERED = ("Kernel panic - not syncing", "WARNING: possible circular locking dependency detected")


def _events(table: LineTable) -> dict[int, int]:
    """Lines that need per-line attention in a report, computed once per table."""
    events = table.events
    if events is None:
        events = {}
        for idx in table.oops:
            events[idx] = 1
        for idx in table.info_stack:
            events[idx] = 1
        for idx in table.lines_with((_LOCK_DEBUG, _NMI, *_TRIGGERED)):
            events[idx] = 1
        table.events = events
    return events


def _report_lines(table: LineTable, start: int) -> tuple[list[str], int, int, int]:
    """(kept lines, how many precede a second report, last header line, last kept line).

    Lines between "event" lines (headers, NMI backtraces, panics ...) only need
    the context filter, so they are taken a run at a time.
    """
    lines = table.lines
    limit = min(len(lines), table.line_at(min(len(table.text), table.starts[start] + REPORT_WINDOW)) + 1)
    table.ensure(start, limit)
    ctxs, stripped, questionable = table.ctx, table.stripped, table.questionable
    context = ctxs[start]
    min_lines = 16 if "BUG: KMSAN:" in lines[start] else 22
    with_context = context not in ("", CONSOLE)
    events = sorted(i for i in _events(table) if start < i < limit)
    events.append(limit)
    # The header line is always kept, whatever its context.
    kept = [stripped[start]]
    cut = text_lines = 1
    second = -1
    end_line = last = start
    cpu_backtrace = _NMI in lines[start] and _LOCK_DEBUG not in lines[start]
    skip_rest = False
    run_from = start + 1
    for event in events:
        if not skip_rest and run_from < event:
            if cpu_backtrace:
                run = [
                    i for i in range(run_from, event)
                    if not questionable[i] and (ctxs[i] == context or CPU_CONTEXT.search(ctxs[i]))
                ]  # fmt: skip
            else:
                run = [i for i in range(run_from, event) if ctxs[i] == context and not questionable[i]]
            if run:
                text_lines += len(run)
                kept.extend(stripped[i] for i in run)
                last = run[-1]
                if second < 0 or with_context:
                    cut = len(kept)
        if event >= limit:
            break
        idx = event
        run_from = event + 1
        if idx in table.oops:
            end_line = idx
            if second < 0 and idx not in table.continuation:
                second = idx
        if second < 0 and idx in table.info_stack:
            second = idx
        ctx = ctxs[idx]
        if skip_rest or questionable[idx]:
            continue
        if ctx != context and (not cpu_backtrace or not CPU_CONTEXT.search(ctx)):
            continue
        text_lines += 1
        skip, nmi, triggered = _special(lines[idx], text_lines, min_lines)
        # An all-CPU backtrace: other CPUs' lines belong to this report now.
        cpu_backtrace = cpu_backtrace or nmi
        if triggered:
            # The panic (panic_on_warn) or lockdep report the crash itself caused.
            skip_rest = True
        if skip:
            continue
        kept.append(stripped[idx])
        last = idx
        if second < 0 or with_context:
            cut = len(kept)
    return kept, cut, end_line, last


def _special(line: str, text_lines: int, min_lines: int) -> tuple[bool, bool, bool]:
    """(skip this line, an all-CPU backtrace starts, the crash's own panic/lockdep follows)."""
    if _LOCK_DEBUG in line:
        return True, False, False
    if _NMI in line:
        return False, True, False
    if text_lines > min_lines and any(t in line for t in _TRIGGERED):
        return True, False, True
    return False, False, False


def parse_at(table: LineTable, start: int, floor: int) -> Parsed:
    """The report whose header is line ``start``; lines before ``floor`` are not seen."""
    group = table.oops[start]
    table.ensure(start, start + 1)
    context = table.ctx[start]
    kept, cut, end_line, last = _report_lines(table, start)
    prefix = _prefix(table, start, context, floor)
    report = "\n".join(kept) + "\n"
    desc = describe("\n".join(kept[:cut]) + "\n", group)
    if not desc.title:
        # The header did not survive prefix stripping: title the raw lines instead.
        prefix = []
        report = table.text[table.starts[start] : table.end(end_line)]
        desc = describe(report, group)
        if not desc.title:
            desc.title = table.lines[start]
    reason = desc.corrupted or corrupted_reason(desc.title, report, desc.fmt)
    title = finish(desc.title)
    match = TITLE_FRAME.match(title)
    text = "".join(line + "\n" for line in prefix) + report
    return Parsed(
        line=start,
        group=group,
        title=title,
        alts=[finish(alt) for alt in desc.alts],
        corrupted=reason,
        text=text,
        fmt=desc.fmt,
        end_line=end_line,
        last_line=last,
        frame=match.group(1) if match else "",
    )


def parse_all(table: LineTable, first: int = 0) -> list[Parsed]:
    """Every report in order, each parse resuming after the previous header line."""
    reports = []
    floor = first
    for idx in table.oops_order:
        if idx < floor:
            continue
        reports.append(parse_at(table, idx, floor))
        floor = idx + 1
    return reports
