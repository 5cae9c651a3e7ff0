"""A real TCG guest of any architecture and firmware, booted from its default image.

Built with soak's own argv builder, QEMU wrapper and agent client, so a test
boots exactly what a run boots. The console is drained into a bounded buffer
and the agent's events are collected by a task: tests wait on them, never sleep.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from soak.arch import ARCHES
from soak.firmware import vars_store
from soak.image import GuestImage
from soak.machine import host_tsc_khz
from soak.vm.agent import AgentClient, AgentEvent
from soak.vm.argv import QemuConfig, build_argv
from soak.vm.process import QemuProcess


@dataclass
class Guest:
    qemu: QemuProcess
    agent: AgentClient
    config: QemuConfig
    started: float
    console: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20000))
    events: list[AgentEvent] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, found: Callable[[], object], timeout: float, what: str) -> object:
        try:
            async with asyncio.timeout(timeout):
                while not (result := found()):
                    self._changed.clear()
                    await self._changed.wait()
                return result
        except TimeoutError:
            tail = "\n".join(list(self.console)[-40:])
            raise AssertionError(f"no {what} within {timeout} s; console tail:\n{tail}") from None

    async def console_line(self, pattern: str, timeout: float = 60) -> str:
        rx = re.compile(pattern)
        line = await self.wait_for(lambda: next((ln for ln in self.console if rx.search(ln)), None),
                                   timeout, f"console line /{pattern}/")
        return str(line)

    async def event(self, match: Callable[[AgentEvent], bool], timeout: float = 60,
                    what: str = "agent event") -> AgentEvent:
        event = await self.wait_for(lambda: next((e for e in self.events if match(e)), None), timeout, what)
        assert isinstance(event, AgentEvent)
        return event


async def _drain(guest: Guest) -> None:
    while raw := await guest.qemu.console.readline():
        guest.console.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
        guest._changed.set()
    guest._changed.set()


async def _collect(guest: Guest) -> None:
    async for event in guest.agent.events():
        guest.events.append(event)
        guest._changed.set()


@contextlib.asynccontextmanager
async def boot(image: GuestImage, *, firmware: str | None = None, vcpus: int = 2, memory_mib: int = 256,
               kernel_args: Sequence[str] = ("soak_hb=1",)) -> AsyncIterator[Guest]:
    """Boot ``image`` on its architecture through ``firmware``; QEMU is killed afterwards whatever happens."""
    work = Path(tempfile.mkdtemp(prefix="soak-a-", dir="/tmp"))  # unix socket paths must be short
    arch = ARCHES[image.arch]
    config = QemuConfig(
        name="t", arch=arch.name, firmware=firmware, vcpus=vcpus, memory_mib=memory_mib,
        firmware_vars=vars_store(arch.firmware(firmware), work / "efivars.fd"),
        kernel=image.kernel, initrd=image.initrd, kernel_args=tuple(kernel_args), tsc_khz=host_tsc_khz(),
        qmp_socket=work / "qmp", agent_socket=work / "agent",
    )
    started = time.monotonic()
    qemu = await QemuProcess.spawn(build_argv(config), stderr_path=work / "stderr")
    agent = AgentClient(config.agent_socket, name="t")
    tasks: list[asyncio.Task[None]] = []
    try:
        guest = Guest(qemu, agent, config, started)
        tasks.append(asyncio.create_task(_drain(guest)))
        await agent.connect(timeout=10)
        tasks.append(asyncio.create_task(_collect(guest)))
        yield guest
    finally:
        await agent.close()
        await qemu.kill()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        shutil.rmtree(work, ignore_errors=True)
