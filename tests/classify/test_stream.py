"""ConsoleTriage: the streaming use in the supervisor (grace, force, repeats, bounds)."""

from __future__ import annotations

import time

from soak.classify import ConsoleTriage
from soak.kinds import Kind

from .test_formats import CASES, REGS, STACK


def lines(text: str) -> list[str]:
    return text.split("\n")


def test_crash_line_arms_a_deadline_and_due_waits_for_it() -> None:
    triage = ConsoleTriage(grace_seconds=10)
    assert triage.feed("[    1.000000] Linux version 6.1.0", 1.0) is None
    deadlines = [triage.feed(line, 2.0) for line in lines(CASES["warning"][0])]
    assert deadlines[1] == 12.0  # the WARNING line; the cut-here line before it is not a crash
    assert [d for d in deadlines if d is not None] == [12.0, 3.0]  # its end marker settles it sooner
    assert triage.due(2.9) == []
    reports = triage.due(3.0)
    assert [(r.kind, r.title) for r in reports] == [(Kind.KERNEL_WARNING, "WARNING in fi_write")]
    assert triage.due(100.0) == []  # finalised once


def test_report_continues_through_the_grace_period() -> None:
    triage = ConsoleTriage(grace_seconds=5)
    text = lines(CASES["null-deref"][0])
    triage.feed(text[0], 0.0)
    for line in text[1:]:
        assert triage.feed(line, 3.0) is None  # still the same pending crash
    triage.feed("[  103.000000] Kernel panic - not syncing: Fatal exception", 4.0)
    reports = triage.due(5.0)
    assert [(r.kind, r.panicked) for r in reports] == [(Kind.KERNEL_OOPS, True)]
    assert reports[0].title == "BUG: unable to handle kernel NULL pointer dereference in fi_write"


def test_force_finalises_when_qemu_is_gone() -> None:
    triage = ConsoleTriage(grace_seconds=10)
    for line in lines(CASES["panic"][0]):
        triage.feed(line, 1.0)
    assert triage.due(2.0) == []
    reports = triage.due(2.0, force=True)
    assert reports[0].kind is Kind.KERNEL_PANIC and reports[0].panicked


def test_repeated_reports_are_reported_again() -> None:
    triage = ConsoleTriage(grace_seconds=5)
    seen = []
    now = 0.0
    for _ in range(3):
        for line in lines(CASES["hung-task"][0]):
            seen += triage.due(now)
            triage.feed(line, now)
        now += 10.0
    seen += triage.due(now)
    assert [r.title for r in seen] == ["INFO: task hung in fi_write"] * 3


def test_crlf_and_interleaved_user_space_output() -> None:
    """User space writes into the middle of the header line and between report lines."""
    triage = ConsoleTriage(grace_seconds=1)
    header = "general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1]"
    assert triage.feed(f"[    2.800000] {header} PREEMFAULT-START gpf uptime=2.83\r", 0.0) == 1.0
    triage.feed("PT SMP NOPTI\r", 0.0)
    for line in lines(log_lines(*REGS, *STACK)):
        triage.feed(line + "\r", 0.1)
        triage.feed("user space chatter\r", 0.1)
    reports = triage.due(1.0)
    assert [(r.kind, r.title) for r in reports] == [
        (Kind.KERNEL_OOPS, "general protection fault in fi_write")
    ]


def test_a_header_cut_before_its_colon_is_still_a_crash() -> None:
    triage = ConsoleTriage(grace_seconds=1)
    triage.feed("[    2.800000] general protection fault, probably for non-canonical addrUSER", 0.0)
    triage.feed("ess 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI", 0.0)
    reports = triage.due(1.0)
    assert reports[0].kind is Kind.KERNEL_OOPS


def log_lines(*text: str) -> str:
    return "\n".join(f"[    2.9{i:05d}] {line}" for i, line in enumerate(text))


def test_only_the_crash_and_its_context_are_classified() -> None:
    """An earlier, already reported crash in the tail is context, not a new report."""
    triage = ConsoleTriage(grace_seconds=1)
    for line in lines(CASES["warning"][0]):
        triage.feed(line, 0.0)
    assert len(triage.due(1.0)) == 1
    for line in lines(CASES["gpf"][0]):
        triage.feed(line, 2.0)
    assert [r.title for r in triage.due(3.0)] == ["general protection fault in fi_write"]


def test_memory_is_bounded_and_a_flood_stays_cheap() -> None:
    triage = ConsoleTriage(grace_seconds=1, context_bytes=16 * 1024)
    chatter = "[   10.000000] systemd[1]: Started something rather ordinary, for the %dth time."
    start = time.perf_counter()
    for i in range(100_000):
        triage.feed(chatter % i, 5.0)
    per_line = (time.perf_counter() - start) / 100_000
    assert per_line < 50e-6, f"{per_line * 1e6:.1f} us per line"
    assert triage._tail_bytes <= 16 * 1024
    # A crash followed by a flood: the window stops growing, the report survives.
    triage.feed("[   11.000000] BUG: kernel NULL pointer dereference, address: 0", 6.0)
    for line in lines(log_lines(*REGS, *STACK)):
        triage.feed(line, 6.0)
    for i in range(10_000):
        triage.feed(chatter % i, 6.5)
    assert triage._window_bytes <= 16 * 1024 + 200
    assert triage.dropped_lines > 0
    reports = triage.due(7.0)
    assert reports[0].title == "BUG: unable to handle kernel NULL pointer dereference in fi_write"


def test_first_boot_is_not_a_reboot_but_a_later_one_is() -> None:
    triage = ConsoleTriage(grace_seconds=1)
    for line in ["Decompressing Linux... Parsing ELF... done.", "Booting the kernel.",
                 "[    0.000000] Linux version 6.1.0"]:  # fmt: skip
        triage.feed(line, 0.0)
    assert triage.due(5.0) == []
    triage.feed("Booting the kernel.", 10.0)
    assert [r.kind for r in triage.due(20.0)] == [Kind.GUEST_RESET]


def test_oom_is_reported_from_the_stream() -> None:
    triage = ConsoleTriage(grace_seconds=1)
    for line in lines(CASES["oom-global"][0]):
        triage.feed(line, 0.0)
    assert [r.kind for r in triage.due(1.0)] == [Kind.OOM]


def test_end_marker_settles_the_report_sooner() -> None:
    triage = ConsoleTriage(grace_seconds=10, settle_seconds=1)
    text = [line for line in lines(CASES["warning"][0]) if "---[ end" not in line]
    deadlines = [triage.feed(line, 2.0) for line in text]
    assert deadlines[1] == 12.0
    triage.feed("[  100.000000] ---[ end trace 0000000000000000 ]---", 3.0)
    assert triage.deadline == 4.0
    assert triage.due(3.5) == []
    assert [r.title for r in triage.due(4.0)] == ["WARNING in fi_write"]
    assert triage.feed("[  101.000000] ---[ end trace 0000000000000000 ]---", 5.0) is None  # nothing pending
