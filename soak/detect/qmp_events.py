"""What a QMP event means for a guest that nobody is touching on purpose.

Events caused by soak itself (a pause fault, a reset fault, the stop ladder)
are filtered out by the caller before they get here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from soak.detect.verdict import Verdict
from soak.kinds import Kind


def qmp_event_verdict(name: str, data: Mapping[str, Any]) -> Verdict | None:
    """A failure for events that are failures on their own, else None."""
    if name == "GUEST_PANICKED":
        return Verdict(Kind.KERNEL_PANIC, "kernel panic (pvpanic event, no console report)")
    if name == "RESET" and data.get("guest"):
        return Verdict(Kind.GUEST_RESET, "guest reset itself")
    if name == "SHUTDOWN" and data.get("guest") and data.get("reason") == "guest-reset":
        return Verdict(Kind.GUEST_RESET, "guest reset itself")
    return None


def paused_verdict(run_state: str) -> Verdict:
    """The VM is not running although nothing paused it."""
    if run_state == "internal-error":
        return Verdict(Kind.UNEXPECTED_PAUSE, "VM stopped: hypervisor internal error")
    if run_state == "io-error":
        return Verdict(Kind.UNEXPECTED_PAUSE, "VM stopped: I/O error")
    if run_state == "guest-panicked":
        return Verdict(Kind.KERNEL_PANIC, "kernel panic (pvpanic event, no console report)")
    return Verdict(Kind.UNEXPECTED_PAUSE, f"VM paused unexpectedly ({run_state})")
