"""The two control channels of a guest, as the rest of soak uses them.

`Qmp` is QEMU's monitor (`soak.vm.qmp.QmpSession`); `GuestAgent` is the
channel to software inside the guest: soak's own agent today
(`soak.vm.agent.AgentClient`), QEMU's guest agent or a fake in tests tomorrow.
Faults, the load driver and the runner depend on these protocols only, so a
machine may bring any implementation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from soak.vm.agent import AgentEvent, CommandResult, Hello


class Qmp(Protocol):
    """A connected QMP monitor; every call has a deadline (``timeout`` or the session's)."""

    async def execute(self, command: str, arguments: Mapping[str, object] | None = None, *,
                      timeout: float | None = None) -> Any:
        """:raise QMPError: no answer in time, refused, or the connection is gone."""

    async def hmp(self, command_line: str, *, timeout: float | None = None) -> str:
        """A human-monitor command, for diagnostics."""

    async def status(self, *, timeout: float | None = None) -> str:
        """The run state: running, paused, guest-panicked, internal-error ..."""

    async def close(self) -> None:
        """Disconnect; never raises."""


class GuestAgent(Protocol):
    """A connected guest agent: events in (hello, heartbeats, job output), commands out.

    Every command raises `AgentError` when the channel fails or does not answer in time.
    """

    def events(self) -> AsyncIterator[AgentEvent]:
        """Events in arrival order until `Disconnected` (one consumer)."""

    async def request_hello(self, timeout: float = 10.0) -> Hello: ...

    async def run(self, cmd: str, timeout: float) -> CommandResult: ...

    async def start_job(self, cmd: str, timeout: float = 10.0) -> int: ...

    async def stop_job(self, job: int, timeout: float = 10.0) -> None: ...

    async def sysrq(self, ch: str, timeout: float = 10.0) -> None: ...

    async def poweroff(self, timeout: float = 10.0) -> None: ...

    async def fault(self, name: str, secs: int | None = None, timeout: float = 10.0) -> int: ...

    async def close(self) -> None:
        """Stop reading; idempotent; never raises."""
