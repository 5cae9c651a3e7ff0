"""classify(): console text in, failure reports out, primary first.

The syzkaller rules (parse.py) find every report; soak then decides which are
separate failures:

* The first report is always kept. A later header that is the same crash
  continuing ("invalid opcode" after "kernel BUG at", arm's "Internal error:",
  a double fault, "Kernel panic - not syncing") is folded into the report
  before it when it comes within FOLD_LINES; a panic sets ``panicked``.
* A later report that is corrupted is kept only if it brings a new kind:
  corrupted tails are usually fragments of the report before them.
* In a stream that starts at boot (``first_boot``), "Booting the kernel." before
  any kernel line is the boot itself, not a reboot. A saved log is taken as
  syzkaller takes it: the line means the machine rebooted.
* OOM-killer events are reported too (kind oom), but never as the primary
  report when there is a kernel report.
"""

from __future__ import annotations

from typing import Final

from soak.classify.catalogue import SUPPRESSED_HINTS, SUPPRESSED_OUTPUT
from soak.classify.corrupt import CONSOLE_HANGUP
from soak.classify.formats import Group
from soak.classify.headers import candidate_lines, header_group, is_oom_line
from soak.classify.kindmap import kind_of, syz_type
from soak.classify.lines import CONSOLE_PREFIX, LineTable, to_text
from soak.classify.oom import oom_events
from soak.classify.parse import Parsed, parse_at
from soak.classify.report import Report
from soak.classify.titles import finish
from soak.kinds import Kind

FOLD_LINES: Final = 1000
"""How far after a report a continuation header still belongs to it."""
MAX_TEXT: Final = 64 * 1024
"""Report text kept as evidence, at most."""
REBOOT_HEADER: Final = "Booting the kernel."


def _hits(text: str) -> list[tuple[int, Group | None, bool]]:
    hits: list[tuple[int, Group | None, bool]] = []
    for start, end in candidate_lines(text):
        line = text[start:end].replace("\r", "")
        group = header_group(line)
        oom = is_oom_line(line)
        if group is not None or oom:
            hits.append((start, group, oom))
    return hits


def _kernel_before(table: LineTable, idx: int) -> bool:
    return any(CONSOLE_PREFIX.match(line) for line in table.lines[:idx])


def _cap(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"\n<<{len(text) - MAX_TEXT} more bytes cut>>\n"


def _separate(table: LineTable, first_line: int, first_boot: bool) -> list[Parsed]:
    """Parse the reports one after the other (syzkaller's ParseAll) and keep the separate ones."""
    kept: list[Parsed] = []
    kinds: set[Kind] = set()
    floor = first_line
    for idx in table.oops_order:
        if idx < floor:
            continue
        if kept and idx in table.continuation and idx - kept[-1].line <= FOLD_LINES:
            floor = idx + 1  # the same crash going on: no need to parse it at all
            continue
        rep = parse_at(table, idx, floor)
        floor = idx + 1
        if rep.group.header == REBOOT_HEADER and first_boot and not _kernel_before(table, idx):
            continue
        kind = kind_of(rep.title, rep.group.header)
        if kept and rep.corrupted and kind in kinds:
            continue
        kept.append(rep)
        kinds.add(kind)
    return kept


def _panic_lines(table: LineTable) -> list[int]:
    return [i for i in table.oops_order if "Kernel panic - not syncing" in table.lines[i]]


def classify_text(
    text: str,
    *,
    first_offset: int = 0,
    first_boot: bool = False,
    hits: list[tuple[int, Group | None, bool]] | None = None,
) -> list[Report]:
    """All reports whose header starts at or after ``first_offset``; earlier text is context.

    ``first_boot`` says no kernel output came before this text (the streaming
    triage knows), so a "Booting the kernel." ahead of kernel lines is the boot.
    """
    if hits is None:
        hits = _hits(text)
    if not hits:
        return []
    table = LineTable(text, hits)
    first_line = table.line_at(first_offset)
    parsed = _separate(table, first_line, first_boot)
    panics = _panic_lines(table)
    suppressed = (
        bool(parsed)
        and any(hint in text for hint in SUPPRESSED_HINTS)
        and SUPPRESSED_OUTPUT.search(text) is not None
    )
    hangup = CONSOLE_HANGUP in text
    reports: list[Report] = []
    for i, rep in enumerate(parsed):
        upto = parsed[i + 1].line if i + 1 < len(parsed) else len(table.lines)
        reports.append(
            Report(
                kind=kind_of(rep.title, rep.group.header),
                title=rep.title,
                corrupted=bool(rep.corrupted) or hangup,
                alt_titles=tuple(rep.alts),
                text=_cap(rep.text),
                syz_type=syz_type(rep.title),
                panicked=any(rep.line <= p < upto for p in panics),
                suppressed=suppressed,
                corrupted_reason=rep.corrupted or ("console hangup" if hangup else ""),
                frame=rep.frame,
                start=table.starts[rep.line],
                end=table.end(rep.last_line),
            )
        )
    for event in oom_events(table, first_line):
        lines = table.lines[event.first : event.last + 1]
        reports.append(
            Report(
                kind=Kind.OOM,
                title=finish(event.title),
                corrupted=False,
                alt_titles=tuple(finish(alt) for alt in event.alts),
                text=_cap("".join(line + "\n" for line in lines)),
                start=table.starts[event.first],
                end=table.end(event.last),
            )
        )
    return _primary_first(reports)


def _primary_first(reports: list[Report]) -> list[Report]:
    """Order by position, but a kernel report is primary over any OOM event."""
    reports.sort(key=lambda r: r.start)
    for i, rep in enumerate(reports):
        if rep.kind is not Kind.OOM:
            if i:
                reports.insert(0, reports.pop(i))
            break
    return reports


def classify(text: str | bytes) -> list[Report]:
    """Every failure report in a console log, primary first; [] when there is none."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    hits = _hits(text)
    if not hits:
        return []  # the common case, decided without copying the text
    if "\r" in text:
        return classify_text(to_text(text))
    return classify_text(text, hits=hits)
