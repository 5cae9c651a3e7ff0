"""`soak.vm.qgawire.QgaChannel` against a scripted peer: late, stray and over-long replies."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from soak.errors import AgentError, AgentRefused
from soak.vm.qgawire import QgaChannel

pytestmark = pytest.mark.timeout(30)

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def with_peer(script: Script, body: Callable[[QgaChannel], Awaitable[None]]) -> None:
    with tempfile.TemporaryDirectory(prefix="qga-") as short:
        path = Path(short) / "s"
        server = await asyncio.start_unix_server(script, path=str(path))
        channel = QgaChannel(path, name="vm", max_reply=4096)
        await channel.connect(timeout=5)
        try:
            await body(channel)
        finally:
            await channel.close()
            server.close()


async def test_only_the_reply_with_the_commands_id_answers_it() -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        message = json.loads(await reader.readline())
        writer.write(b'{"return": "stale", "id": 999}\n')  # an answer to a command long given up
        writer.write(b"\xff" + b'{"error": {"class": "GenericError", "desc": "JSON parse error"}}\n')
        writer.write(b"x" * 10_000 + b"\n")  # over max_reply: dropped, the channel goes on
        writer.write(json.dumps({"return": {"ok": 1}, "id": message["id"]}).encode() + b"\n")
        await writer.drain()
        await reader.read()

    async def body(channel: QgaChannel) -> None:
        assert await channel.call("guest-get-time", timeout=5) == {"ok": 1}
        assert channel.dropped_replies == 3

    await with_peer(peer, body)


async def test_sync_sends_the_delimiter_and_waits_for_its_own_number() -> None:
    seen: list[bytes] = []

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        seen.append(line)
        message = json.loads(line.lstrip(b"\xff"))
        writer.write(b'{"error": {"class": "GenericError", "desc": "stray"}}\n')
        writer.write(b"\xff" + json.dumps({"return": message["arguments"]["id"], "id": message["id"]}).encode() + b"\n")
        await writer.drain()
        await reader.read()

    async def body(channel: QgaChannel) -> None:
        await channel.sync(timeout=5)

    await with_peer(peer, body)
    assert seen[0].startswith(b'\xff{"execute":"guest-sync-delimited"')


async def test_a_refusal_keeps_the_agents_words_and_silence_times_out() -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        message = json.loads(await reader.readline())
        writer.write(json.dumps({"error": {"class": "CommandNotFound", "desc": "Command guest-exec has been disabled"},
                                 "id": message["id"]}).encode() + b"\n")
        await writer.drain()
        await reader.read()

    async def body(channel: QgaChannel) -> None:
        with pytest.raises(AgentRefused, match="has been disabled") as refused:
            await channel.call("guest-exec", {"path": "/bin/true"}, timeout=5)
        assert refused.value.error_class == "CommandNotFound"
        with pytest.raises(AgentError, match=r"no answer to guest-ping within 0\.2 s"):
            await channel.call("guest-ping", timeout=0.2)

    await with_peer(peer, body)


async def test_a_closed_socket_fails_waiting_commands_at_once() -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.close()

    async def body(channel: QgaChannel) -> None:
        with pytest.raises(AgentError, match="socket closed"):
            await channel.call("guest-ping", timeout=10)
        assert channel.closed is not None

    await with_peer(peer, body)
