"""Why heartbeats stopped: guest hang, QEMU hang, an unexpected pause, or a starved host.

The caller gathers the facts (does QMP answer, the run state, the QEMU
process state, how much CPU its vCPU threads used meanwhile, how late the
event loop itself ran) and this decides, before anything is killed.
"""

from __future__ import annotations

from dataclasses import dataclass

from soak.detect.qmp_events import paused_verdict
from soak.detect.verdict import Verdict
from soak.kinds import Kind

BUSY_SHARE = 0.5
"""A vCPU thread using more than half a core is spinning, not idle."""


@dataclass(frozen=True, slots=True)
class HangFacts:
    qmp_answered: bool
    run_state: str | None
    """QMP's status (running, paused, internal-error ...) when it answered."""
    process_state: str
    """psutil's status of QEMU: running, sleeping, stopped, zombie, gone ..."""
    vcpu_busy_share: float | None
    """Mean CPU share of the vCPU threads over the diagnosis window (None: unknown)."""
    host_starved: bool = False
    """The host could not run soak or QEMU on time (load, steal): not the guest's fault."""


def hang_verdict(facts: HangFacts) -> Verdict | None:
    """The failure behind a lost heartbeat; None when the host, not the guest, is to blame."""
    if facts.host_starved and facts.process_state != "stopped":  # a stopped QEMU is no host's doing
        return None
    if not facts.qmp_answered:
        if facts.process_state == "stopped":
            return Verdict(Kind.QEMU_HANG, "QEMU hang: QMP not answering (process stopped)")
        return Verdict(Kind.QEMU_HANG, "QEMU hang: QMP not answering")
    if facts.run_state not in (None, "running"):
        return paused_verdict(facts.run_state)
    if facts.vcpu_busy_share is None:
        return Verdict(Kind.GUEST_HANG, "guest hang: no heartbeat")
    if facts.vcpu_busy_share >= BUSY_SHARE:
        return Verdict(Kind.GUEST_HANG, "guest hang: no heartbeat, vCPUs busy")
    return Verdict(Kind.GUEST_HANG, "guest hang: no heartbeat, vCPUs idle")
