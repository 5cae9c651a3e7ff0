"""QMP with a deadline on every command and no unbounded event history.

qemu.qmp's `execute` has no timeout (a SIGSTOPped QEMU never answers), and its
default event listener keeps every event forever in a list and a queue. Here
the default listener is muted and one listener of ours hands each event to a
callback synchronously: nothing is queued, nothing is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qemu.qmp import ConnectError, EventListener, ExecuteError, QMPClient
from qemu.qmp.message import Message

from soak import clock
from soak.errors import QMPError

logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)  # a failed connect retry is not news


@dataclass(frozen=True, slots=True)
class QmpEvent:
    """One QMP event, with the host's monotonic receive time."""

    name: str
    data: Mapping[str, Any] = field(default_factory=dict)
    received: float = field(default_factory=clock.now)


class QMPTimeout(QMPError):
    """QEMU did not answer a QMP command before its deadline."""


class QMPCommandError(QMPError):
    """QEMU answered a QMP command with an error."""

    def __init__(self, command: str, error_class: str, message: str) -> None:
        self.command = command
        self.error_class = error_class
        super().__init__(f"{command}: {error_class}: {message}")


class _CallbackListener(EventListener):
    """Hands each event to a callback; keeps no history and no queue."""

    def __init__(self, callback: Callable[[QmpEvent], None]) -> None:
        super().__init__()
        self._callback = callback

    async def put(self, event: Message) -> None:
        data = event.get("data")
        self._callback(QmpEvent(str(event["event"]), dict(data) if isinstance(data, Mapping) else {}))


class QmpSession:
    """One QMP connection to one QEMU."""

    def __init__(
        self, name: str, on_event: Callable[[QmpEvent], None], *, timeout: float = 5.0
    ) -> None:
        self.name = name
        self.timeout = timeout
        self._client = QMPClient(name)
        self._client.events.event_filter = lambda _event: False
        self._client.register_listener(_CallbackListener(on_event))
        self._connected = False

    async def connect(self, socket_path: Path, timeout: float) -> None:
        """Connect, retrying while QEMU has not created its socket yet.

        :raise QMPTimeout: no connection within ``timeout`` seconds.
        """
        deadline = clock.now() + timeout
        while True:
            remaining = deadline - clock.now()
            if remaining <= 0:
                raise QMPTimeout(f"{self.name}: no QMP connection on {socket_path} in {timeout:.0f}s")
            try:
                async with asyncio.timeout(min(remaining, self.timeout)):
                    await self._client.connect(str(socket_path))
                self._connected = True
                return
            except (ConnectError, TimeoutError):
                await self._reset()
                await asyncio.sleep(0.05)

    async def execute(
        self, command: str, arguments: Mapping[str, object] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Run a QMP command and return its result.

        :raise QMPTimeout: no answer in time (e.g. QEMU is stopped or hung).
        :raise QMPCommandError: QEMU rejected the command.
        :raise QMPError: the connection is gone.
        """
        if not self._connected:
            raise QMPError(f"{self.name}: QMP is not connected")
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                return await self._client.execute(command, arguments)
        except TimeoutError as exc:
            raise QMPTimeout(f"{self.name}: {command} got no answer in time") from exc
        except ExecuteError as exc:
            raise QMPCommandError(command, exc.error_class, str(exc)) from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # qemu.qmp raises several types when QEMU goes away
            raise QMPError(f"{self.name}: {command} failed: {type(exc).__name__}: {exc}") from exc

    async def hmp(self, command_line: str, *, timeout: float | None = None) -> str:
        """A human-monitor command (e.g. ``info registers -a``), for diagnostics."""
        result = await self.execute(
            "human-monitor-command", {"command-line": command_line}, timeout=timeout
        )
        return str(result)

    async def status(self, *, timeout: float | None = None) -> str:
        """The VM run state: running, paused, guest-panicked, internal-error ..."""
        result = await self.execute("query-status", timeout=timeout)
        return str(result["status"])

    async def close(self) -> None:
        """Disconnect; never raises (QEMU may already be gone)."""
        self._connected = False
        await self._reset()

    async def _reset(self) -> None:
        # disconnect() re-raises the reader's error (EOFError after quit, a reset after a kill).
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.timeout):
                await self._client.disconnect()
