"""Why a QEMU process ended, when soak did not end it."""

from __future__ import annotations

from soak.detect.backtrace import GdbReport
from soak.detect.qemu_crash import qemu_crash_verdict, sent_by, signal_name
from soak.detect.verdict import Verdict
from soak.kinds import Kind


def qemu_exit_verdict(returncode: int, *, guest_shutdown: bool, stderr_tail: str = "",
                      boot_stderr: str | None = None, backtrace: GdbReport | None = None) -> Verdict:
    """The failure an unrequested QEMU exit means.

    ``guest_shutdown`` is True when QMP reported a guest-initiated SHUTDOWN just
    before: QEMU exiting with 0 then means the guest powered itself off.

    ``boot_stderr`` is what *this* QEMU wrote to stderr (not earlier boots'): with it
    (or a ``backtrace`` of its core) a death is titled by `qemu_crash_verdict` from
    QEMU's last words or frames. ``stderr_tail``, which may span earlier boots, only
    fills the message: an earlier boot's last words must never name this crash.
    """
    if returncode == 0:
        if guest_shutdown:
            return Verdict(Kind.GUEST_SHUTDOWN, "guest powered off")
        sender = sent_by(boot_stderr) if boot_stderr is not None else None
        if sender is not None:  # SIGTERM/SIGINT/SIGHUP make QEMU exit 0 and say who sent them
            return Verdict(Kind.QEMU_CRASH, f"QEMU terminated by {sender.split()[0]} (sent by another process)",
                           message=f"QEMU was sent {sender}")
        return Verdict(Kind.QEMU_CRASH, "QEMU exited unexpectedly with code 0",
                       message=_last_line(boot_stderr if boot_stderr is not None else stderr_tail))
    if boot_stderr is not None or backtrace is not None:
        return qemu_crash_verdict(returncode, boot_stderr or "", backtrace)
    how = f"killed by {signal_name(returncode)}" if returncode < 0 else f"exited with code {returncode}"
    return Verdict(Kind.QEMU_CRASH, f"QEMU {how}", message=_last_line(stderr_tail))


def _last_line(text: str) -> str:
    return qemu_crash_verdict(1, text).message
