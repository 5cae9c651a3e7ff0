"""A boot that timed out, titled by where it stopped: different stops are different bugs.

A guest that never printed (QEMU or firmware stuck), one whose kernel froze
mid-boot (its console stopped at ``sched_clock: Marking stable``), and one that
booted but whose agent never said hello are three bugs, not one. The title
names the stage reached, and for a kernel that stopped, its last line with the
timestamp, numbers and addresses taken out (the console classifier's rules),
so a repeat of the same freeze counts under the same title.

Stages, from the boot's console (``-serial stdio``, no ``quiet``):

    no byte at all                          -> "boot timeout: no console output"
    bytes, but no kernel line               -> "boot timeout: no kernel output"
    kernel lines, init not started          -> 'boot timeout: kernel stopped after "LINE"'
    "Run /init as init process" or init's   -> "boot timeout: init started, no agent hello"
    "soak-agent: ready" (agent up)          -> "boot timeout: agent started, no hello received"
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from soak.classify.titles import finish
from soak.detect.verdict import Verdict
from soak.kinds import Kind

_PRINTK_TIME = re.compile(r"^\s*\[\s*\d+\.\d+\]\s?")
_KERNEL_START = re.compile(r"\bLinux version \d|^\s*\[\s*\d+\.\d+\] ")
_INIT_STARTED = re.compile(r"\bRun \S+ as init process|^soak-agent: ")
_AGENT_READY = re.compile(r"^soak-agent: ready\b")
_SOAK_MARKER = re.compile(r"^===== soak: .* =====$")
_VARYING = re.compile(r"\d|NUM|ADDR|LINE")
MIN_HEAD = 12
"""A cut line keeps at least this much, so ``smpboot: CPU0: ...`` is not cut to ``smpboot``."""
MAX_LINE_TITLE = 80
"""Characters of the last console line a title keeps."""


def boot_timeout_verdict(console_tail: Iterable[str], *, bytes_seen: int, agent_expected: bool = True) -> Verdict:
    """The boot timeout as a failure, titled by the stage the boot reached.

    ``console_tail``: the last lines of *this boot's* console (a few dozen are plenty;
    soak's own boot marker lines are ignored). ``bytes_seen``: console bytes of this
    boot, 0 when the guest never printed. ``agent_expected``: False for a user's image
    without soak's agent (readiness then means QEMU running, never a hello).
    """
    lines = [line.rstrip("\r\n") for line in console_tail]
    lines = [line for line in lines if line.strip() and not _SOAK_MARKER.match(line.strip())]
    if bytes_seen == 0 or not lines:
        return Verdict(Kind.BOOT_TIMEOUT, "boot timeout: no console output",
                       message=f"{bytes_seen} console bytes")
    if any(_AGENT_READY.search(line) for line in lines):
        return Verdict(Kind.BOOT_TIMEOUT, "boot timeout: agent started, no hello received",
                       message="the agent printed 'ready' on the console, but its hello never reached soak")
    last = lines[-1]
    if any(_INIT_STARTED.search(_PRINTK_TIME.sub("", line)) for line in lines):
        title = "boot timeout: init started, no agent hello" if agent_expected else (
            "boot timeout: init started, VM never running")
        return Verdict(Kind.BOOT_TIMEOUT, title, message=f"last console line: {last[-300:]}")
    if not any(_KERNEL_START.search(line) for line in lines):
        return Verdict(Kind.BOOT_TIMEOUT, "boot timeout: no kernel output",
                       message=f"last console line: {last[-300:]}")
    return Verdict(Kind.BOOT_TIMEOUT, f'boot timeout: kernel stopped after "{stable_line(last)}"',
                   message=f"last console line: {last[-300:]}")


def stable_line(line: str) -> str:
    """A console line without what varies between boots: timestamp, numbers, addresses.

    Cut before the first varying token when enough is left to recognise the line
    (``sched_clock: Marking stable (2812345678, 123)->(...)`` -> ``sched_clock: Marking stable``).
    """
    text = finish(_PRINTK_TIME.sub("", line)).replace('"', "'")
    words = text.split()
    for i, word in enumerate(words):
        head = " ".join(words[:i]).rstrip(" :,;=([{")
        if _VARYING.search(word) and len(head) >= MIN_HEAD:
            return head[:MAX_LINE_TITLE]
    return text[:MAX_LINE_TITLE].rstrip()
