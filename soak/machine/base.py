"""The machine interface: one QEMU process of a VM, as the guest runner sees it.

A VM's runner never touches a process, a socket or psutil itself: it asks a
`MachineLauncher` for a `Machine` per boot and works through this small
surface: the console stream, the QMP and agent channels, the process's
figures, the stop ladder and the exit status. `soak.machine.qemu` is the real
QEMU behind it; `soak.machine.fake` is a scripted guest for fast, deterministic
tests of the runner's logic. A later machine (the destination of a live
migration) can replace the current one under the same VM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from soak.detect.backtrace import GdbReport
from soak.profile import VmSpec
from soak.vm.channels import GuestAgent, Qmp
from soak.vm.console import ConsoleStream
from soak.vm.evidence import ThreadTimes
from soak.vm.qmp import QmpEvent


@dataclass(frozen=True, slots=True)
class Postmortem:
    """What the host can tell about a QEMU that died by a signal nobody in soak sent."""

    host_oom: str | None = None
    """The host kernel's word that its OOM killer killed QEMU: the host's trouble, not a crash."""
    backtrace: GdbReport | None = None
    files: dict[str, str] = field(default_factory=dict)
    """Evidence: QEMU's backtrace from its core."""
    note: str = ""
    """Why there is no backtrace, or where the core was kept."""


@dataclass(frozen=True, slots=True)
class MigrationStats:
    """What QEMU says a completed migration cost (``query-migrate``)."""

    total_s: float
    downtime_s: float
    """How long the guest did not run at the switchover."""
    transferred_bytes: int
    dirty_pages_rate: float
    """Pages the guest dirtied per second during the migration (0 when QEMU did not say)."""


@dataclass(frozen=True, slots=True)
class ProcessFigures:
    """The QEMU process as the host sees it (sampled for metrics and leak trends)."""

    cpu_s: float
    rss_bytes: int
    threads: int
    fds: int


class Machine(Protocol):
    """One running QEMU of one VM, from launch to exit.

    Channels are connected on demand and kept by the machine, so the stop
    ladder can use them; `close` releases them. Nothing here raises for a
    QEMU that is already gone, except the ``connect_*`` calls.
    """

    @property
    def name(self) -> str: ...
    @property
    def pid(self) -> int: ...
    @property
    def argv(self) -> Sequence[str]:
        """The whole command line: evidence and reproducers replay it."""
    @property
    def disk_images(self) -> Sequence[Path]:
        """The image file of each of the VM's disks, in order (device faults act on them)."""
    @property
    def has_agent(self) -> bool:
        """The guest runs an agent soak can talk to (heartbeats, load, guest faults)."""
    @property
    def console(self) -> ConsoleStream: ...
    @property
    def qmp(self) -> Qmp | None:
        """The QMP channel once connected."""
    @property
    def agent(self) -> GuestAgent | None:
        """The agent channel once connected."""
    @property
    def returncode(self) -> int | None:
        """None while running; negative: killed by that signal."""

    async def connect_qmp(self, on_event: Callable[[QmpEvent], None], *, timeout: float) -> Qmp:
        """:raise QMPError: no QMP within ``timeout``."""

    async def connect_agent(self, *, timeout: float, resume: GuestAgent | None = None) -> GuestAgent:
        """:param resume: the channel to the same guest on the machine this one replaces (a
        migration): the conversation goes on (command ids stay unique, also for the few the old
        channel may still send before the switch). Connect a migration's destination before the
        switch: what the guest says right after it then has a listener.
        :raise AgentError: no agent channel within ``timeout``."""

    async def accept_migration(self) -> str:
        """On a machine launched ``incoming``: listen for the source; returns the URI to migrate to.

        :raise QMPError: QEMU refused (connect QMP first).
        """

    async def migrate_to(self, uri: str, *, paused: bool, timeout: float, bandwidth: int) -> MigrationStats:
        """Migrate this machine's guest to ``uri`` at most ``bandwidth`` bytes/s; ``paused``: stop it first (the destination
        then stays paused until told to continue). On success this machine is left
        ``postmigrate`` (the caller quits it).

        :raise MigrationError: QEMU's error, or no completion within ``timeout`` (cancelled).
        :raise QMPError: the monitor is gone (QEMU died).
        """

    async def wait(self) -> int:
        """The exit status, once QEMU is gone."""

    def send_signal(self, sig: int) -> None:
        """Signal QEMU unless it is gone."""

    async def kill(self) -> int | None:
        """SIGKILL and reap (None if it would not die in time)."""

    async def shutdown(self, *, gently: bool, step_timeout: float) -> None:
        """The stop ladder: guest poweroff (if ``gently``), QMP quit, SIGKILL; returns when reaped."""

    async def close(self) -> None:
        """Close the channels; never raises."""

    def process_state(self) -> str:
        """psutil's status: running, sleeping, stopped, zombie ... or ``gone``."""

    def figures(self) -> ProcessFigures | None:
        """CPU, RSS, threads and fds now, or None once the process is gone."""

    def thread_times(self) -> ThreadTimes | None:
        """CPU time, name and state per thread (vCPU threads are ``CPU n/...``)."""

    def stderr_tail(self, limit: int) -> str:
        """The end of what this QEMU (not an earlier boot's) wrote on stderr: its usage errors,
        its abort messages."""

    async def postmortem(self) -> Postmortem:
        """After QEMU died by a signal soak did not send: the host's OOM killer, QEMU's backtrace."""


class MachineLauncher(Protocol):
    """Starts the machine of one boot of a VM."""

    async def launch(self, spec: VmSpec, boot: int, *, incoming: bool = False) -> Machine:
        """``incoming``: the destination of a migration (it waits for `Machine.accept_migration`).

        :raise LaunchError: QEMU could not be started (the host's or soak's problem).
        """
