"""A real TCG guest booted from the default image, for the tests marked ``qemu``.

Uses soak's own argv builder and QEMU process wrapper, so the tests boot
guests exactly as a run does. The console is drained continuously into a
bounded buffer; agent events are collected by a task, so a test can wait for
either without polling.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from soak.image import GuestImage
from soak.session import host_tsc_khz
from soak.vm.agent import AgentClient, AgentEvent
from soak.vm.argv import QemuConfig, build_argv
from soak.vm.process import QemuProcess


@dataclass
class Guest:
    qemu: QemuProcess
    agent: AgentClient
    console: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20000))
    events: list[AgentEvent] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _note(self) -> None:
        self._changed.set()

    async def _wait(self, found: Callable[[], object], timeout: float, what: str) -> object:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._changed.clear()
                    if result := found():
                        return result
                    await self._changed.wait()
        except TimeoutError:
            tail = "\n".join(list(self.console)[-40:])
            raise AssertionError(f"no {what} within {timeout} s; console tail:\n{tail}") from None

    async def console_line(self, pattern: str, timeout: float = 30) -> str:
        """The first console line matching ``pattern``, waiting for it."""
        rx = re.compile(pattern)
        line = await self._wait(lambda: next((ln for ln in self.console if rx.search(ln)), None),
                                timeout, f"console line /{pattern}/")
        return str(line)

    async def event(self, match: Callable[[AgentEvent], bool], timeout: float = 30,
                    what: str = "agent event") -> AgentEvent:
        event = await self._wait(lambda: next((e for e in self.events if match(e)), None), timeout, what)
        assert isinstance(event, AgentEvent)
        return event


async def _drain_console(guest: Guest) -> None:
    while raw := await guest.qemu.console.readline():
        guest.console.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
        guest._note()
    guest._note()


async def _collect_events(guest: Guest) -> None:
    async for event in guest.agent.events():
        guest.events.append(event)
        guest._note()


@contextlib.asynccontextmanager
async def boot(image: GuestImage, *, vcpus: int = 1, memory_mib: int = 256,
               kernel_args: Sequence[str] = ("soak_hb=1",)) -> AsyncIterator[Guest]:
    """Boot a guest, connect to its agent, and kill it afterwards whatever happens."""
    sockets = Path(tempfile.mkdtemp(prefix="soak-t-", dir="/tmp"))  # unix socket paths must be short
    config = QemuConfig(
        name="t", vcpus=vcpus, memory_mib=memory_mib, kernel=image.kernel, initrd=image.initrd,
        kernel_args=tuple(kernel_args), tsc_khz=host_tsc_khz(),
        qmp_socket=sockets / "qmp", agent_socket=sockets / "agent",
    )
    qemu = await QemuProcess.spawn(build_argv(config), stderr_path=sockets / "stderr")
    tasks: list[asyncio.Task[None]] = []
    agent = AgentClient(config.agent_socket, name="t")
    try:
        guest = Guest(qemu, agent)
        tasks.append(asyncio.create_task(_drain_console(guest)))
        await agent.connect(timeout=10)
        tasks.append(asyncio.create_task(_collect_events(guest)))
        yield guest
    finally:
        await agent.close()
        await qemu.kill()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        shutil.rmtree(sockets, ignore_errors=True)
