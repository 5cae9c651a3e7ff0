"""A scripted guest behind the machine interface: the runner's logic, tested without QEMU.

A `FakeMachine` plays a `GuestScript`: it says hello after ``hello_after``
seconds, heartbeats, prints console lines, emits QMP events and exits when the
script says so, and reacts to what soak does to it the way QEMU and soak's
agent do (QMP ``stop``/``cont``/``quit``/``system_reset``, SIGSTOP, SIGKILL,
agent ``poweroff``, guest faults). Every time is the event loop's, so a test
run on a virtual clock takes microseconds per simulated hour.

This is for tests and benchmarks of soak's own logic; a real guest proves the
behaviour of QEMU (`soak.machine.qemu`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from soak import clock
from soak.errors import AgentError, LaunchError, MigrationError, QMPError
from soak.machine.base import Machine, MachineLauncher, MigrationStats, Postmortem, ProcessFigures
from soak.profile import VmSpec
from soak.vm.agent import (
    AgentEvent,
    CommandResult,
    Disconnected,
    Heartbeat,
    Hello,
    JobExit,
    JobOutput,
)
from soak.vm.evidence import ThreadTimes
from soak.vm.qmp import QMPCommandError, QmpEvent, QMPTimeout


@dataclass(frozen=True, slots=True)
class Print:
    """The guest prints these console lines."""

    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Exit:
    """QEMU exits with ``code`` (negative: killed by that signal)."""

    code: int


@dataclass(frozen=True, slots=True)
class Hang:
    """The guest stops heartbeating; its vCPUs spin (``busy``) or idle. QMP still answers.

    ``starved``: the vCPUs want to run but get no CPU (the host is overloaded).
    """

    busy: bool = True
    starved: bool = False


@dataclass(frozen=True, slots=True)
class Stop:
    """The VM stops running by itself (QMP STOP; the run state becomes ``state``)."""

    state: str = "internal-error"


@dataclass(frozen=True, slots=True)
class Freeze:
    """QEMU itself hangs: no heartbeats, and QMP stops answering."""


@dataclass(frozen=True, slots=True)
class Event:
    """QEMU emits a QMP event."""

    name: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reboot:
    """The guest reboots itself: a new boot id, hello again after ``hello_after``."""


@dataclass(frozen=True, slots=True)
class Panic:
    """A kernel panic: the report on the console, then pvpanic's GUEST_PANICKED and STOP."""

    message: str = "sysrq triggered crash"


Action = Print | Exit | Hang | Stop | Freeze | Event | Reboot | Panic


@dataclass(frozen=True)
class GuestScript:
    """How one boot of a fake guest behaves; times are seconds after launch."""

    hello_after: float | None = 2.0
    """None: the guest never says hello (a boot timeout)."""
    heartbeat_every: float = 1.0
    steps: Sequence[tuple[float, Action]] = ()
    faults: Mapping[str, Sequence[tuple[float, Action]]] = field(default_factory=dict)
    """What a guest fault (agent ``fault NAME``) does, times after the fault."""
    job_seconds: float = 1.0
    """How long each load job (stress-ng run) takes; it exits 0 with one metrics line."""
    launch_error: str | None = None
    """The launcher fails with this message instead of starting the machine."""
    stderr: str = ""
    """What QEMU printed on stderr."""
    postmortem: Postmortem = field(default_factory=Postmortem)
    """What the host tells about a death by a signal (host OOM, a backtrace)."""
    has_agent: bool = True
    migration_s: float = 0.5
    """How long a migration from this machine takes (its downtime is a tenth of it)."""
    migration_error: str | None = None
    """A migration from this machine fails with this QEMU error."""
    poweroff_works: bool = True
    """The agent's poweroff makes the guest power off (False: it is ignored)."""


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


class FakeMachine:
    """One boot of a fake guest (see `soak.machine.base.Machine`)."""

    def __init__(self, name: str, script: GuestScript, *, vcpus: int, qmp_timeout: float, pid: int,
                 incoming: bool = False, launcher: FakeLauncher | None = None, memory_mib: int = 256) -> None:
        self._name = name
        self.memory_mib = memory_mib
        self._launcher = launcher
        self.incoming = incoming
        self.successor: FakeMachine | None = None
        """The machine the guest migrated to."""
        self.script = script
        self.vcpus = vcpus
        self._qmp_timeout = qmp_timeout
        self._pid = pid
        self._console = _Console()
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._qmp: FakeQmp | None = None
        self._agent: FakeAgent | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._beats: asyncio.TimerHandle | None = None
        self.boot_id = uuid.uuid4().hex
        self.seq = 0
        self.run_state = "running"
        self.frozen = False
        """SIGSTOPped, or QEMU hung: nothing answers."""
        self.stopped = False
        """SIGSTOPped (the kernel's process state is then "stopped")."""
        self.hung: Hang | None = None
        self.started = clock.now()
        self.signals: list[int] = []
        self._cpu_s = 0.0
        self._cpu_at = self.started
        if incoming:  # a migration's destination: the guest arrives with its state, not by booting
            self.run_state = "inmigrate"
            return
        for t, action in script.steps:
            self.guest_later(t, action)
        if script.hello_after is not None:
            self.later(script.hello_after, self._say_hello)

    # ------------------------------------------------------------- the script

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` after ``delay`` seconds, unless QEMU is gone by then."""
        def fire() -> None:
            self._timers.discard(handle)
            if self.returncode is None:
                callback()
        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(handle)

    def acting(self, action: Action) -> Callable[[], None]:
        return lambda: self.act(action)

    def home(self) -> FakeMachine:
        """The machine that runs the guest now: this one, or the one it migrated to."""
        home = self
        while home.successor is not None:
            home = home.successor
        return home

    def guest_later(self, delay: float, action: Action) -> None:
        """A scripted step of the guest: it happens wherever the guest runs by then."""
        def fire() -> None:
            home = self.home()
            if home.returncode is None:
                home.act(action)
        asyncio.get_running_loop().call_later(delay, fire)

    def act(self, action: Action) -> None:
        if isinstance(action, Print):
            for line in action.lines:
                self._console.write(line + "\r\n")
        elif isinstance(action, Exit):
            self._exit_with(action.code)
        elif isinstance(action, Hang):
            self.hung = action
        elif isinstance(action, Stop):
            self.run_state = action.state
            self._qmp_event("STOP")
        elif isinstance(action, Freeze):
            self.frozen = True
        elif isinstance(action, Event):
            self._qmp_event(action.name, action.data)
        elif isinstance(action, Reboot):
            self._reboot()
        elif isinstance(action, Panic):
            self.act(Print((f"[   10.000000] Kernel panic - not syncing: {action.message}",
                            "[   10.000001] CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0-fake #1",
                            "[   10.000002] Kernel Offset: disabled")))
            self.hung = Hang(busy=False)
            self.run_state = "guest-panicked"
            self._qmp_event("GUEST_PANICKED", {"action": "pause"})
            self._qmp_event("STOP")

    def job_done(self, job: int, cmd: str) -> None:
        """A load job ends in the guest, wherever the guest runs by now (a migration moves it)."""
        home = self.home()
        if home.returncode is not None or home._agent is None:
            return
        stressor = cmd.split("--")[1].split()[0] if "--" in cmd else "cpu"
        home._agent.put(JobOutput(clock.now(), job, f"stress-ng: metrc: [1] {stressor} 100 1.00 1.00 0.00 100.00 100.00"))
        home._agent.put(JobExit(clock.now(), job, 0))

    def hello_event(self) -> Hello:
        return Hello(clock.now(), 1, "6.1.0-fake", self.vcpus, 256 * 1024, self.boot_id, "fake",
                     frozenset({"agent"}), self.script.heartbeat_every)

    def _say_hello(self) -> None:
        self.seq = 0
        if self._agent is not None:
            self._agent.put(self.hello_event())
        self._schedule_beat()

    def _schedule_beat(self) -> None:
        if self._beats is not None:
            self._beats.cancel()
        self._beats = asyncio.get_running_loop().call_later(self.script.heartbeat_every, self._beat)

    def _beat(self) -> None:
        self._beats = None
        if self.returncode is not None:
            return
        if not (self.frozen or self.hung or self.run_state != "running"):
            self.seq += 1
            if self._agent is not None:
                self._agent.put(Heartbeat(clock.now(), self.seq, clock.now() - self.started, 0.1, 100_000, 150_000))
        self._schedule_beat()

    def _reboot(self) -> None:
        self.boot_id = uuid.uuid4().hex
        self.hung = None
        self.run_state = "running"
        self.act(Print(("[    0.000000] Linux version 6.1.0-fake",)))
        if self.script.hello_after is not None:
            self.later(self.script.hello_after, self._say_hello)

    def _qmp_event(self, name: str, data: Mapping[str, Any] | None = None) -> None:
        if self._qmp is not None:
            self._qmp.emit(name, data)

    def guest_poweroff(self) -> None:
        self._qmp_event("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"})
        self._exit_with(0)

    def _exit_with(self, code: int) -> None:
        if self._exit.done():
            return
        self._exit.set_result(code)
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._beats is not None:
            self._beats.cancel()
        self._console.close()
        if self._agent is not None:
            self._agent.put(Disconnected(clock.now(), "the agent socket closed (QEMU exited?)"))

    # ------------------------------------------------------------ QMP commands

    def on_qmp(self, command: str, arguments: dict[str, object]) -> Any:
        if command == "query-status":
            return {"status": self.run_state, "running": self.run_state == "running"}
        if command == "stop":
            self.run_state = "paused"
            self._qmp_event("STOP")
        elif command == "cont":
            if self.run_state == "postmigrate":
                raise QMPCommandError(command, "GenericError", "the guest has left this machine")
            self.run_state = "running"
            self._qmp_event("RESUME")
        elif command == "quit":
            self._qmp_event("SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"})
            self.later(0.05, lambda: self._exit_with(0))
        elif command == "system_reset":
            self._qmp_event("RESET", {"guest": False, "reason": "host-qmp-system-reset"})
            self._reboot()
        elif command == "inject-nmi":
            self.act(Print(("[   20.000000] Uhhuh. NMI received for unknown reason 21 on CPU 0.",)))
        elif command == "human-monitor-command":
            return "CPU#0\nRIP=ffffffff81000000 RSP=ffffc90000000000 (fake registers)\n"
        else:
            raise QMPCommandError(command, "CommandNotFound", f"the fake machine has no {command}")
        return {}

    # ------------------------------------------------------ the Machine surface

    @property
    def name(self) -> str:
        return self._name

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def argv(self) -> list[str]:
        return ["fake-qemu", "-name", self._name]

    @property
    def has_agent(self) -> bool:
        return self.script.has_agent

    @property
    def console(self) -> _Console:
        return self._console

    @property
    def qmp(self) -> FakeQmp | None:
        return self._qmp

    @property
    def agent(self) -> FakeAgent | None:
        return self._agent

    @property
    def returncode(self) -> int | None:
        return self._exit.result() if self._exit.done() else None

    async def connect_qmp(self, on_event: Callable[[QmpEvent], None], *, timeout: float) -> FakeQmp:
        if self.returncode is not None:
            raise QMPError(f"{self._name}: no QMP: QEMU is gone")
        self._qmp = FakeQmp(self, on_event, self._qmp_timeout)
        return self._qmp

    async def connect_agent(self, *, timeout: float, resume: object | None = None) -> FakeAgent:
        if self.returncode is not None or not self.script.has_agent:
            raise AgentError(f"{self._name}: no agent channel")
        self._agent = FakeAgent(self, first_job=resume.last_id + 1000 if isinstance(resume, FakeAgent) else 1)
        return self._agent

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    async def accept_migration(self) -> str:
        if self._qmp is None or not self.incoming or self._launcher is None:
            raise QMPError(f"{self._name}: not a migration destination with QMP connected")
        uri = f"fake:{self._pid}"
        self._launcher.listening[uri] = self
        return uri

    async def migrate_to(self, uri: str, *, paused: bool, timeout: float, bandwidth: int) -> MigrationStats:
        if self.returncode is not None or self._launcher is None:
            raise QMPError(f"{self._name}: migrate failed: disconnected")
        dest = self._launcher.listening.pop(uri)
        if paused:
            self.run_state = "paused"
        await asyncio.sleep(min(self.script.migration_s, timeout))
        if self.returncode is not None:
            raise QMPError(f"{self._name}: query-migrate failed: disconnected")
        if dest.memory_mib != self.memory_mib:  # what QEMU's destination says, then it exits
            error = (f"Length mismatch: pc.ram: 0x{self.memory_mib << 20:x} in != 0x{dest.memory_mib << 20:x}: "
                     "Invalid argument")
            dest.act(Exit(1))
            raise MigrationError(f"migration failed: {error}", qemu_error=error)
        if self.script.migration_error is not None or dest.returncode is not None:
            error = self.script.migration_error or "Unable to write to socket: Broken pipe"
            raise MigrationError(f"migration failed: {error}", qemu_error=error)
        if self.script.migration_s > timeout:
            raise MigrationError(f"migration did not complete within {timeout:.0f}s", qemu_error="status active")
        dest.take_over(self, paused=paused)
        self.successor = dest
        self.run_state = "postmigrate"
        self.hung = Hang(busy=False)  # the source runs no guest any more
        return MigrationStats(total_s=self.script.migration_s, downtime_s=self.script.migration_s / 10,
                              transferred_bytes=64 << 20, dirty_pages_rate=1000.0)

    def take_over(self, source: FakeMachine, *, paused: bool) -> None:
        """The guest's state arrived: the same boot goes on here."""
        self.incoming = False
        self.boot_id, self.seq, self.started = source.boot_id, source.seq, source.started
        self.hung, self.frozen = source.hung, source.frozen
        self.run_state = "paused" if paused else "running"
        if not paused:
            self._qmp_event("RESUME")
        self._schedule_beat()

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if self.returncode is not None:
            return
        if sig == signal.SIGSTOP:
            self.frozen = self.stopped = True
        elif sig == signal.SIGCONT:
            self.frozen = self.stopped = False
        elif sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._exit_with(0)
        else:
            self._exit_with(-sig)

    async def kill(self) -> int | None:
        self.send_signal(signal.SIGKILL)
        return await self.wait()

    async def shutdown(self, *, gently: bool, step_timeout: float) -> None:
        steps: list[Callable[[], Any]] = []
        if gently and self._agent is not None:
            steps.append(self._agent.poweroff)
        if self._qmp is not None:
            steps.append(lambda: self._qmp.execute("quit") if self._qmp else None)
        for step in steps:
            with contextlib.suppress(TimeoutError, AgentError, QMPError):
                async with asyncio.timeout(step_timeout):
                    await step()
                    await self.wait()
                return
        await self.kill()

    async def close(self) -> None:
        if self._agent is not None:
            await self._agent.close()

    def process_state(self) -> str:
        if self.returncode is not None:
            return "gone"
        return "stopped" if self.stopped else "sleeping"

    def _vcpu_cpu(self) -> float:
        now = clock.now()
        busy = self.hung is not None and self.hung.busy and not self.hung.starved and not self.frozen
        self._cpu_s += (now - self._cpu_at) * (1.0 if busy else 0.02)
        self._cpu_at = now
        return self._cpu_s

    def figures(self) -> ProcessFigures | None:
        if self.returncode is not None:
            return None
        return ProcessFigures(cpu_s=self._vcpu_cpu() * self.vcpus, rss_bytes=200 << 20,
                              threads=4 + self.vcpus, fds=30)

    def thread_times(self) -> ThreadTimes | None:
        if self.returncode is not None:
            return None
        cpu = self._vcpu_cpu()
        runnable = self.hung is not None and (self.hung.busy or self.hung.starved)
        state = "T" if self.frozen else "R" if runnable else "S"
        tids = range(self._pid + 1, self._pid + 1 + self.vcpus)
        return ThreadTimes(clock.now(), dict.fromkeys(tids, cpu),
                           {tid: f"CPU {i}/TCG" for i, tid in enumerate(tids)}, dict.fromkeys(tids, state))

    def stderr_tail(self, limit: int) -> str:
        return self.script.stderr[-limit:]

    async def postmortem(self) -> Postmortem:
        return self.script.postmortem


class FakeLauncher:
    """Launches fake machines; ``scripts`` gives the script of each (VM, boot)."""

    def __init__(self, scripts: Callable[[VmSpec, int], GuestScript] | GuestScript = GuestScript(), *,
                 qmp_timeout: float = 5.0) -> None:
        self._scripts = scripts
        self.qmp_timeout = qmp_timeout
        self.launched: list[FakeMachine] = []
        self.listening: dict[str, FakeMachine] = {}
        """Migration destinations by URI."""

    def script(self, spec: VmSpec, boot: int) -> GuestScript:
        return self._scripts(spec, boot) if callable(self._scripts) else self._scripts

    async def launch(self, spec: VmSpec, boot: int, *, incoming: bool = False) -> FakeMachine:
        script = self.script(spec, boot)
        if script.launch_error is not None:
            raise LaunchError(script.launch_error)
        machine = FakeMachine(spec.name, script, vcpus=spec.vcpus, qmp_timeout=self.qmp_timeout,
                              pid=100_000 + 100 * len(self.launched), incoming=incoming, launcher=self,
                              memory_mib=spec.memory_mib)
        self.launched.append(machine)
        return machine

    def machines(self, vm: str) -> list[FakeMachine]:
        return [m for m in self.launched if m.name == vm]


def _conforms(launcher: FakeLauncher, machine: FakeMachine) -> tuple[MachineLauncher, Machine]:
    """mypy checks here that the fakes keep up with the interface they stand in for."""
    return launcher, machine
