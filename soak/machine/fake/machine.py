"""The fake machine itself, and its launcher (see `soak.machine.fake`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from soak import clock
from soak.errors import AgentError, LaunchError, MigrationError, QMPError
from soak.machine.base import Machine, MachineLauncher, MigrationStats, Postmortem, ProcessFigures
from soak.machine.fake.channels import FakeAgent, FakeQmp, _Console
from soak.machine.fake.script import (
    Action,
    Event,
    Exit,
    Freeze,
    GuestScript,
    Hang,
    Panic,
    Print,
    Reboot,
    Stop,
)
from soak.profile import VmSpec
from soak.vm.agent import Disconnected, Heartbeat, Hello, JobExit, JobOutput
from soak.vm.evidence import ThreadTimes
from soak.vm.qmp import QMPCommandError, QmpEvent


class FakeMachine:
    """One boot of a fake guest (see `soak.machine.base.Machine`)."""

    def __init__(self, name: str, script: GuestScript, *, vcpus: int, qmp_timeout: float, pid: int,
                 incoming: bool = False, launcher: FakeLauncher | None = None, memory_mib: int = 256) -> None:
        self._name = name
        self.memory_mib = memory_mib
        self._launcher = launcher
        self.incoming = incoming
        self._guest: list[FakeMachine] = [self]
        """Where the guest runs now, shared by every machine it ran on (a migration moves it): the
        guest's own timers find it there, and a machine it left keeps no later one alive."""
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
        return self._guest[0]

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
    def disk_images(self) -> tuple[()]:
        return ()

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
        dest._guest = self._guest
        self._guest[0] = dest
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

    def __init__(self, scripts: Callable[[VmSpec, int], GuestScript] | GuestScript | None = None, *,
                 qmp_timeout: float = 5.0) -> None:
        self._scripts = scripts if scripts is not None else GuestScript()
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
