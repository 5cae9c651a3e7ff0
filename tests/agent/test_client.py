"""AgentClient against a scripted fake agent on a real unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from soak.errors import AgentError
from soak.vm.agent import (
    AgentClient,
    AgentEvent,
    Disconnected,
    EventsDropped,
    Garbled,
    Heartbeat,
    Hello,
    JobExit,
    JobOutput,
)

HELLO = b"HELLO 1 release=6.1.0-test nproc=2 memtotal=1000 boot=b1 image=k features=agent hb=1\n"
Handler = Callable[[str, asyncio.StreamWriter], Awaitable[None]]


class FakeAgent:
    """Answers each host command line with ``handler``; ``send`` pushes unsolicited lines."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()
        self.received: list[str] = []
        self.server: asyncio.Server | None = None
        self.done = asyncio.Event()

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._serve, self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.connected.set()
        try:
            while line := await reader.readline():
                self.received.append(line.decode().rstrip("\n"))
                await self.handler(self.received[-1], writer)
        finally:
            self.done.set()

    async def send(self, data: bytes) -> None:
        await self.connected.wait()
        assert self.writer is not None
        self.writer.write(data)
        await self.writer.drain()

    async def stop(self) -> None:
        if self.writer is not None:
            self.writer.close()
            async with asyncio.timeout(5):
                await self.done.wait()
        if self.server is not None:
            self.server.close()


async def guest(line: str, w: asyncio.StreamWriter) -> None:
    """A well-behaved agent."""
    ident, verb, *rest = line.split(" ", 2)
    args = rest[0] if rest else ""
    if verb == "run":
        cmd = args.split(" ", 1)[1]
        w.write(f"OUT 99 unrelated job line\nOUT {ident} ran {cmd}\nOUT {ident} \nEXIT {ident} 3\n".encode())
    elif verb == "start":
        w.write(f"ACK {ident}\nOUT {ident} working\nEXIT {ident} 0\n".encode())
    elif verb in ("stop", "sysrq", "poweroff"):
        w.write(f"ACK {ident}\n".encode())
    elif verb == "long":
        w.write(f"OUT {ident} a\nEXIT {ident} 0 truncated=1\n".encode())
    elif verb == "hello":
        w.write(HELLO + f"ACK {ident}\n".encode())
    elif verb == "big":
        w.write(f"ERR {ident} unknown command big\n".encode())
    # anything else: silence


@pytest.fixture
def sock_dir() -> AsyncIterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="soak-agent-", dir="/tmp"))  # unix socket paths must be short
    yield d  # type: ignore[misc]
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def pair(sock_dir: Path) -> AsyncIterator[tuple[FakeAgent, AgentClient]]:
    fake = FakeAgent(sock_dir / "a.sock", guest)
    await fake.start()
    client = AgentClient(fake.path, name="t")
    await client.connect(timeout=5)
    await fake.connected.wait()
    yield fake, client
    await client.close()
    await fake.stop()


async def _take(events: AsyncIterator[AgentEvent], n: int) -> list[AgentEvent]:
    got = []
    async with asyncio.timeout(5):
        async for event in events:
            got.append(event)
            if len(got) == n:
                break
    return got


async def test_connect_waits_for_the_socket_to_appear(sock_dir: Path) -> None:
    fake = FakeAgent(sock_dir / "late.sock", guest)
    client = AgentClient(fake.path, name="late")
    started = time.monotonic()

    async def appear_later() -> None:
        await asyncio.sleep(0.3)
        await fake.start()

    appear = asyncio.create_task(appear_later())
    await client.connect(timeout=5)
    assert time.monotonic() - started >= 0.3
    await appear
    await client.close()
    await fake.stop()


async def test_connect_gives_up_at_its_deadline(sock_dir: Path) -> None:
    client = AgentClient(sock_dir / "never.sock", name="never")
    with pytest.raises(AgentError, match=r"within 0\.3 s"):
        await client.connect(timeout=0.3)


async def test_hello_and_heartbeats_become_events(pair: tuple[FakeAgent, AgentClient]) -> None:
    fake, client = pair
    await fake.send(HELLO + b"HB 1 up=1.0 load1=0.00 memfree=10 memavail=20\nnoise\nHB 2 up=2.0 load1=0.10 memfree=9 memavail=19\n")
    hello, hb1, noise, hb2 = await _take(client.events(), 4)
    assert isinstance(hello, Hello) and hello.kernel_release == "6.1.0-test" and hello.boot_id == "b1"
    assert isinstance(hb1, Heartbeat) and isinstance(hb2, Heartbeat) and (hb1.seq, hb2.seq) == (1, 2)
    assert hb1.t <= hb2.t <= time.monotonic()
    assert noise == Garbled(noise.t, "noise")
    assert await client.wait_hello(1) == hello


async def test_run_collects_its_own_output_only(pair: tuple[FakeAgent, AgentClient]) -> None:
    fake, client = pair
    result = await client.run("uname -r", timeout=10)
    assert (result.rc, result.output, result.truncated, result.timed_out) == (3, "ran uname -r\n\n", False, False)
    assert fake.received == ["1 run 10 uname -r"]
    (other,) = await _take(client.events(), 1)
    assert other == JobOutput(other.t, 99, "unrelated job line")


async def test_run_output_is_bounded(pair: tuple[FakeAgent, AgentClient]) -> None:
    _, client = pair
    client.max_output = 3
    result = await client.run("x", timeout=1)
    assert result.truncated and result.output == ""  # nothing after the cut, not even short lines


async def test_guest_side_truncation_is_reported(pair: tuple[FakeAgent, AgentClient]) -> None:
    _, client = pair
    reply, pending = await client._request("long", "", 5, collect=True)
    assert isinstance(reply, JobExit) and reply.truncated and pending.output == ["a"]


async def test_jobs_stream_as_events(pair: tuple[FakeAgent, AgentClient]) -> None:
    fake, client = pair
    job = await client.start_job("stress-ng --cpu 1")
    out, end = await _take(client.events(), 2)
    assert out == JobOutput(out.t, job, "working") and end == JobExit(end.t, job, 0)
    await client.stop_job(job)
    await client.sysrq("c")
    await client.poweroff()
    assert fake.received[1:] == [f"2 stop {job}", "3 sysrq c", "4 poweroff"]
    with pytest.raises(ValueError):
        await client.sysrq("cc")


async def test_request_hello(pair: tuple[FakeAgent, AgentClient]) -> None:
    _, client = pair
    assert (await client.request_hello()).boot_id == "b1"


async def test_a_refusal_is_an_agent_error(pair: tuple[FakeAgent, AgentClient]) -> None:
    _, client = pair
    with pytest.raises(AgentError, match="unknown command big"):
        await client._request("big", "", 5)


async def test_silence_hits_the_deadline(pair: tuple[FakeAgent, AgentClient]) -> None:
    _, client = pair
    started = time.monotonic()
    with pytest.raises(AgentError, match="no answer to `mute`"):
        await client._request("mute", "", 0.2)
    assert time.monotonic() - started < 1
    assert client._pending == {}


async def test_cancellation_is_not_swallowed(pair: tuple[FakeAgent, AgentClient]) -> None:
    _, client = pair
    task = asyncio.create_task(client._request("mute", "", 30))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client._pending == {}


async def test_disconnect_fails_pending_commands_and_ends_events(pair: tuple[FakeAgent, AgentClient]) -> None:
    fake, client = pair
    pending = asyncio.create_task(client._request("mute", "", 30))
    await asyncio.sleep(0.05)
    await fake.stop()
    with pytest.raises(AgentError, match="closed"):
        await pending
    events = [e async for e in client.events()]
    assert isinstance(events[-1], Disconnected)
    with pytest.raises(AgentError, match="not open"):
        await client.run("true", 1)
    with pytest.raises(AgentError, match="no HELLO before the channel closed"):
        await client.wait_hello(5)


async def test_a_slow_consumer_loses_the_oldest_events(sock_dir: Path) -> None:
    fake = FakeAgent(sock_dir / "b.sock", guest)
    await fake.start()
    client = AgentClient(fake.path, name="slow", max_events=5)
    await client.connect(timeout=5)
    await fake.send(b"".join(b"HB %d up=1 load1=0 memfree=1 memavail=1\n" % i for i in range(1, 21)))
    await fake.send(HELLO)
    await client.wait_hello(5)
    dropped, *rest = await _take(client.events(), 6)
    assert dropped == EventsDropped(dropped.t, 16)
    assert [e.seq for e in rest if isinstance(e, Heartbeat)] == [17, 18, 19, 20]
    assert isinstance(rest[-1], Hello)
    await client.close()
    await fake.stop()


async def test_an_overlong_line_is_dropped(pair: tuple[FakeAgent, AgentClient]) -> None:
    fake, client = pair
    await fake.send(b"OUT 5 " + b"x" * 200_000 + b"\nHB 1 up=1 load1=0 memfree=1 memavail=1\n")
    garbled, beat = await _take(client.events(), 2)
    assert isinstance(garbled, Garbled) and "dropped" in garbled.line
    assert isinstance(beat, Heartbeat)


async def test_close_is_idempotent(pair: tuple[FakeAgent, AgentClient]) -> None:
    _, client = pair
    await client.close()
    await client.close()
    with contextlib.suppress(AgentError):
        await client.poweroff()
    events = [e async for e in client.events()]
    assert events == [Disconnected(events[0].t, "closed by the host")]
