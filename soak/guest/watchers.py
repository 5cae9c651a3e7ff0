"""The watchers of one boot: console, QEMU's exit, QMP events, the agent, the process.

Each watcher turns what its channel says into state changes of the `Boot` and
into failures through the `BootRun`'s failure flow; none of them kills QEMU or
decides a restart. The deadline watchdog lives in `soak.guest.watchdog`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import deque
from typing import TYPE_CHECKING

from soak import clock, hostload
from soak import events as ev
from soak.classify import Report
from soak.detect.exit import qemu_exit_verdict
from soak.detect.launch import launch_failure
from soak.detect.qmp_events import paused_verdict, qmp_event_verdict
from soak.detect.verdict import Verdict
from soak.errors import AgentError, QMPError
from soak.guest.boot import MachineWatch, Phase
from soak.guest.devload import device_load_jobs, network_stall_s
from soak.kinds import LOST_TIME_KINDS, Kind
from soak.load.devload import DeviceLoadDriver
from soak.load.driver import LoadDriver
from soak.machine import Machine, Postmortem
from soak.vm.agent import AgentLog, Heartbeat, Hello, JobExit, JobOutput
from soak.vm.channels import GuestAgent
from soak.vm.console import ConsoleReader, ConsoleSink
from soak.vm.qmp import QmpEvent

if TYPE_CHECKING:
    from soak.guest.bootrun import BootRun

log = logging.getLogger(__name__)

STDERR_TAIL_BYTES = 8192
STAGE_LINES = 64
"""Console lines kept to say where a boot stopped, for a boot timeout's title."""
CONSOLE_DRAIN_S = 2.0
"""How long the console may take to deliver QEMU's last bytes after it exited."""
PANIC_EVENT_SETTLE_S = 0.2
"""After GUEST_PANICKED or a reset, the last console lines may still be in the pipe."""
STOP_EVENT_SETTLE_S = 0.5
"""GUEST_PANICKED and SHUTDOWN come with a STOP: let them explain it first."""


def _console_verdict(report: Report) -> Verdict:
    return Verdict(report.kind, report.title, terminal=report.kind == Kind.KERNEL_PANIC or report.panicked)


class ConsoleWatch:
    """Saves the console of each machine of the boot and hands every line to the boot's crash triage."""

    def __init__(self, run: BootRun, console_log: ConsoleSink) -> None:
        self.run_ = run
        self._sink = console_log
        self._readers: list[ConsoleReader] = []
        """The readers of the boot's machines still open (a migration adds one, its end removes it)."""
        self._bytes_closed = 0
        self.stage_lines: deque[str] = deque(maxlen=STAGE_LINES)
        """The last lines since the boot (or the expected reboot) began: where a boot stopped."""
        self.stage_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._crash_seen_at: float | None = None
        """When the console line that opened the pending kernel report arrived."""

    @property
    def bytes_read(self) -> int:
        """Console bytes of this boot so far, over all its machines."""
        return self._bytes_closed + sum(reader.bytes_read for reader in self._readers)

    async def read(self, watch: MachineWatch) -> None:
        """Drain one machine's console until QEMU closes it."""
        reader = ConsoleReader(watch.machine.console, self._sink, self._on_line)
        self._readers.append(reader)
        try:
            await reader.run()
        finally:
            watch.console_done.set()
            self._readers.remove(reader)
            self._bytes_closed += reader.bytes_read

    def new_stage(self) -> None:
        """A reboot is expected: a boot timeout from now on is about the new boot's lines only."""
        self.stage_lines.clear()
        self.stage_bytes = 0

    def _on_line(self, line: str) -> None:
        self.stage_lines.append(line)
        self.stage_bytes += len(line) + 1
        now = clock.now()
        deadline = self.run_.boot.triage.feed(line, now)
        if deadline is None:
            return
        self._crash_seen_at = self._crash_seen_at or now
        self.cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(
            max(0.0, deadline - now), lambda: self.run_.spawn(self.flush(force=True)))

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def flush(self, *, force: bool, extra: dict[str, str] | None = None) -> list[Report]:
        """Record the pending console reports (all of them when ``force``; else those that are due).

        ``extra`` evidence (registers, thread states) goes with the first report.
        """
        run = self.run_
        boot = run.boot
        reports = boot.triage.due(clock.now(), force=force)
        if reports:
            self.cancel_timer()
        first_seen, self._crash_seen_at = self._crash_seen_at, None
        for i, report in enumerate(reports):
            verdict = _console_verdict(report)
            lost_time = verdict.kind in LOST_TIME_KINDS and not verdict.terminal
            if lost_time and not run.explained_by_guest(verdict.kind) and (starved := hostload.host_starved_lately()):
                run.emit(ev.InfraProblem(vm=run.vm.spec.name, problem="host-starved", message=(
                    f"the guest reported {verdict.title!r} while the host was starved ({starved}): "
                    "time the host did not give its vCPUs, not a finding about the guest")))
                continue
            await run.record(verdict, "console", corrupted=report.corrupted, report_text=report.text,
                             extra=extra if i == 0 else None, first_seen=first_seen)
            if verdict.terminal and boot.fail(verdict):  # a panicked guest will not come back by itself
                boot.over.set()
        return reports


async def watch_exit(run: BootRun, watch: MachineWatch) -> None:
    """QEMU went away: a crash, a guest poweroff, a QEMU that refused to start, the host's OOM killer.

    Only the machine running the boot matters: a migration's source leaves on purpose.
    """
    boot, machine = run.boot, watch.machine
    code = await machine.wait()
    exited_at = clock.now()
    if boot.watching and machine is run.machine:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CONSOLE_DRAIN_S):
                await watch.console_done.wait()
        stderr = machine.stderr_tail(STDERR_TAIL_BYTES)
        refused = launch_failure(code, guest_ran=run.console.bytes_read > 0 or boot.ready_at is not None,
                                 stderr_tail=stderr, seconds_since_spawn=exited_at - boot.started)
        if refused is not None:
            run.fail_by_host("launch", refused.message, retire=True)
            return
        post = await machine.postmortem() if code < 0 else Postmortem()
        if post.host_oom is not None:
            run.fail_by_host("host-oom", f"the host's OOM killer killed QEMU: {post.host_oom}", retire=False)
        else:
            verdict = qemu_exit_verdict(code, guest_shutdown=boot.guest_shutdown, stderr_tail=stderr,
                                        boot_stderr=stderr, backtrace=post.backtrace)
            if post.note:
                verdict = dataclasses.replace(verdict, message="; ".join(filter(None, (verdict.message, post.note))))
            # A clean exit after a kernel report is that report's consequence; a crash of QEMU never is.
            await run.fail(verdict, "process", console_explains=code == 0, extra=post.files, first_seen=exited_at)
    if machine is run.machine:
        boot.over.set()


class QmpWatch:
    """Connects QMP to one machine and turns its events into failures (panic, guest reset,
    unexpected stop) while that machine runs the boot."""

    def __init__(self, run: BootRun, machine: Machine) -> None:
        self.run_ = run
        self.machine = machine

    async def connect(self) -> bool:
        """Connect (a problem is journaled when QEMU is alive but QMP does not come)."""
        run, machine = self.run_, self.machine
        try:
            await machine.connect_qmp(self._on_event, timeout=min(30.0, run.watch.boot_timeout))
        except QMPError as exc:
            if machine.returncode is None and not run.boot.over.is_set():
                run.emit(ev.InfraProblem(vm=run.vm.spec.name, problem="qmp", message=str(exc)))
            return False
        return True

    async def run(self) -> None:
        if await self.connect():
            self.run_.boot.qmp_connected.set()

    def _on_event(self, event: QmpEvent) -> None:
        run, boot = self.run_, self.run_.boot
        if not boot.watching or self.machine is not run.machine:
            return
        if event.name == "SHUTDOWN" and event.data.get("guest") and event.data.get("reason") == "guest-shutdown":
            boot.guest_shutdown = True
            return
        if boot.phase in (Phase.HELD, Phase.REBOOTING):
            return  # a fault of ours in progress: its STOP, RESET and SHUTDOWN events are expected
        if event.name == "STOP":
            run.spawn(self._check_unexpected_stop())
            return
        verdict = qmp_event_verdict(event.name, event.data)
        if verdict is not None:
            run.spawn(self._on_fatal_event(verdict, event.received))

    async def _on_fatal_event(self, verdict: Verdict, received: float) -> None:
        """A panic or a reset: the console report, if any, names the failure; else the event does."""
        await asyncio.sleep(PANIC_EVENT_SETTLE_S)
        await self.run_.fail(verdict, "qmp", diagnose=True, console_explains=True, first_seen=received)

    async def _check_unexpected_stop(self) -> None:
        run, boot = self.run_, self.run_.boot
        await asyncio.sleep(STOP_EVENT_SETTLE_S)
        qmp = run.machine.qmp
        if boot.phase not in (Phase.STARTING, Phase.READY) or qmp is None:
            return
        try:
            state = await qmp.status()
        except QMPError:
            return  # the heartbeat watchdog will find out what is wrong
        if state not in ("running", "shutdown", "finish-migrate", "postmigrate"):
            await run.fail(paused_verdict(state), "qmp", diagnose=True)


async def ready_when_running(run: BootRun) -> None:
    """Without an agent (a user's own image) the guest counts as up once QEMU runs it."""
    boot = run.boot
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(run.watch.boot_timeout):
            await boot.qmp_connected.wait()
    qmp = run.machine.qmp
    if qmp is not None:
        with contextlib.suppress(QMPError):
            if await qmp.status() == "running" and boot.phase is Phase.STARTING:
                run.mark_ready("")


class AgentWatch:
    """Listens to the guest agent of one machine: hello (ready, reboots), heartbeats, the load's
    job output. ``connected``: its channel, when already open (a migration's destination)."""

    def __init__(self, run: BootRun, machine: Machine, connected: GuestAgent | None = None) -> None:
        self.run_ = run
        self.machine = machine
        self.connected = connected

    async def run(self) -> None:
        run, boot, machine = self.run_, self.run_.boot, self.machine
        agent = self.connected
        if agent is None:
            try:
                agent = await machine.connect_agent(timeout=min(30.0, run.watch.boot_timeout))
            except AgentError as exc:
                if machine.returncode is None and not boot.over.is_set():
                    run.emit(ev.InfraProblem(vm=run.vm.spec.name, problem="agent", message=str(exc)))
                return
        async for message in agent.events():
            if isinstance(message, Hello):
                self._on_hello(message)
            elif isinstance(message, Heartbeat):
                if boot.ready_at is None and boot.boot_id is None:
                    # connected after the guest's HELLO (it was dropped): ask again
                    boot.boot_id = ""
                    run.spawn(self._ask_hello(agent))
                self._on_heartbeat(message)
            elif isinstance(message, JobOutput):
                if boot.devload is not None and boot.devload.owns(message.job):
                    boot.devload.on_output(message.job, message.text)
                elif boot.load is not None:
                    boot.load.on_output(message.job, message.text)
            elif isinstance(message, JobExit):
                if boot.devload is not None and boot.devload.owns(message.job):
                    if boot.watching and machine is run.machine:
                        boot.devload.on_exit(message.job, message.rc)
                elif boot.load is not None:
                    boot.load.on_exit(message.job, message.rc)
            elif isinstance(message, AgentLog):
                log.info("%s agent: %s", run.vm.spec.name, message.text)

    async def _ask_hello(self, agent: GuestAgent) -> None:
        with contextlib.suppress(AgentError):
            await agent.request_hello(timeout=self.run_.watch.qmp_timeout)

    def _on_hello(self, hello: Hello) -> None:
        run, boot = self.run_, self.run_.boot
        if boot.ready_at is None:
            boot.boot_id = hello.boot_id
            run.mark_ready(hello.kernel_release)
            self._start_load()
            return
        if hello.boot_id == boot.boot_id:
            return  # only the agent restarted
        if boot.phase is Phase.REBOOTING:  # a reset fault's intended outcome
            boot.rebooted(hello.boot_id, clock.now())
            for task in (boot.load_task, boot.devload_task):  # its jobs died with the old kernel: start afresh
                if task is not None:
                    task.cancel()
            self._start_load()
        elif boot.watching:  # the guest rebooted under us
            run.spawn(run.fail(Verdict(Kind.GUEST_RESET, "guest reset itself"), "agent", console_explains=True))

    def _start_load(self) -> None:
        run, boot = self.run_, self.run_.boot
        spec = run.vm.spec
        jobs = device_load_jobs(spec)
        if jobs:
            async def record_device(verdict: Verdict, line: str) -> None:
                if boot.watching and run.machine.returncode is None:
                    await run.record(verdict, "workload", extra={"device-load.txt": line + "\n"})

            boot.devload = DeviceLoadDriver(spec.name, jobs, emit=run.emit, record=record_device, spawn=run.spawn,
                                            stall_s=network_stall_s(spec))
            boot.devload_task = run.spawn(boot.devload.run(CurrentAgent(run)))
        if spec.load is None:
            return

        async def record(verdict: Verdict, output: str) -> None:
            if boot.watching and run.machine.returncode is None:  # a dying guest's runs prove nothing
                await run.record(verdict, "workload", extra={"stress-ng-output.txt": output + "\n"})

        boot.load = LoadDriver(spec.name, spec.load, vcpus=spec.vcpus, memory_mib=spec.memory_mib,
                               seed=run.vm.seed, vm_index=spec.index, emit=run.emit, record=record)
        boot.load_task = run.spawn(boot.load.run(CurrentAgent(run)))

    def _on_heartbeat(self, beat: Heartbeat) -> None:
        run, boot = self.run_, self.run_.boot
        now = clock.now()
        gap = now - boot.last_heartbeat if boot.heartbeats and boot.last_heartbeat else 0.0
        boot.last_heartbeat = now
        boot.heartbeats += 1
        boot.trends.add_heartbeat(now, beat.mem_available_kib)
        interval = run.watch.heartbeat_interval
        run.emit(ev.Heartbeat(
            vm=run.vm.spec.name, seq=beat.seq, uptime_s=beat.uptime_s, load1=beat.load1,
            mem_free_kib=beat.mem_free_kib, mem_available_kib=beat.mem_available_kib,
            gap_s=round(gap, 4), lateness_s=round(max(0.0, gap - interval), 4) if gap else 0.0,
        ))


async def sample_process(run: BootRun, machine: Machine) -> None:
    """QEMU's CPU, RSS, threads and fds every ``sample_interval``: metrics and leak trends."""
    boot = run.boot
    while machine is run.machine and (figures := machine.figures()) is not None:
        run.emit(ev.ProcessSample(vm=run.vm.spec.name, pid=machine.pid, cpu_s=figures.cpu_s,
                                  rss_bytes=figures.rss_bytes, threads=figures.threads, fds=figures.fds))
        now = clock.now()
        boot.trends.add_process(now, figures.rss_bytes, figures.threads, figures.fds)
        for finding in boot.trends.check(now):
            await run.record(finding.verdict(), "trend")
        await asyncio.sleep(run.watch.sample_interval)


class CurrentAgent:
    """The jobs of whichever machine runs the boot now: a migration replaces the agent under the load."""

    def __init__(self, run: BootRun) -> None:
        self.run_ = run

    def _agent(self) -> GuestAgent:
        agent = self.run_.machine.agent
        if agent is None:
            raise AgentError(f"{self.run_.vm.spec.name}: no agent channel")
        return agent

    async def start_job(self, cmd: str, timeout: float = 10.0) -> int:
        return await self._agent().start_job(cmd, timeout)

    async def stop_job(self, job: int, timeout: float = 10.0) -> None:
        await self._agent().stop_job(job, timeout)
