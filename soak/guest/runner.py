"""The runner of one VM: its boot loop and the watchers of each boot.

A `GuestRunner` owns one VM slot of the fleet. Each *boot* is one QEMU process,
watched by a task group of its own:

    console  -> ConsoleTriage (kernel reports, after a grace period)
    QMP      -> GUEST_PANICKED, guest RESET/SHUTDOWN, unexpected STOP
    agent    -> HELLO (ready), heartbeats
    watchdog -> boot timeout, heartbeat lost -> hang diagnosis
    sampler  -> QEMU CPU, RSS, threads, fds
    exit     -> QEMU died on its own (crash) or after a guest poweroff

A failure that ends the boot (panic, hang, crash ...) is diagnosed first
(registers, thread states, console tail), recorded with its evidence, then the
QEMU process is killed and the restart policy decides what comes next. Other
failures (a WARNING, an OOM kill) are recorded and the boot goes on.
The states of a boot are drawn in `soak.guest.boot`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from soak import events as ev
from soak.classify import ConsoleTriage, Report
from soak.detect.exit import qemu_exit_verdict
from soak.detect.hang import hang_verdict
from soak.detect.qmp_events import paused_verdict, qmp_event_verdict
from soak.detect.trend import DEFAULT_WARMUP_S, ResourceTrends
from soak.detect.verdict import Verdict
from soak.errors import AgentError, LaunchError, QMPError
from soak.faults.driver import FaultDriver
from soak.guest.boot import Boot, BootSlot
from soak.guest.handle import BootHandle
from soak.guest.hang import diagnose_hang
from soak.guest.recording import Evidence, FailureRecorder
from soak.kinds import Kind
from soak.load.driver import LoadDriver
from soak.load.plan import ramp_time_s
from soak.profile import Profile, VmSpec
from soak.recorder import Recorder
from soak.rundir import RunDir
from soak.vm import evidence
from soak.vm.agent import AgentClient, AgentLog, Heartbeat, Hello, JobExit, JobOutput
from soak.vm.argv import QemuConfig, build_argv
from soak.vm.console import ConsoleLog, ConsoleReader, read_tail
from soak.vm.process import QemuProcess, describe_exit
from soak.vm.qmp import QmpEvent, QmpSession

log = logging.getLogger(__name__)

EVIDENCE_DEADLINE_S = 30.0
"""How long the end of a run waits for a failure whose diagnosis is under way."""
END_OF_REPORT = "---[ end "
REPORT_SETTLE_S = 1.0
"""After a report's end marker, how long a following panic (panic_on_oops ...) may take to start."""


@dataclass
class RunControl:
    """The run's stop switch, shared by the supervisor and every runner."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = "deadline"
    """Why the run stops: ``deadline`` or ``signal``."""

    def request_stop(self, reason: str) -> None:
        if not self.stop.is_set():
            self.reason = reason
            self.stop.set()


@dataclass(frozen=True, slots=True)
class GuestSetup:
    """What every runner of a run shares."""

    profile: Profile
    run_dir: RunDir
    socket_dir: Path
    recorder: Recorder
    make_config: Callable[[VmSpec, int, Path, Path], QemuConfig]
    """Builds the QEMU config of (vm, boot number, qmp socket, agent socket)."""
    boot_slots: asyncio.Semaphore
    control: RunControl
    soak_command: Callable[[VmSpec], str]
    """The soak command line that re-runs one VM alone (for reproducers)."""
    has_agent: Callable[[VmSpec], bool] = lambda _spec: True
    """False for a user's own image: no heartbeats, so no hang detection."""


class GuestRunner:
    """Runs one VM of the fleet until the run stops or the restart policy gives up."""

    def __init__(self, spec: VmSpec, setup: GuestSetup) -> None:
        self.spec = spec
        self.setup = setup
        self.watch = setup.profile.watch
        self.log = log.getChild(spec.name)
        self.boots = 0
        self.restarts = 0
        self._boot: Boot | None = None
        self.qmp: QmpSession | None = None
        self.agent: AgentClient | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._reactions: set[asyncio.Task[Any]] = set()
        """Tasks spawned by events (fault reactions, the load): cancelled when the boot ends."""
        setup.run_dir.vm_dir(spec.name)
        self.has_agent = setup.has_agent(spec)
        self.faults = FaultDriver(spec, seed=setup.profile.run.seed, emit=self.emit,
                                  memory_s=max(120.0, 3 * self.watch.hang_timeout))
        self.recorder = FailureRecorder(spec, setup.run_dir, seed=setup.profile.run.seed, faults=self.faults,
                                        soak_command=setup.soak_command, emit=self.emit)
        self._first_ready = asyncio.Event()
        self._readiness = asyncio.Event()
        """Set whenever a boot becomes ready or the run stops: wakes `wait_ready`."""

    # ----------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Boot, watch and restart the VM until the run stops; its faults run alongside."""
        try:
            async with asyncio.TaskGroup() as tg:
                faults = tg.create_task(self.faults.run(self, self._first_ready))
                try:
                    await self._boot_loop()
                finally:
                    faults.cancel()
        except Exception as exc:  # a bug in soak: this VM stops, the rest of the fleet goes on
            self.log.exception("runner failed")
            detail = "".join(traceback.format_exception(exc)[-3:]).strip()
            self.emit(ev.InfraProblem(vm=self.spec.name, problem="soak-bug", message=detail))
            self.emit(ev.VmRetired(vm=self.spec.name, reason="soak failed on this VM"))

    async def wait_ready(self) -> BootHandle | None:
        """The current boot once it is ready to take a fault; None when the run stops."""
        while not self.setup.control.stop.is_set():
            boot = self._boot
            if boot is not None and boot.ready_at is not None and boot.failed is None and boot.stopping is None:
                return BootHandle(self, boot)
            self._readiness.clear()
            stop = asyncio.ensure_future(self.setup.control.stop.wait())
            ready = asyncio.ensure_future(self._readiness.wait())
            try:
                await asyncio.wait([stop, ready], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                ready.cancel()
        return None

    async def _boot_loop(self) -> None:
        restart = self.setup.profile.restart
        while not self.setup.control.stop.is_set():
            try:
                failed = await self._one_boot()
            except LaunchError as exc:
                self.emit(ev.InfraProblem(vm=self.spec.name, problem="launch", message=str(exc)))
                failed = True
            if self.setup.control.stop.is_set():
                return
            if restart.policy == "never" or self.restarts >= restart.max_restarts:
                reason = "restart policy: never" if restart.policy == "never" else (
                    f"restart policy: {restart.max_restarts} restarts used"
                )
                self.emit(ev.VmRetired(vm=self.spec.name, reason=reason))
                return
            if not failed and restart.policy != "always":
                self.emit(ev.VmRetired(vm=self.spec.name, reason="powered off"))
                return
            self.restarts += 1
            self.emit(ev.VmRestarting(vm=self.spec.name, boot=self.boots + 1, after_s=restart.backoff))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(restart.backoff):
                    await self.setup.control.stop.wait()

    async def _one_boot(self) -> bool:
        """One QEMU process from spawn to reap; True when it ended in a failure."""
        self.boots += 1
        number = self.boots
        qmp_socket = self.setup.socket_dir / f"{self.spec.name}.qmp"
        agent_socket = self.setup.socket_dir / f"{self.spec.name}.agent"
        for sock in (qmp_socket, agent_socket):
            sock.unlink(missing_ok=True)
        config = self.setup.make_config(self.spec, number, qmp_socket, agent_socket)
        argv = build_argv(config)
        console_path = self.setup.run_dir.console_log(self.spec.name)
        console_log = ConsoleLog(console_path)
        marker = f"\n===== soak: {self.spec.name} boot {number} at {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n"
        console_log.write(marker.encode())
        slot = BootSlot(self.setup.boot_slots)
        try:
            await slot.acquire()
            if self.setup.control.stop.is_set():
                return False
            qemu = await QemuProcess.spawn(argv, stderr_path=self.setup.run_dir.stderr_log(self.spec.name))
            boot = Boot(
                number=number,
                qemu=qemu,
                argv=argv,
                started=time.monotonic(),
                triage=ConsoleTriage(grace_seconds=self.watch.console_grace),
                slot=slot,
                trends=ResourceTrends.for_boot(warmup_s=self._trend_warmup_s()),
            )
            self._boot = boot
            self.emit(ev.VmStarting(vm=self.spec.name, boot=number, pid=qemu.pid, argv=argv))
            try:
                async with asyncio.TaskGroup() as tg:
                    self._tg = tg
                    console = tg.create_task(self._read_console(boot, console_log))
                    watchers = [
                        tg.create_task(self._watch_exit(boot)),
                        tg.create_task(self._connect_qmp(boot, qmp_socket)),
                        tg.create_task(self._talk_to_agent(boot, agent_socket) if self.has_agent
                                       else self._ready_when_running(boot)),
                        tg.create_task(self._watchdog(boot)),
                        tg.create_task(self._sample_process(boot)),
                    ]
                    await self._wait_for_end(boot)
                    await self._end_boot(boot)
                    async with self.recorder.lock:  # no failure is cut off halfway through its evidence
                        for task in [*watchers, *self._reactions]:
                            task.cancel()
                    del console  # drains until EOF by itself; the group waits for it
            finally:
                self._tg = None
                if boot.triage_timer:
                    boot.triage_timer.cancel()
                if qemu.returncode is None:  # cancelled or crashed: never leave QEMU behind
                    await qemu.kill()
                await self._close_channels()
            return boot.failed is not None
        finally:
            slot.release()
            console_log.close()
            self._boot = None

    def _trend_warmup_s(self) -> float:
        """A ramping load grows guest memory use on purpose: wait for the ramp before judging trends."""
        if self.spec.load is None:
            return DEFAULT_WARMUP_S
        return DEFAULT_WARMUP_S + ramp_time_s(self.spec.load, vcpus=self.spec.vcpus,
                                              memory_mib=self.spec.memory_mib)

    async def _wait_for_end(self, boot: Boot) -> None:
        stop = asyncio.ensure_future(self.setup.control.stop.wait())
        over = asyncio.ensure_future(boot.over.wait())
        try:
            await asyncio.wait([stop, over], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            over.cancel()

    async def _end_boot(self, boot: Boot) -> None:
        """Stop QEMU: gently when the run ends, at once when a failure already took evidence."""
        qemu = boot.qemu
        if qemu.returncode is None:
            if boot.failed is None and boot.stopping is None:
                boot.stopping = self.setup.control.reason
                # a soak that ends clean but leaks must not look clean
                for finding in boot.trends.end_of_run(time.monotonic()):
                    await self._record(boot, finding.verdict(), "trend")
                await self._stop_gently(boot)
            else:
                if boot.failed is not None and not boot.over.is_set():
                    # the run stopped while a failure was being diagnosed: let its evidence finish
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(EVIDENCE_DEADLINE_S):
                            await boot.over.wait()
                boot.stopping = boot.stopping or "failure"
                await qemu.kill()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await boot.console_done.wait()
        uptime = time.monotonic() - boot.ready_at if boot.ready_at else 0.0
        _, signal_name = describe_exit(qemu.returncode)
        self.emit(
            ev.VmStopped(
                vm=self.spec.name,
                boot=boot.number,
                reason=boot.stopping or "failure",
                exit_code=qemu.returncode,
                signal=signal_name,
                uptime_s=round(uptime, 3),
                heartbeats=boot.heartbeats,
            )
        )

    async def _stop_gently(self, boot: Boot) -> None:
        """The shutdown ladder: guest poweroff via the agent, then QMP quit, then SIGKILL."""
        timeout = self.watch.shutdown_timeout
        steps: list[Callable[[], Coroutine[Any, Any, None]]] = []
        if self.agent is not None and boot.ready_at is not None:
            steps.append(self.agent.poweroff)
        if self.qmp is not None:
            steps.append(self._qmp_quit)
        for step in steps:
            try:
                async with asyncio.timeout(timeout):
                    await step()
                    await boot.qemu.wait()
                return
            except (TimeoutError, AgentError, QMPError) as exc:
                self.log.debug("stop step %s failed: %s", step.__name__, exc)
        await boot.qemu.kill()

    async def _qmp_quit(self) -> None:
        assert self.qmp is not None
        with contextlib.suppress(QMPError):  # QEMU may exit before it answers
            await self.qmp.execute("quit")

    async def _close_channels(self) -> None:
        if self.agent is not None:
            await self.agent.close()
            self.agent = None
        if self.qmp is not None:
            await self.qmp.close()
            self.qmp = None

    # ------------------------------------------------------------------ watchers

    async def _read_console(self, boot: Boot, console_log: ConsoleLog) -> None:
        loop = asyncio.get_running_loop()

        def on_line(line: str) -> None:
            now = time.monotonic()
            deadline = boot.triage.feed(line, now)
            if deadline is not None:
                boot.crash_seen_at = boot.crash_seen_at or now
                if boot.triage_timer:
                    boot.triage_timer.cancel()
                delay = max(0.0, deadline - time.monotonic())
                boot.triage_timer = loop.call_later(delay, lambda: self._spawn(self._triage_due(boot, False)))
            elif END_OF_REPORT in line and boot.triage.pending and boot.triage_timer is not None:
                # "---[ end trace ... ]---": the report is whole; wait only for a panic that may follow
                boot.triage_timer.cancel()
                boot.triage_timer = loop.call_later(
                    min(REPORT_SETTLE_S, self.watch.console_grace),
                    lambda: self._spawn(self._triage_due(boot, True)))

        try:
            await ConsoleReader(boot.qemu.console, console_log, on_line).run()
        finally:
            boot.console_done.set()

    async def _triage_due(self, boot: Boot, force: bool, extra: dict[str, str] | None = None) -> list[Report]:
        """Record the console reports whose grace period is over (or all, if forced).

        ``extra`` evidence (registers, thread states) goes with the first report.
        """
        reports = boot.triage.due(time.monotonic(), force=force)
        first_seen, boot.crash_seen_at = boot.crash_seen_at, None
        for i, report in enumerate(reports):
            verdict = _console_verdict(report)
            await self._record(boot, verdict, "console", corrupted=report.corrupted, report_text=report.text,
                               extra=extra if i == 0 else None, first_seen=first_seen)
            if verdict.terminal and boot.failed is None and boot.stopping is None:
                boot.failed = verdict  # a panicked guest will not come back by itself
                boot.over.set()
        return reports

    async def _watch_exit(self, boot: Boot) -> None:
        code = await boot.qemu.wait()
        exited_at = time.monotonic()
        if boot.stopping is None and boot.failed is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await boot.console_done.wait()
            stderr = read_tail(self.setup.run_dir.stderr_log(self.spec.name), 8192)
            verdict = qemu_exit_verdict(code, guest_shutdown=boot.guest_shutdown,
                                        stderr_tail=stderr.decode("utf-8", "replace"))
            # A clean exit after a kernel report is that report's consequence; a crash of QEMU never is.
            await self._fail(boot, verdict, "process", console_explains=code == 0, first_seen=exited_at)
        boot.over.set()

    async def _connect_qmp(self, boot: Boot, socket_path: Path) -> None:
        session = QmpSession(self.spec.name, lambda e: self._on_qmp_event(boot, e),
                             timeout=self.watch.qmp_timeout)
        try:
            await session.connect(socket_path, timeout=min(30.0, self.watch.boot_timeout))
        except QMPError as exc:
            if boot.qemu.returncode is None and not boot.over.is_set():
                self.emit(ev.InfraProblem(vm=self.spec.name, problem="qmp", message=str(exc)))
            await session.close()
            return
        self.qmp = session
        boot.qmp_connected.set()

    def _on_qmp_event(self, boot: Boot, event: QmpEvent) -> None:
        if boot.stopping is not None or boot.failed is not None:
            return
        if event.name == "SHUTDOWN" and event.data.get("guest") and event.data.get("reason") == "guest-shutdown":
            boot.guest_shutdown = True
            return
        if boot.watch_suspended or boot.expecting_reboot:
            return  # a fault of ours in progress: its STOP, RESET and SHUTDOWN events are expected
        if event.name == "STOP":
            self._spawn(self._check_unexpected_stop(boot))
            return
        verdict = qmp_event_verdict(event.name, event.data)
        if verdict is not None:
            self._spawn(self._on_fatal_event(boot, verdict, event.received))

    async def _on_fatal_event(self, boot: Boot, verdict: Verdict, received: float) -> None:
        """A panic or a reset: the console report, if any, names the failure; else the event does."""
        await asyncio.sleep(0.2)  # the last console lines may still be in the pipe
        await self._fail(boot, verdict, "qmp", diagnose=True, console_explains=True, first_seen=received)

    async def _check_unexpected_stop(self, boot: Boot) -> None:
        await asyncio.sleep(0.5)  # GUEST_PANICKED and SHUTDOWN come with a STOP: let them win
        if boot.failed is not None or boot.stopping is not None or self.qmp is None or boot.watch_suspended:
            return
        try:
            state = await self.qmp.status()
        except QMPError:
            return  # the heartbeat watchdog will find out what is wrong
        if state not in ("running", "shutdown", "finish-migrate", "postmigrate"):
            await self._fail(boot, paused_verdict(state), "qmp", diagnose=True)

    async def _ready_when_running(self, boot: Boot) -> None:
        """Without an agent (a user's own image) the guest counts as up once QEMU runs it."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.watch.boot_timeout):
                await boot.qmp_connected.wait()
        if self.qmp is not None:
            with contextlib.suppress(QMPError):
                if await self.qmp.status() == "running":
                    self._mark_ready(boot, "")

    async def _talk_to_agent(self, boot: Boot, socket_path: Path) -> None:
        agent = AgentClient(socket_path, name=self.spec.name)
        try:
            await agent.connect(timeout=min(30.0, self.watch.boot_timeout))
        except AgentError as exc:
            if boot.qemu.returncode is None and not boot.over.is_set():
                self.emit(ev.InfraProblem(vm=self.spec.name, problem="agent", message=str(exc)))
            await agent.close()
            return
        self.agent = agent
        async for message in agent.events():
            if isinstance(message, Hello):
                self._on_hello(boot, message)
            elif isinstance(message, Heartbeat):
                if boot.ready_at is None and boot.boot_id is None:
                    # connected after the guest's HELLO (it was dropped): ask again
                    boot.boot_id = ""
                    self._spawn(self._ask_hello(agent))
                self._on_heartbeat(boot, message)
            elif isinstance(message, JobOutput):
                if boot.load is not None:
                    boot.load.on_output(message.job, message.text)
            elif isinstance(message, JobExit):
                if boot.load is not None:
                    boot.load.on_exit(message.job, message.rc)
            elif isinstance(message, AgentLog):
                self.log.info("agent: %s", message.text)

    async def _ask_hello(self, agent: AgentClient) -> None:
        with contextlib.suppress(AgentError):
            await agent.request_hello(timeout=self.watch.qmp_timeout)

    def _on_hello(self, boot: Boot, hello: Hello) -> None:
        now = time.monotonic()
        if boot.ready_at is not None:
            rebooted = hello.boot_id != boot.boot_id
            if rebooted and boot.expecting_reboot:  # a reset fault's intended outcome
                boot.boot_id, boot.expecting_reboot = hello.boot_id, False
                boot.last_heartbeat = now
                boot.watch_changed.set()
                if boot.load_task is not None:  # its jobs died with the old kernel: start afresh
                    boot.load_task.cancel()
                    self._start_load(boot)
            elif rebooted and boot.failed is None and boot.stopping is None:  # the guest rebooted under us
                self._spawn(self._fail(boot, Verdict(Kind.GUEST_RESET, "guest reset itself"), "agent",
                                       console_explains=True))
            return
        boot.boot_id = hello.boot_id
        self._mark_ready(boot, hello.kernel_release)

    def _start_load(self, boot: Boot) -> None:
        settings = self.spec.load
        if settings is None or self.agent is None:
            return
        agent = self.agent

        async def record(verdict: Verdict, output: str) -> None:
            if boot.stopping is None and boot.qemu.returncode is None:  # a dying guest's runs prove nothing
                await self._record(boot, verdict, "workload", extra={"stress-ng-output.txt": output + "\n"})

        boot.load = LoadDriver(
            self.spec.name, settings, vcpus=self.spec.vcpus, memory_mib=self.spec.memory_mib,
            seed=self.setup.profile.run.seed, vm_index=self.spec.index, emit=self.emit, record=record,
        )
        boot.load_task = self._spawn(boot.load.run(agent))

    def _mark_ready(self, boot: Boot, kernel: str) -> None:
        now = time.monotonic()
        boot.ready_at = now
        boot.last_heartbeat = now
        boot.watch_changed.set()
        self._first_ready.set()
        self._readiness.set()
        if boot.slot is not None:
            boot.slot.release()
        self.emit(ev.VmReady(vm=self.spec.name, boot=boot.number, boot_s=round(now - boot.started, 3),
                             kernel=kernel))
        self._start_load(boot)

    def _on_heartbeat(self, boot: Boot, beat: Heartbeat) -> None:
        now = time.monotonic()
        gap = now - boot.last_heartbeat if boot.heartbeats and boot.last_heartbeat else 0.0
        boot.last_heartbeat = now
        boot.heartbeats += 1
        boot.trends.add_heartbeat(now, beat.mem_available_kib)
        interval = self.watch.heartbeat_interval
        self.emit(ev.Heartbeat(
            vm=self.spec.name, seq=beat.seq, uptime_s=beat.uptime_s, load1=beat.load1,
            mem_free_kib=beat.mem_free_kib, mem_available_kib=beat.mem_available_kib,
            gap_s=round(gap, 4), lateness_s=round(max(0.0, gap - interval), 4) if gap else 0.0,
        ))

    async def _watchdog(self, boot: Boot) -> None:
        """Sleeps until the next deadline (boot timeout, then heartbeat timeout); no polling.

        Heartbeats only move the deadline later, so the watchdog wakes at most once per
        hang timeout; readiness and the end of a fault window wake it through ``watch_changed``.
        """
        while not boot.over.is_set():
            if boot.watch_suspended or boot.expecting_reboot:
                deadline = time.monotonic() + (self.watch.boot_timeout if boot.expecting_reboot else 3600.0)
            elif boot.ready_at is None:
                deadline = boot.started + self.watch.boot_timeout
            elif not self.has_agent:
                return  # no heartbeats to watch: console, QMP and the process still are
            else:
                assert boot.last_heartbeat is not None
                deadline = boot.last_heartbeat + self.watch.hang_timeout
            delay = deadline - time.monotonic()
            if delay > 0:
                boot.watch_changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await boot.watch_changed.wait()
                continue
            if boot.failed is not None or boot.stopping is not None:
                return
            if boot.ready_at is None or boot.expecting_reboot:
                await self._fail(boot, Verdict(Kind.BOOT_TIMEOUT, "boot timeout: no agent hello"),
                                 "boot", diagnose=True)
                return
            if not await self._diagnose_hang(boot):
                return

    async def _diagnose_hang(self, boot: Boot) -> bool:
        """Find out why heartbeats stopped; True to keep watching (they resumed, or the host is to blame)."""
        assert boot.last_heartbeat is not None
        seen_at = boot.last_heartbeat
        age = time.monotonic() - seen_at
        self.emit(ev.HeartbeatLate(vm=self.spec.name, age_s=round(age, 3)))
        # the watchdog should have woken right at the deadline: any delay is soak's own starvation
        diagnosis = await diagnose_hang(boot.qemu, self.qmp, loop_lag_s=age - self.watch.hang_timeout)
        if boot.last_heartbeat != seen_at or boot.over.is_set():
            return not boot.over.is_set()  # it answered after all: a slow guest is not a hung one
        verdict = hang_verdict(diagnosis.facts)
        if verdict is None:
            self.emit(ev.InfraProblem(vm=self.spec.name, problem="host-starved",
                                      message=f"no heartbeat for {age:.1f}s while the host was starved "
                                              f"({diagnosis.starved_note})"))
            boot.last_heartbeat = time.monotonic()
            return True
        await self._fail(boot, verdict, "heartbeat", diagnose=diagnosis.facts.qmp_answered,
                         extra={"threads.txt": diagnosis.threads}, first_seen=seen_at + self.watch.hang_timeout)
        return False

    async def _sample_process(self, boot: Boot) -> None:
        try:
            process = psutil.Process(boot.qemu.pid)
        except psutil.Error:
            return
        while boot.qemu.returncode is None:
            try:
                with process.oneshot():
                    cpu = process.cpu_times()
                    sample = ev.ProcessSample(
                        vm=self.spec.name, pid=boot.qemu.pid, cpu_s=round(cpu.user + cpu.system, 3),
                        rss_bytes=process.memory_info().rss, threads=process.num_threads(),
                        fds=process.num_fds(),
                    )
            except psutil.Error:
                return
            self.emit(sample)
            now = time.monotonic()
            boot.trends.add_process(now, sample.rss_bytes, sample.threads, sample.fds)
            for finding in boot.trends.check(now):
                await self._record(boot, finding.verdict(), "trend")
            await asyncio.sleep(self.watch.sample_interval)

    # --------------------------------------------------------------- recording

    async def _fail(self, boot: Boot, verdict: Verdict, detected_by: str, *, diagnose: bool = False,
                    console_explains: bool = False, extra: dict[str, str] | None = None,
                    first_seen: float | None = None) -> None:
        """Record a failure that ends the boot; QEMU is killed after the evidence is taken.

        With ``console_explains``, a kernel report found on the console at the same
        time *is* the failure (a panic explains the reset that follows it).
        """
        if boot.failed is not None or boot.stopping is not None:
            return
        boot.failed = verdict
        files = dict(extra or {})
        if diagnose and self.qmp is not None and boot.qemu.returncode is None:
            files["registers.txt"] = await evidence.registers(self.qmp, self.watch.qmp_timeout)
        reports = await self._triage_due(boot, True, extra=files if console_explains else None)
        if not (console_explains and reports):
            await self._record(boot, verdict, detected_by, extra=files, first_seen=first_seen)
        boot.over.set()

    async def _record(self, boot: Boot, verdict: Verdict, detected_by: str, *, corrupted: bool = False,
                      report_text: str = "", extra: dict[str, str] | None = None,
                      first_seen: float | None = None) -> None:
        await self.recorder.record(boot.number, boot.argv, verdict, Evidence(
            detected_by, first_seen=first_seen, corrupted=corrupted, report_text=report_text, files=extra))

    def emit(self, event: ev.Event) -> None:
        self.setup.recorder.emit(event)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        """Run a reaction inside the boot's task group, so it never outlives the boot."""
        if self._tg is None:
            coro.close()
            return None
        task = self._tg.create_task(coro)
        self._reactions.add(task)
        task.add_done_callback(self._reactions.discard)
        return task


def _console_verdict(report: Report) -> Verdict:
    return Verdict(report.kind, report.title, terminal=report.kind == Kind.KERNEL_PANIC or report.panicked)
