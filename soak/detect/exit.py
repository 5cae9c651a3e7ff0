"""Why a QEMU process ended, when soak did not end it."""

from __future__ import annotations

from soak.detect.backtrace import GdbReport
from soak.detect.qemu_crash import qemu_crash_verdict, sent_by
from soak.detect.verdict import Verdict
from soak.kinds import Kind


def qemu_exit_verdict(returncode: int, *, guest_shutdown: bool, stderr_tail: str = "",
                      backtrace: GdbReport | None = None) -> Verdict:
    """The failure an unrequested QEMU exit means.

    ``guest_shutdown`` is True when QMP reported a guest-initiated SHUTDOWN just
    before: QEMU exiting with 0 then means the guest powered itself off. A death
    by a signal or an error code is titled by `qemu_crash_verdict` (QEMU's last
    words, else ``backtrace``'s frames); ``stderr_tail`` must be this boot's only.
    """
    if returncode == 0:
        if guest_shutdown:
            return Verdict(Kind.GUEST_SHUTDOWN, "guest powered off")
        sender = sent_by(stderr_tail)
        if sender is not None:  # SIGTERM/SIGINT/SIGHUP make QEMU exit 0 and say who sent them
            name = sender.split()[0]
            return Verdict(Kind.QEMU_CRASH, f"QEMU terminated by {name} (sent by another process)",
                           message=f"QEMU was sent {sender}")
        return Verdict(Kind.QEMU_CRASH, "QEMU exited unexpectedly with code 0",
                       message=qemu_crash_verdict(0, stderr_tail).message)
    return qemu_crash_verdict(returncode, stderr_tail, backtrace)
