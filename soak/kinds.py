"""The failure taxonomy: every kind of failure soak can record, in one place.

Kinds are low-cardinality on purpose: they become Prometheus label values and
the first column of `soak summary`. The *title* (signature) carries the detail
and is what repeats are counted by; the kind only says which family it is.

Adding a kind needs a reason: a user would triage it differently from every
existing kind.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """A family of failures. Values are stable: they appear in journals and metrics."""

    # Found on the guest's serial console by the classifier (soak.classify).
    KERNEL_PANIC = "kernel-panic"
    """`Kernel panic - not syncing`, also seen as a pvpanic GUEST_PANICKED event."""
    KERNEL_OOPS = "kernel-oops"
    """NULL dereference, paging request, GPF, `kernel BUG at`, invalid opcode, divide error ..."""
    KERNEL_WARNING = "kernel-warning"
    """`WARNING: CPU: N PID: N at ...` and the other WARN_ON() reports."""
    SOFT_LOCKUP = "soft-lockup"
    HARD_LOCKUP = "hard-lockup"
    RCU_STALL = "rcu-stall"
    HUNG_TASK = "hung-task"
    MEMORY_SAFETY = "memory-safety"
    """KASAN, KFENCE, KMSAN, UBSAN, slab corruption, list corruption, refcount, double free."""
    LOCKDEP = "lockdep"
    MEMORY_LEAK = "memory-leak"
    """kmemleak reports inside the guest (host-side growth is RESOURCE_LEAK)."""
    OOM = "oom"

    # Found by the supervisor's own watchers.
    BOOT_TIMEOUT = "boot-timeout"
    """The guest agent did not say hello within the boot timeout."""
    GUEST_HANG = "guest-hang"
    """Heartbeats stopped while QEMU answers QMP and the VM is running."""
    QEMU_HANG = "qemu-hang"
    """Heartbeats stopped and QMP does not answer either."""
    QEMU_CRASH = "qemu-crash"
    """QEMU died by a signal or exited with an error code nobody asked for."""
    GUEST_RESET = "guest-reset"
    """The guest rebooted itself (triple fault, reboot without panic text)."""
    GUEST_SHUTDOWN = "guest-shutdown"
    """The guest powered itself off although nobody asked it to."""
    UNEXPECTED_PAUSE = "unexpected-pause"
    """The VM stopped running although nothing paused it (e.g. a KVM internal error)."""
    WORKLOAD_FAILURE = "workload-failure"
    """stress-ng failed a verification or a stressor died: possible data corruption."""
    RESOURCE_LEAK = "resource-leak"
    """Sustained growth of a QEMU or guest resource (RSS, threads, fds, guest memory)."""
    MIGRATION_FAILURE = "migration-failure"
    """A live migration failed or did not converge in time (QEMU's error in the message)."""
    IO_ERROR = "io-error"
    """A guest device failed a request (a disk read or write returned EIO, the RNG gave nothing):
    the hypervisor's device path failed the guest, which saw it. Silent corruption is a workload-failure."""


CONSOLE_KINDS: frozenset[Kind] = frozenset(
    {
        Kind.KERNEL_PANIC,
        Kind.KERNEL_OOPS,
        Kind.KERNEL_WARNING,
        Kind.SOFT_LOCKUP,
        Kind.HARD_LOCKUP,
        Kind.RCU_STALL,
        Kind.HUNG_TASK,
        Kind.MEMORY_SAFETY,
        Kind.LOCKDEP,
        Kind.MEMORY_LEAK,
        Kind.OOM,
        Kind.GUEST_RESET,  # "unexpected kernel reboot": the kernel booted again mid-run
        Kind.WORKLOAD_FAILURE,  # a user-space runtime's fatal error on the console (Go panic, SYZFAIL)
    }
)
"""Kinds the console classifier may produce; the others come only from the supervisor."""


LOST_TIME_KINDS: frozenset[Kind] = frozenset({Kind.SOFT_LOCKUP, Kind.HARD_LOCKUP, Kind.RCU_STALL, Kind.HUNG_TASK})
"""Kinds a guest's watchdogs report when its vCPUs lost time: a starved host causes them too, so
soak checks the host before it blames the guest (`soak.hostload.host_starved_lately`)."""
