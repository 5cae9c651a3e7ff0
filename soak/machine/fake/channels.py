"""The fake machine's console, QMP monitor and guest agent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from soak import clock
from soak.errors import AgentError, QMPError
from soak.machine.fake.script import Panic
from soak.vm.agent import AgentEvent, CommandResult, Disconnected, Hello
from soak.vm.qmp import QmpEvent, QMPTimeout

if TYPE_CHECKING:
    from soak.machine.fake.machine import FakeMachine


class _Console:
    """The console stream: lines the guest printed, until QEMU is gone."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._closed = False
        self._changed = asyncio.Event()

    def write(self, text: str) -> None:
        if not self._closed:
            self._data += text.encode()
            self._changed.set()

    def close(self) -> None:
        self._closed = True
        self._changed.set()

    async def read(self, n: int) -> bytes:
        while not self._data and not self._closed:
            self._changed.clear()
            await self._changed.wait()
        chunk = bytes(self._data[:n])
        del self._data[:n]
        return chunk


class FakeQmp:
    def __init__(self, machine: FakeMachine, on_event: Callable[[QmpEvent], None], timeout: float) -> None:
        self._machine = machine
        self._on_event = on_event
        self.timeout = timeout
        self.commands: list[str] = []

    def emit(self, name: str, data: Mapping[str, Any] | None = None) -> None:
        self._on_event(QmpEvent(name, dict(data or {}), clock.now()))

    async def execute(self, command: str, arguments: Mapping[str, object] | None = None, *,
                      timeout: float | None = None) -> Any:
        machine = self._machine
        if machine.returncode is not None:
            raise QMPError(f"{machine.name}: {command} failed: disconnected")
        if machine.frozen:
            await asyncio.sleep(self.timeout if timeout is None else timeout)
            raise QMPTimeout(f"{machine.name}: {command} got no answer in time")
        self.commands.append(command)
        return machine.on_qmp(command, dict(arguments or {}))

    async def hmp(self, command_line: str, *, timeout: float | None = None) -> str:
        return str(await self.execute("human-monitor-command", {"command-line": command_line}, timeout=timeout))

    async def status(self, *, timeout: float | None = None) -> str:
        return str((await self.execute("query-status", timeout=timeout))["status"])

    async def close(self) -> None:
        pass


class FakeAgent:
    def __init__(self, machine: FakeMachine, first_job: int = 1) -> None:
        self._machine = machine
        self._events: asyncio.Queue[AgentEvent] = asyncio.Queue()
        self._jobs = first_job - 1
        self.closed = False

    @property
    def last_id(self) -> int:
        return self._jobs

    def put(self, event: AgentEvent) -> None:
        if not self.closed:
            self._events.put_nowait(event)

    async def events(self) -> AsyncIterator[AgentEvent]:
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, Disconnected):
                return

    def _check(self, verb: str) -> None:
        if self.closed or self._machine.returncode is not None or self._machine.frozen:
            raise AgentError(f"{self._machine.name}: agent channel is not open ({verb})")

    async def request_hello(self, timeout: float = 10.0) -> Hello:
        self._check("hello")
        hello = self._machine.hello_event()
        self.put(hello)
        return hello

    async def run(self, cmd: str, timeout: float) -> CommandResult:
        self._check("run")
        return CommandResult(0, "")

    async def start_job(self, cmd: str, timeout: float = 10.0) -> int:
        self._check("start")
        self._jobs += 1
        job, machine = self._jobs, self._machine
        asyncio.get_running_loop().call_later(machine.script.job_seconds, lambda: machine.job_done(job, cmd))
        return job

    async def stop_job(self, job: int, timeout: float = 10.0) -> None:
        self._check("stop")

    async def sysrq(self, ch: str, timeout: float = 10.0) -> None:
        self._check("sysrq")
        if ch == "c":
            self._machine.act(Panic())

    async def poweroff(self, timeout: float = 10.0) -> None:
        self._check("poweroff")
        if self._machine.script.poweroff_works:
            self._machine.later(0.1, self._machine.guest_poweroff)

    async def fault(self, name: str, secs: int | None = None, timeout: float = 10.0) -> int:
        self._check("fault")
        steps = self._machine.script.faults.get(name)
        if steps is None:
            raise AgentError(f"{self._machine.name}: agent refused `fault {name}`: unknown fault")
        for t, action in steps:
            self._machine.later(t, self._machine.acting(action))
        return 0

    async def close(self) -> None:
        self.closed = True
