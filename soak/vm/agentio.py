"""What both guest agent clients share: connecting to the agent's unix socket while QEMU is
still making it, and the bounded queue of events they hand to their one consumer."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from soak import clock
from soak.errors import AgentError
from soak.vm.agentwire import AgentEvent, Disconnected, EventsDropped

CONNECT_RETRY_S = 0.05


async def connect_unix(path: Path | str, *, name: str, timeout: float,
                       limit: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``path``, retrying every 50 ms while QEMU has not created the socket yet.

    :raise AgentError: no connection within ``timeout`` seconds, or an error retrying cannot mend.
    """
    deadline = clock.now() + timeout
    last: Exception | None = None
    while True:
        remaining = deadline - clock.now()
        if remaining <= 0:
            raise AgentError(f"{name}: cannot connect to {path} within {timeout:.1f} s: {last}") from last
        try:
            async with asyncio.timeout(remaining):
                return await asyncio.open_unix_connection(path, limit=limit)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            last = exc
            await asyncio.sleep(min(CONNECT_RETRY_S, max(0.0, deadline - clock.now())))
        except TimeoutError as exc:
            last = exc
        except OSError as exc:
            raise AgentError(f"{name}: cannot connect to {path}: {exc}") from exc


class EventQueue:
    """Agent events for one consumer, at most ``maxlen``: when the consumer falls behind the
    oldest go and are counted (`EventsDropped`); nothing follows `Disconnected`."""

    def __init__(self, maxlen: int) -> None:
        self._events: collections.deque[AgentEvent] = collections.deque(maxlen=maxlen)
        self._dropped = 0
        self._wakeup = asyncio.Event()

    def put(self, event: AgentEvent) -> None:
        if self._events and isinstance(self._events[-1], Disconnected):
            return
        if len(self._events) == self._events.maxlen:
            self._dropped += 1
        self._events.append(event)
        self._wakeup.set()

    async def events(self) -> AsyncIterator[AgentEvent]:
        """Events in arrival order until `Disconnected`."""
        while True:
            if self._dropped:
                count, self._dropped = self._dropped, 0
                yield EventsDropped(clock.now(), count)
            if self._events:
                event = self._events.popleft()
                yield event
                if isinstance(event, Disconnected):
                    return
                continue
            self._wakeup.clear()
            await self._wakeup.wait()


async def read_lines(reader: asyncio.StreamReader, on_overlong: Callable[[], None]) -> AsyncIterator[bytes]:
    """Lines from ``reader`` until EOF (`asyncio.IncompleteReadError`), newline included; a line
    longer than the reader's limit is skipped whole, with one call of ``on_overlong``.

    No deadline: a silent guest is the heartbeat watchdog's finding, not an error of the channel.
    """
    skip = False
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)
            if not skip:
                on_overlong()
            skip = True
            continue
        if skip:  # the tail of an over-long line
            skip = False
            continue
        yield raw


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait for it; re-raise only when the caller itself is being cancelled."""
    if task is None or task.done():
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
