"""The state of one boot: one QEMU process, from spawn to reap.

::

    starting --hello--> ready --(stop requested)--> stopping --> ended
        |                 |
        +----failure------+--> failed (evidence taken, then killed) --> ended

``failed`` and ``stopping`` are the two ways out; once either is set, later
symptoms of the same boot (the exit after a kill, a STOP after a panic) are
consequences, not new failures.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from soak.classify import ConsoleTriage
from soak.detect.trend import ResourceTrends
from soak.detect.verdict import Verdict
from soak.load.driver import LoadDriver
from soak.vm.process import QemuProcess


class BootSlot:
    """One of the run's boot slots, held from spawn until the guest is up (release is idempotent)."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self._held = False

    async def acquire(self) -> None:
        await self._slots.acquire()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()


@dataclass
class Boot:
    number: int
    qemu: QemuProcess
    argv: list[str]
    started: float
    """``time.monotonic()`` at spawn; every time here is monotonic."""
    triage: ConsoleTriage
    slot: BootSlot
    trends: ResourceTrends
    ready_at: float | None = None
    boot_id: str | None = None
    """The guest's own boot id from its HELLO: a new one means the guest rebooted."""
    last_heartbeat: float | None = None
    heartbeats: int = 0
    stopping: str | None = None
    """Why soak itself is ending this boot (its exit is then not a failure)."""
    failed: Verdict | None = None
    """The failure that ended this boot."""
    guest_shutdown: bool = False
    """QMP reported a guest-initiated poweroff."""
    over: asyncio.Event = field(default_factory=asyncio.Event)
    console_done: asyncio.Event = field(default_factory=asyncio.Event)
    qmp_connected: asyncio.Event = field(default_factory=asyncio.Event)
    triage_timer: asyncio.TimerHandle | None = None
    crash_seen_at: float | None = None
    """When the console line that opened the pending kernel report arrived."""
    watch_changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Wakes the watchdog when its deadline moves earlier (ready) or a fault window ends."""
    watch_suspended: int = 0
    """Faults in progress during which the guest cannot heartbeat (a pause, a SIGSTOP)."""
    expecting_reboot: bool = False
    """A reset fault is in progress: the next new boot id is its outcome, not a failure."""
    load: LoadDriver | None = None
    load_task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        """Running and watched: not failed, not stopping, QEMU not gone."""
        return self.failed is None and self.stopping is None and self.qemu.returncode is None
