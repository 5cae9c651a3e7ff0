"""Is the host itself starving its guests? Then a silent guest is not the guest's fault.

A heartbeat can stop because the guest hangs, or because the host gave its
vCPUs no CPU time (overcommit, another tenant, a stalled soak). The kernel's
pressure stall information says how much runnable work waited for a CPU; the
load average is the fallback on kernels without PSI.
"""

from __future__ import annotations

import os
from pathlib import Path

STARVED_PSI_SOME_AVG10 = 60.0
"""Percent of the last 10 s in which some runnable task waited for a CPU."""
STARVED_LOAD_PER_CPU = 3.0
STARVED_VCPU_SHARE = 0.2
"""Runnable vCPU threads that got less than this share of a core were starved."""
IDLE_VCPU_SHARE = 0.5
"""vCPU threads that used less than this share of a core were not spinning (as `soak.detect.hang`)."""
LOOP_LAG_S = 2.0
"""soak's own event loop woke this late: the host did not run soak either."""


STARVED_PSI_SOME_AVG60 = 50.0
"""Percent of the last minute in which some runnable task waited for a CPU: a host this busy
steals whole seconds from its guests' vCPUs."""


def cpu_pressure(window: str = "avg10") -> float | None:
    """PSI ``some`` for CPUs over ``window`` (avg10, avg60, avg300), in percent (None without PSI)."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(first.split(f"{window}=")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None


def host_starved_lately() -> str | None:
    """Why the host could not run its guests' vCPUs over the last minute, or None.

    A guest's own watchdogs (soft lockup, RCU stall, hung task) measure time its vCPUs
    lost; on a host this starved they report the host, not a guest bug.
    """
    psi = cpu_pressure("avg60")
    if psi is not None:
        return f"host CPU pressure {psi:.0f}% over the last minute" if psi >= STARVED_PSI_SOME_AVG60 else None
    load = os.getloadavg()[1] / (os.cpu_count() or 1)
    return f"host load {load:.1f} per CPU over the last 5 minutes" if load >= STARVED_LOAD_PER_CPU else None


def host_overloaded() -> bool:
    psi = cpu_pressure()
    if psi is not None:
        return psi >= STARVED_PSI_SOME_AVG10
    return os.getloadavg()[0] / (os.cpu_count() or 1) >= STARVED_LOAD_PER_CPU


def host_starved(*, vcpu_share: float | None, vcpus_runnable: bool, loop_lag_s: float) -> bool:
    """The host, not the guest, explains a missed heartbeat.

    Either soak itself ran late, or the vCPUs wanted a CPU and got none, or they sat idle
    while the host was starved for a whole minute: an idle guest waits for timers and I/O
    that QEMU's own starved threads deliver late. A guest spinning its vCPUs is hung
    whatever the host does.
    """
    if loop_lag_s >= LOOP_LAG_S:
        return True
    starved_vcpus = vcpus_runnable and vcpu_share is not None and vcpu_share < STARVED_VCPU_SHARE
    if starved_vcpus and host_overloaded():
        return True
    idle = vcpu_share is None or vcpu_share < IDLE_VCPU_SHARE
    return idle and host_starved_lately() is not None
