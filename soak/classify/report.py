"""The Report: one kernel failure found on a console, as the rest of soak sees it."""

from __future__ import annotations

from dataclasses import dataclass, field

from soak.kinds import Kind


@dataclass(frozen=True)
class Report:
    """A failure report extracted from console text.

    ``title`` is the signature repeats are counted by; ``alt_titles`` are other
    names of the same bug (two reports are one bug if their title/ALT sets
    meet). ``corrupted`` says the report was too damaged to trust the title.
    ``panicked`` says the kernel panicked as a consequence (a "Kernel panic -
    not syncing" line followed the report, or the report is that panic).
    Offsets are into the classified text after carriage returns are removed.
    """

    kind: Kind
    title: str
    corrupted: bool
    alt_titles: tuple[str, ...] = ()
    text: str = field(default="", repr=False)
    """The extracted report: context lines before the header, then the report itself."""
    syz_type: str = ""
    """syzkaller's crash type (e.g. KASAN-READ, HANG); "" where syzkaller has none."""
    panicked: bool = False
    suppressed: bool = False
    """The output matches a known not-a-kernel-bug pattern (e.g. the fuzzer killed by OOM)."""
    corrupted_reason: str = ""
    frame: str = ""
    """The function the title blames (the text after its last " in "), if any."""
    start: int = 0
    end: int = 0
