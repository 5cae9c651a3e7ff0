"""The wire of QEMU's guest agent (``qemu-ga``): JSON commands and replies on a unix socket.

The guest runs ``qemu-guest-agent`` on a virtio-serial port named
``org.qemu.guest_agent.0``; QEMU binds the port to a unix socket chardev that
soak connects to. The protocol is QMP without greeting or events: one JSON
object per command, one reply per command (except the few that never answer,
such as ``guest-shutdown``), strictly in order.

Two things make the channel robust against a guest that stalls, restarts its
agent or reboots (facts checked on qemu-ga 7.2, see tests/qga):

- every command carries an ``id`` that the reply echoes, so a late reply to a
  command whose deadline passed is recognised and dropped, never taken for the
  answer to the next one;
- `QgaChannel.sync` sends ``0xFF`` (which resets the agent's JSON parser, should
  a half-written command sit in it) and ``guest-sync-delimited``, whose reply the
  agent prefixes with ``0xFF``. The agent answers the stray byte itself with a
  parse error, which is dropped like any reply without a known id.

Replies are read by one background task into the futures of the commands
waiting for them; a reply longer than `MAX_REPLY` is dropped (its command
then times out), so a guest cannot make soak buffer without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from pathlib import Path
from typing import Any

from soak.errors import AgentError, AgentRefused
from soak.vm.agentio import connect_unix, read_lines, stop_task

MAX_REPLY = 1 << 20
"""Longest reply line kept: job output is cut to 64 KiB in the guest (base64: ~88 KiB)."""
DELIMITER = b"\xff"
SYNC_ID_BASE = 0x50AC_0000
"""guest-sync-delimited's own number (the agent echoes it as the return value): any value works."""


class QgaChannel:
    """One connection to a guest's QEMU guest agent socket; every command has a deadline."""

    def __init__(self, socket_path: Path | str, *, name: str, max_reply: int = MAX_REPLY) -> None:
        self.socket_path = Path(socket_path)
        self.name = name
        self.max_reply = max_reply
        self.log = logging.getLogger(__name__).getChild(name)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed: str | None = None
        """Why the channel is closed, once it is."""
        self.closed_event = asyncio.Event()
        self.dropped_replies = 0
        """Replies nobody waited for any more (their deadline passed) or that were too long."""

    async def connect(self, timeout: float) -> None:
        """Connect, retrying every 50 ms while QEMU has not created the socket yet.

        :raise AgentError: no connection within ``timeout`` seconds.
        """
        self._reader, self._writer = await connect_unix(self.socket_path, name=self.name, timeout=timeout,
                                                        limit=self.max_reply)
        self._task = asyncio.create_task(self._read_loop(), name=f"qga-{self.name}")

    async def close(self) -> None:
        """Stop reading and close the socket; idempotent; commands still waiting fail."""
        task, self._task = self._task, None
        await stop_task(task)  # a close while the caller is being cancelled must not swallow that
        self._finish("closed by the host")
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    async def call(self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float) -> Any:
        """Run ``command`` and return its ``return`` value.

        :raise AgentRefused: the agent answered with an error (its class and words kept).
        :raise AgentError: no answer within ``timeout``, or the channel is gone.
        """
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            async with asyncio.timeout(timeout):
                await self._write(_message(command, arguments, ident))
                reply = await future
        except TimeoutError as exc:
            raise AgentError(f"{self.name}: no answer to {command} within {timeout:.1f} s") from exc
        finally:
            self._pending.pop(ident, None)
        if "error" in reply:
            error = reply["error"] if isinstance(reply["error"], dict) else {}
            cls, desc = str(error.get("class", "")), str(error.get("desc", ""))
            raise AgentRefused(f"{self.name}: {command}: {desc or cls or 'refused'}", error_class=cls, desc=desc)
        return reply.get("return")

    async def send(self, command: str, arguments: dict[str, Any] | None = None, *, timeout: float) -> None:
        """Send a command that never answers (``guest-shutdown``).

        :raise AgentError: it could not be written within ``timeout``.
        """
        try:
            async with asyncio.timeout(timeout):
                await self._write(_message(command, arguments, None))
        except TimeoutError as exc:
            raise AgentError(f"{self.name}: cannot send {command} within {timeout:.1f} s") from exc

    async def sync(self, *, timeout: float) -> None:
        """Resynchronise: reset the agent's parser and wait for an answer to this very request.

        :raise AgentError: the agent did not answer within ``timeout`` (it is not running yet,
            the guest is paused or rebooting, or the channel is gone).
        """
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            async with asyncio.timeout(timeout):
                await self._write(DELIMITER + _message("guest-sync-delimited", {"id": SYNC_ID_BASE + ident}, ident))
                reply = await future
        except TimeoutError as exc:
            raise AgentError(f"{self.name}: the guest agent did not answer guest-sync-delimited "
                             f"within {timeout:.1f} s") from exc
        finally:
            self._pending.pop(ident, None)
        if reply.get("return") != SYNC_ID_BASE + ident:
            raise AgentError(f"{self.name}: guest-sync-delimited answered {reply!r}")

    async def _write(self, data: bytes) -> None:
        if self._writer is None or self.closed is not None:
            raise AgentError(f"{self.name}: guest agent channel is not open ({self.closed or 'not connected'})")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            raise AgentError(f"{self.name}: cannot write to the guest agent: {exc}") from exc

    async def _read_loop(self) -> None:
        assert self._reader is not None
        reason = "the guest agent socket closed (QEMU exited?)"
        try:
            async for raw in read_lines(self._reader, self._reply_too_long):
                self._dispatch(raw)
        except asyncio.IncompleteReadError:
            pass
        except OSError as exc:
            reason = f"guest agent socket error: {exc}"
        except asyncio.CancelledError:
            reason = "closed by the host"
            raise
        finally:
            self._finish(reason)

    def _reply_too_long(self) -> None:
        self.dropped_replies += 1
        self.log.warning("dropped a guest agent reply over %d bytes", self.max_reply)

    def _dispatch(self, raw: bytes) -> None:
        try:
            reply = json.loads(raw.lstrip(DELIMITER).decode("utf-8", "replace"))
        except ValueError:
            self.log.debug("not JSON from the guest agent: %r", raw[:200])
            return
        ident = reply.get("id") if isinstance(reply, dict) else None
        future = self._pending.get(ident) if isinstance(ident, int) else None
        if future is None or future.done():
            # a reply whose deadline passed, or the agent's answer to the 0xFF that resets it
            self.dropped_replies += 1
            return
        future.set_result(reply)

    def _finish(self, reason: str) -> None:
        if self.closed is not None:
            return
        self.closed = reason
        self.closed_event.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(AgentError(f"{self.name}: {reason}"))


def _message(command: str, arguments: dict[str, Any] | None, ident: int | None) -> bytes:
    message: dict[str, Any] = {"execute": command}
    if arguments is not None:
        message["arguments"] = arguments
    if ident is not None:
        message["id"] = ident
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"
