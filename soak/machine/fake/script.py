"""What a fake guest does, and when: the actions of its script."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from soak.machine.base import Postmortem


@dataclass(frozen=True, slots=True)
class Print:
    """The guest prints these console lines."""

    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Exit:
    """QEMU exits with ``code`` (negative: killed by that signal)."""

    code: int


@dataclass(frozen=True, slots=True)
class Hang:
    """The guest stops heartbeating; its vCPUs spin (``busy``) or idle. QMP still answers.

    ``starved``: the vCPUs want to run but get no CPU (the host is overloaded).
    """

    busy: bool = True
    starved: bool = False


@dataclass(frozen=True, slots=True)
class Stop:
    """The VM stops running by itself (QMP STOP; the run state becomes ``state``)."""

    state: str = "internal-error"


@dataclass(frozen=True, slots=True)
class Freeze:
    """QEMU itself hangs: no heartbeats, and QMP stops answering."""


@dataclass(frozen=True, slots=True)
class Event:
    """QEMU emits a QMP event."""

    name: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reboot:
    """The guest reboots itself: a new boot id, hello again after ``hello_after``."""


@dataclass(frozen=True, slots=True)
class Panic:
    """A kernel panic: the report on the console, then pvpanic's GUEST_PANICKED and STOP."""

    message: str = "sysrq triggered crash"


Action = Print | Exit | Hang | Stop | Freeze | Event | Reboot | Panic


@dataclass(frozen=True)
class GuestScript:
    """How one boot of a fake guest behaves; times are seconds after launch."""

    hello_after: float | None = 2.0
    """None: the guest never says hello (a boot timeout)."""
    heartbeat_every: float = 1.0
    steps: Sequence[tuple[float, Action]] = ()
    faults: Mapping[str, Sequence[tuple[float, Action]]] = field(default_factory=dict)
    """What a guest fault (agent ``fault NAME``) does, times after the fault."""
    job_seconds: float = 1.0
    """How long each load job (stress-ng run) takes; it exits 0 with one metrics line."""
    launch_error: str | None = None
    """The launcher fails with this message instead of starting the machine."""
    stderr: str = ""
    """What QEMU printed on stderr."""
    postmortem: Postmortem = field(default_factory=Postmortem)
    """What the host tells about a death by a signal (host OOM, a backtrace)."""
    has_agent: bool = True
    migration_s: float = 0.5
    """How long a migration from this machine takes (its downtime is a tenth of it)."""
    migration_error: str | None = None
    """A migration from this machine fails with this QEMU error."""
    poweroff_works: bool = True
    """The agent's poweroff makes the guest power off (False: it is ignored)."""
