"""QEMU's own crashes, titled by what QEMU said last or, failing that, where it stopped.

QEMU dies of its own bugs in a few recognisable ways, each leaving words on
stderr before the signal (QEMU 7.2, glibc 2.36, GLib 2.74)::

    qemu-system-x86_64: ../hw/core/cpu.c:123: cpu_foo: Assertion `x != NULL' failed.
    **
    ERROR:../qom/object.c:1006:object_class_dynamic_cast_assert: assertion failed: (klass)
    malloc(): largebin double linked list corrupted (nextsize)
    *** stack smashing detected ***: terminated
    qemu: fatal: Trying to execute code outside RAM or ROM at 0x00000000000a0000
    qemu: hardware error: pci: bad address
    Unexpected error in object_property_find_err() at ../qom/object.c:1304:
    qemu-system-x86_64: Property 'cpu.foo' not found

The title names the message with line numbers, addresses and numbers replaced
the way the console classifier does it for kernels, so every repeat of one bug
counts under one title. Without words, the innermost frames of QEMU itself in
the core's backtrace name it; without a core, the signal does.
"""

from __future__ import annotations

import re
import signal

from soak.classify.titles import normalise, sanitise
from soak.detect.backtrace import GdbReport
from soak.detect.verdict import Verdict
from soak.kinds import Kind

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\s+")
"""``-msg timestamp=on`` puts one before every error_report line."""
_PROGRAM = r"(?:qemu-system-[\w-]+|qemu-kvm|qemu)"

_ASSERT = re.compile(rf"^{_PROGRAM}: (?P<file>\S+?):\d+: (?P<func>[\w.]+): Assertion `(?P<expr>.*)' failed\.?$")
_GLIB_ASSERT = re.compile(
    r"^(?:Bail out! )?ERROR:(?P<file>\S+?):\d+:(?P<func>[\w.]+): "
    r"(?:assertion failed: \((?P<expr>.*)\)|(?P<what>code should not be reached|.+))$"
)
_GLIB_ERROR = re.compile(r"^\(\S+:\d+\): (?P<domain>[\w-]*)-ERROR \*\*: (?:[\d:.]+: )?(?P<msg>.+)$")
_GLIBC = re.compile(
    r"^(?P<msg>(?:[a-z_]+\(\)|free|malloc|realloc): .+|double free or corruption.*|corrupted [a-z].*"
    r"|\*\*\* (?:stack smashing|buffer overflow) detected \*\*\*.*|Fatal glibc error: .+)$"
)
_FATAL = re.compile(rf"^{_PROGRAM}: (?P<what>fatal|hardware error): (?P<msg>.+)$")
_EXIT_ERROR = re.compile(r"^qemu: (?P<func>\w+): (?P<msg>.+)$")
"""``error_exit`` of util/qemu-thread-posix.c: ``qemu: qemu_mutex_lock_impl: Invalid argument``."""
_TCG_FATAL = re.compile(r"^(?P<file>\S+?):\d+: tcg fatal error$")
_UNEXPECTED = re.compile(r"^Unexpected error in (?P<func>\w+)\(\) at \S+:$")
_MESSAGE = re.compile(rf"^{_PROGRAM}: (?P<msg>.+)$")
_NOT_LAST_WORDS = re.compile(r"^(?:warning|info): |^terminating on signal ", re.IGNORECASE)
_SENT = re.compile(r"terminating on signal (?P<sig>\d+) from pid (?P<pid>\d+)(?: \((?P<comm>[^)]*)\))?")


def last_words(stderr_tail: str) -> str | None:
    """The title-worthy part of what QEMU said before it died, or None.

    Specific forms (assertions, glibc's heap checks, ``qemu: fatal``) win over a
    plain error line, wherever they are in the tail; among equals the last wins.
    """
    lines = [TIMESTAMP.sub("", line).rstrip() for line in stderr_tail.splitlines()]
    lines = [line for line in lines if line.strip()]
    specific: str | None = None
    generic: str | None = None
    for i, line in enumerate(lines):
        words = _specific(line, lines[i + 1] if i + 1 < len(lines) else "")
        if words is not None:
            specific = words
            continue
        message = _MESSAGE.match(line)
        if message is not None and not _NOT_LAST_WORDS.search(message["msg"]):
            generic = message["msg"]
    return specific or generic


def _specific(line: str, following: str) -> str | None:
    if m := _ASSERT.match(line):
        return f"assertion failed in {m['func']}: {m['expr']}"
    if m := _GLIB_ASSERT.match(line):
        what = f"assertion failed in {m['func']}: {m['expr']}" if m["expr"] is not None else (
            f"assertion failed in {m['func']}: {m['what']}")
        return what
    if m := _GLIB_ERROR.match(line):
        return f"{m['domain'] or 'GLib'} error: {m['msg']}"
    if m := _GLIBC.match(line):
        return f"abort: {m['msg'].removesuffix(': terminated')}"
    if m := _FATAL.match(line):
        return f"{m['what']}: {m['msg']}"
    if m := _TCG_FATAL.match(line):
        return f"fatal: tcg fatal error in {m['file'].lstrip('./')}"
    if m := _EXIT_ERROR.match(line):
        return f"fatal: {m['func']}: {m['msg']}"
    if (m := _UNEXPECTED.match(line)) and (next_msg := _MESSAGE.match(following)):
        return f"unexpected error in {m['func']}: {next_msg['msg']}"
    return None


def signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def qemu_crash_verdict(returncode: int, stderr_tail: str, backtrace: GdbReport | None = None) -> Verdict:
    """The failure a QEMU death by itself is: kind ``qemu-crash``, titled by QEMU's last words,
    else by the innermost frame of QEMU itself in ``backtrace``, else by the signal or code.

    ``stderr_tail`` must hold this boot's stderr only (an earlier boot's words would name
    the wrong crash). ``returncode`` is negative for a signal, as asyncio gives it.
    """
    words = last_words(stderr_tail)
    how = f"killed by {signal_name(returncode)}" if returncode < 0 else f"exited with code {returncode}"
    message = _last_line(stderr_tail)
    if backtrace is not None and backtrace.sender_pid is not None:
        # kill(2) from another process: not a bug of QEMU's, whoever did it must be named
        return Verdict(Kind.QEMU_CRASH, f"QEMU {how} (sent by another process)",
                       message=f"signal sent by pid {backtrace.sender_pid}; {message}".rstrip("; "))
    if words is not None:
        if returncode < 0 and words.startswith(("assertion", "abort", "fatal", "hardware", "unexpected")):
            return Verdict(Kind.QEMU_CRASH, sanitise(f"QEMU {normalise(words)}"), message=message)
        return Verdict(Kind.QEMU_CRASH, sanitise(f"QEMU {how}: {normalise(words)}"), message=message)
    frames = backtrace.culprit() if backtrace is not None else []
    if frames:  # a name, or module+offset: stable for one QEMU build, so not normalised
        return Verdict(Kind.QEMU_CRASH, sanitise(f"QEMU {how} in {frames[0]}"), message=message)
    return Verdict(Kind.QEMU_CRASH, f"QEMU {how}", message=message)


def sent_by(stderr_tail: str) -> str | None:
    """``SIGTERM from pid 123 (kill)`` when QEMU said who asked it to terminate."""
    found = None
    for match in _SENT.finditer(stderr_tail):
        found = match
    if found is None:
        return None
    comm = f" ({found['comm']})" if found["comm"] else ""
    return f"{signal_name(-int(found['sig']))} from pid {found['pid']}{comm}"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return TIMESTAMP.sub("", lines[-1])[-300:] if lines else ""
