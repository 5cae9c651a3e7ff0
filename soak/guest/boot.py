"""The state of one boot: one machine (a QEMU process), from launch to reap.

::

    starting --hello--> ready <--window over-- held        (a pause, a SIGSTOP ...)
        |                 |  --fault window-->   |
        |                 +--reset fault--> rebooting --new hello--> ready
        |                 |                      |
        +-----------------+----------------------+--failure--> failed --(evidence, kill)--> ended
        +-----------------+----------------------+--run stops-> stopping --(stop ladder)--> ended

``failed`` and ``stopping`` are the two ways out; once a boot is in either,
later symptoms of it (the exit after a kill, a STOP after a panic) are
consequences, not new failures. Moving along an edge that is not drawn is a bug
in soak and raises `BootStateError`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum

from soak.classify import ConsoleTriage
from soak.detect.trend import ResourceTrends
from soak.detect.verdict import Verdict
from soak.load.devload import DeviceLoadDriver
from soak.load.driver import LoadDriver
from soak.machine import Machine


class Phase(StrEnum):
    STARTING = "starting"
    """QEMU runs; the guest has not said hello yet (the boot timeout runs)."""
    READY = "ready"
    """The guest is up and watched: heartbeats are due."""
    HELD = "held"
    """A fault window (pause, SIGSTOP, hot-plug ...): the guest cannot heartbeat meanwhile."""
    REBOOTING = "rebooting"
    """A reset fault: the next hello with a new boot id is its outcome (the boot timeout runs)."""
    FAILED = "failed"
    """A failure ends the boot: its evidence is taken, then QEMU is killed."""
    STOPPING = "stopping"
    """soak ends the boot: the run stops."""
    ENDED = "ended"
    """QEMU is gone."""


WATCHING = frozenset({Phase.STARTING, Phase.READY, Phase.HELD, Phase.REBOOTING})
"""Phases in which a symptom is a finding."""

_EDGES: dict[Phase, frozenset[Phase]] = {
    Phase.STARTING: frozenset({Phase.READY}),
    Phase.READY: frozenset({Phase.HELD, Phase.REBOOTING}),
    Phase.HELD: frozenset({Phase.READY}),
    Phase.REBOOTING: frozenset({Phase.READY}),
    Phase.FAILED: frozenset(),
    Phase.STOPPING: frozenset(),
    Phase.ENDED: frozenset(),
}


@dataclass
class MachineWatch:
    """The watchers of one machine of a boot; a live migration gives a boot a second machine."""

    machine: Machine
    console_done: asyncio.Event = field(default_factory=asyncio.Event)
    """Its console reached EOF (QEMU closed it): its last words are in."""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    """Its exit, QMP and sampler watchers: cancelled when the machine is replaced or the boot ends."""
    agent_task: asyncio.Task[None] | None = None
    """Its agent watcher: when the machine is replaced it reads on until the old QEMU is gone, so
    what the guest said just before the switch (a job's exit) is not lost; cancelled at the boot's end."""


class BootStateError(RuntimeError):
    """A boot was moved along an edge of its state diagram that does not exist (a soak bug)."""


class BootSlot:
    """One of the run's boot slots, held from launch until the guest is up (release is idempotent)."""

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
    """One boot's state; every time here is `soak.clock.now()`."""

    number: int
    machine: Machine
    started: float
    triage: ConsoleTriage
    slot: BootSlot
    trends: ResourceTrends
    phase: Phase = Phase.STARTING
    failure: Verdict | None = None
    """The failure that ended this boot (phase failed)."""
    host_trouble: str | None = None
    """The host or soak, not the guest, ended this boot (phase failed): QEMU refused to start,
    the host's OOM killer killed it ..."""
    findings: int = 0
    """Guest failures recorded in this boot: once there is one, what follows comes from it."""
    retire: bool = False
    """Booting again is pointless (QEMU refuses this VM's configuration)."""
    stop_reason: str | None = None
    """Why soak ended this boot (phase stopping): the run's stop reason."""
    ready_at: float | None = None
    boot_id: str | None = None
    """The guest's own boot id from its HELLO: a new one means the guest rebooted."""
    last_heartbeat: float | None = None
    heartbeats: int = 0
    guest_shutdown: bool = False
    """QMP reported a guest-initiated poweroff."""
    phase_since: float = 0.0
    """When the boot entered its current phase."""
    over: asyncio.Event = field(default_factory=asyncio.Event)
    """The boot must end now: a failure was recorded, or QEMU is gone."""
    qmp_connected: asyncio.Event = field(default_factory=asyncio.Event)
    watch_changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Wakes the watchdog when its deadline may have moved earlier."""
    load: LoadDriver | None = None
    load_task: asyncio.Task[None] | None = None
    devload: DeviceLoadDriver | None = None
    """The verified loads of the VM's disks, network and RNG."""
    devload_task: asyncio.Task[None] | None = None

    def _enter(self, phase: Phase, now: float) -> None:
        if phase not in _EDGES[self.phase]:
            raise BootStateError(f"boot {self.number} cannot go from {self.phase} to {phase}")
        self.phase, self.phase_since = phase, now
        self.watch_changed.set()

    @property
    def watching(self) -> bool:
        """Symptoms are findings: the boot neither failed nor is being stopped."""
        return self.phase in WATCHING

    @property
    def alive(self) -> bool:
        """Watched and QEMU still there: a fault may be applied."""
        return self.watching and self.machine.returncode is None

    def become_ready(self, now: float) -> None:
        self._enter(Phase.READY, now)
        self.ready_at = self.last_heartbeat = now

    def hold(self, now: float) -> None:
        """A fault window opens: no heartbeats are expected until `release`."""
        self._enter(Phase.HELD, now)

    def release(self, now: float) -> None:
        """The window is over (if the boot is still held). The hang clock stood still during it:
        a guest that was already silent before the window stays as overdue as it was, so a
        string of back-to-back windows (migrations, pauses) never hides a hung guest."""
        if self.phase is Phase.HELD:
            held = now - self.phase_since
            self._enter(Phase.READY, now)
            if self.last_heartbeat is not None:
                self.last_heartbeat += held

    def expect_reboot(self, now: float) -> None:
        self._enter(Phase.REBOOTING, now)

    def rebooted(self, boot_id: str, now: float) -> None:
        """The expected reboot happened: the guest said hello with a new boot id."""
        self._enter(Phase.READY, now)
        self.boot_id = boot_id
        self.last_heartbeat = now

    def fail(self, verdict: Verdict) -> bool:
        """Record that ``verdict`` ends this boot; False if it already failed or is stopping."""
        if not self.watching:
            return False
        self.phase, self.failure = Phase.FAILED, verdict
        self.watch_changed.set()
        return True

    def fail_by_host(self, message: str, *, retire: bool) -> bool:
        """The host or soak ended this boot: no guest failure; ``retire`` if booting again is pointless."""
        if not self.watching:
            return False
        self.phase, self.host_trouble, self.retire = Phase.FAILED, message, retire
        self.watch_changed.set()
        return True

    def stop(self, reason: str) -> bool:
        """soak ends this boot; False if it already failed or is stopping."""
        if not self.watching:
            return False
        self.phase, self.stop_reason = Phase.STOPPING, reason
        self.watch_changed.set()
        return True

    def end(self) -> None:
        """QEMU is gone and reaped; nothing about this boot is watched any more."""
        self.phase = Phase.ENDED
        self.over.set()
