"""Host side of soak's guest agent channel: typed events in, commands out.

The protocol and its messages are in `soak.vm.agentwire` (re-exported here: they are
what a client yields and answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from soak import clock
from soak.errors import AgentError
from soak.vm.agentio import EventQueue, connect_unix, read_lines, stop_task
from soak.vm.agentwire import (
    MAX_LINE,
    PROTO,
    Ack,
    AgentEvent,
    AgentLog,
    CommandResult,
    Disconnected,
    Err,
    EventsDropped,
    Garbled,
    Heartbeat,
    Hello,
    JobExit,
    JobOutput,
    Message,
    format_command,
    parse_line,
)

__all__ = ["MAX_LINE", "PROTO", "Ack", "AgentClient", "AgentEvent", "AgentLog", "CommandResult", "Disconnected", "Err", "EventsDropped", "Garbled", "Heartbeat", "Hello", "JobExit", "JobOutput", "Message", "format_command", "parse_line"]

RUN_GRACE_S = 5.0
"""How much longer than a command's own timeout the host waits for its EXIT."""


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Message]
    collect: bool
    """A `run`: OUT lines are its output, not job events."""
    output: list[str]
    size: int = 0
    truncated: bool = False


class AgentClient:
    """One connection to one guest's agent socket.

    Events are read by a background task into a bounded buffer: when the
    consumer of `events` falls behind, the oldest are dropped and an
    `EventsDropped` tells how many. Replies to commands never go through it.
    Every command has a deadline; the reader itself waits for lines without
    one, because a silent guest is the heartbeat watchdog's finding, not an
    error of the channel.
    """

    def __init__(self, socket_path: Path | str, *, name: str, max_events: int = 1024,
                 max_output: int = 64 * 1024, first_id: int = 1) -> None:
        self.socket_path = Path(socket_path)
        self.name = name
        self.max_output = max_output
        self.log = logging.getLogger(__name__).getChild(name)
        self.hello: Hello | None = None
        """The latest HELLO."""
        self._queue = EventQueue(max_events)
        self._hello_seen = asyncio.Event()
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(first_id)
        self.last_id = first_id - 1
        """The newest command id used: a channel that resumes this conversation starts after it."""
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed: str | None = None
        """Why the channel is closed, once it is."""

    # ------------------------------------------------------------ connection

    async def connect(self, timeout: float) -> None:
        """Connect, retrying every 50 ms while QEMU has not created the socket yet.

        :raise AgentError: no connection within ``timeout`` seconds.
        """
        if self._task is not None:
            raise AgentError(f"{self.name}: agent client already connected")
        self._reader, self._writer = await connect_unix(self.socket_path, name=self.name, timeout=timeout,
                                                        limit=MAX_LINE)
        self._task = asyncio.create_task(self._read_loop(), name=f"agent-{self.name}")

    async def close(self) -> None:
        """Stop reading and close the socket; idempotent. Pending commands fail with AgentError."""
        task, self._task = self._task, None
        await stop_task(task)
        self._finish("closed by the host")
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    # ---------------------------------------------------------------- events

    def events(self) -> AsyncIterator[AgentEvent]:
        """Events in arrival order until `Disconnected` (one consumer at a time)."""
        return self._queue.events()

    async def wait_hello(self, timeout: float) -> Hello:
        """The latest HELLO, waiting for the first one.

        :raise AgentError: none within ``timeout``, or the channel closed first.
        """
        try:
            async with asyncio.timeout(timeout):
                await self._hello_seen.wait()
        except TimeoutError as exc:
            raise AgentError(f"{self.name}: no HELLO from the agent within {timeout:.1f} s") from exc
        if self.hello is None:
            raise AgentError(f"{self.name}: no HELLO before the channel closed: {self._closed}")
        return self.hello

    def _emit(self, event: AgentEvent) -> None:
        self._queue.put(event)

    async def _read_loop(self) -> None:
        assert self._reader is not None
        reason = "the agent socket closed (QEMU exited?)"
        try:
            async for raw in read_lines(self._reader, lambda: self._emit(
                    Garbled(clock.now(), f"<line over {MAX_LINE} bytes dropped>"))):
                self._dispatch(parse_line(raw.decode("utf-8", "replace").rstrip("\r\n"), clock.now()))
        except asyncio.IncompleteReadError:
            pass
        except OSError as exc:
            reason = f"agent socket error: {exc}"
        except asyncio.CancelledError:
            reason = "closed by the host"
            raise
        except Exception as exc:  # a bug here must not leave consumers waiting forever
            self.log.exception("agent reader failed")
            reason = f"agent reader failed: {exc!r}"
        finally:
            self._finish(reason)

    def _finish(self, reason: str) -> None:
        if self._closed is not None:
            return
        self._closed = reason
        self._hello_seen.set()  # wakes wait_hello, which then sees the channel closed
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(AgentError(f"{self.name}: {reason}"))
        self._emit(Disconnected(clock.now(), reason))

    def _dispatch(self, msg: Message) -> None:
        if isinstance(msg, Ack | Err):
            ident: int | None = msg.id
        elif isinstance(msg, JobOutput | JobExit):
            ident = msg.job
        else:
            ident = None
        pending = None if ident is None else self._pending.get(ident)
        if pending is not None and not pending.future.done():
            if isinstance(msg, JobOutput) and pending.collect:
                self._collect(pending, msg.text)
                return
            if isinstance(msg, Ack | Err) or (isinstance(msg, JobExit) and pending.collect):
                pending.future.set_result(msg)
                return
        if isinstance(msg, Ack | Err):
            self.log.debug("late or unknown reply %s", msg)
            return
        if isinstance(msg, Hello):
            self.hello = msg
            self._hello_seen.set()
            if msg.proto != PROTO:
                self.log.warning("agent speaks protocol %d, soak %d", msg.proto, PROTO)
        self._emit(msg)

    def _collect(self, pending: _Pending, text: str) -> None:
        size = len(text) + 1
        if pending.truncated or pending.size + size > self.max_output:
            pending.truncated = True
            return
        pending.size += size
        pending.output.append(text)

    # -------------------------------------------------------------- commands

    async def _request(self, verb: str, args: str, timeout: float, *, collect: bool = False) -> tuple[Message, _Pending]:
        if self._writer is None or self._closed is not None:
            raise AgentError(f"{self.name}: agent channel is not open ({self._closed or 'not connected'})")
        ident = self.last_id = next(self._ids)
        line = format_command(ident, verb, args)
        pending = _Pending(asyncio.get_running_loop().create_future(), collect, [])
        self._pending[ident] = pending
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(line)
                await self._writer.drain()
                reply = await pending.future
        except TimeoutError as exc:
            raise AgentError(f"{self.name}: no answer to `{verb}` within {timeout:.1f} s") from exc
        except OSError as exc:
            raise AgentError(f"{self.name}: cannot send `{verb}`: {exc}") from exc
        finally:
            del self._pending[ident]
        if isinstance(reply, Err):
            raise AgentError(f"{self.name}: agent refused `{verb} {args}`: {reply.message}")
        return reply, pending

    async def run(self, cmd: str, timeout: float) -> CommandResult:
        """Run a shell command in the guest; the guest kills it after ``timeout`` seconds.

        :raise AgentError: the channel failed or the agent did not answer in time.
        """
        secs = max(1, math.ceil(timeout))
        started = clock.now()
        reply, pending = await self._request("run", f"{secs} {cmd}", secs + RUN_GRACE_S, collect=True)
        assert isinstance(reply, JobExit)
        timed_out = reply.rc == 137 and clock.now() - started >= secs
        output = "".join(f"{line}\n" for line in pending.output)
        return CommandResult(reply.rc, output, pending.truncated or reply.truncated, timed_out)

    async def start_job(self, cmd: str, timeout: float = 10.0) -> int:
        """Start a background job; its output arrives as `JobOutput`/`JobExit` events. Returns its id."""
        reply, _ = await self._request("start", cmd, timeout)
        return reply.id if isinstance(reply, Ack) else 0

    async def stop_job(self, job: int, timeout: float = 10.0) -> None:
        """SIGTERM the job's processes (SIGKILL 5 s later); its `JobExit` follows as an event."""
        await self._request("stop", str(job), timeout)

    async def sysrq(self, ch: str, timeout: float = 10.0) -> None:
        """Trigger magic SysRq ``ch`` (``c`` crashes the guest) once the agent has acknowledged."""
        if len(ch) != 1 or not ch.isalnum():
            raise ValueError(f"sysrq takes one letter or digit, not {ch!r}")
        await self._request("sysrq", ch, timeout)

    async def poweroff(self, timeout: float = 10.0) -> None:
        """Ask the guest to power off; returns on the agent's ACK, before QEMU exits."""
        await self._request("poweroff", "", timeout)

    async def fault(self, name: str, secs: int | None = None, timeout: float = 10.0) -> int:
        """Provoke fault ``name`` (see soak.image.faults) once the agent has acknowledged.

        Returns the job id under which the trigger's `JobExit` arrives, if the guest survives it.

        :raise AgentError: the image cannot provoke it (no module, unknown name) or no answer.
        """
        if not name or not all(c.isalnum() or c == "-" for c in name):
            raise ValueError(f"bad fault name {name!r}")
        reply, _ = await self._request("fault", name if secs is None else f"{name} {int(secs)}", timeout)
        return reply.id if isinstance(reply, Ack) else 0

    async def request_hello(self, timeout: float = 10.0) -> Hello:
        """Ask the agent to repeat its HELLO (for a client that connected late)."""
        await self._request("hello", "", timeout)
        assert self.hello is not None
        return self.hello

