"""Why a QEMU process ended, when soak did not end it."""

from __future__ import annotations

import signal

from soak.detect.verdict import Verdict
from soak.kinds import Kind


def qemu_exit_verdict(returncode: int, *, guest_shutdown: bool, stderr_tail: str = "") -> Verdict:
    """The failure an unrequested QEMU exit means.

    ``guest_shutdown`` is True when QMP reported a guest-initiated SHUTDOWN just
    before: QEMU exiting with 0 then means the guest powered itself off.
    """
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return Verdict(Kind.QEMU_CRASH, f"QEMU killed by {name}", message=_last_line(stderr_tail))
    if returncode == 0:
        if guest_shutdown:
            return Verdict(Kind.GUEST_SHUTDOWN, "guest powered off")
        return Verdict(
            Kind.QEMU_CRASH, "QEMU exited unexpectedly with code 0", message=_last_line(stderr_tail)
        )
    return Verdict(
        Kind.QEMU_CRASH, f"QEMU exited with code {returncode}", message=_last_line(stderr_tail)
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][-300:] if lines else ""
