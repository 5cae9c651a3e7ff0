"""One boot of one VM: its watchers under one task group, its failure flow, its end.

A `BootRun` starts the watchers of its machine (console, exit, QMP, agent,
watchdog, sampler: `soak.guest.watchers`, `soak.guest.watchdog`), waits until
the boot must end (a failure, QEMU gone, the run stopping), ends it (stop
ladder, or a kill once a failure's evidence is taken) and journals its stop.

A failure that ends the boot is diagnosed first (registers, console report),
recorded with its evidence, and only then is QEMU killed. Other findings (a
WARNING, an OOM kill, a leak trend) are recorded and the boot goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from soak import clock
from soak import events as ev
from soak.detect.verdict import Verdict
from soak.guest.boot import Boot, MachineWatch, Phase
from soak.guest.context import VmContext
from soak.guest.recording import Evidence
from soak.guest.watchdog import Watchdog
from soak.guest.watchers import (
    CONSOLE_DRAIN_S,
    AgentWatch,
    ConsoleWatch,
    QmpWatch,
    ready_when_running,
    sample_process,
    watch_exit,
)
from soak.kinds import Kind
from soak.machine import Machine
from soak.vm import evidence
from soak.vm.console import ConsoleSink
from soak.vm.process import describe_exit

log = logging.getLogger(__name__)

EVIDENCE_DEADLINE_S = 30.0
"""How long the end of a run waits for a failure whose diagnosis is under way."""


async def first_of(*events: asyncio.Event) -> None:
    """Wait until any of ``events`` is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class BootRun:
    """Watches one boot from launch to reap; the watchers reach the boot and the failure flow through it."""

    def __init__(self, vm: VmContext, boot: Boot, console_log: ConsoleSink) -> None:
        self.vm = vm
        self.boot = boot
        self.watch = vm.watch
        self.console = ConsoleWatch(self, console_log)
        self._watches: list[MachineWatch] = []
        """The machines of this boot still watched, oldest first: the last runs the guest (a migration
        adds one; a replaced one is forgotten once it is gone and its watchers are done)."""
        self._adopted: list[Machine] = [boot.machine]
        """Every machine launched for this boot and not yet gone (`release`): none outlives it."""
        self._tg: asyncio.TaskGroup | None = None
        self._reactions: set[asyncio.Task[Any]] = set()
        """Tasks spawned by events (fault reactions, the load): cancelled when the boot ends."""

    @property
    def machine(self) -> Machine:
        return self.boot.machine

    def emit(self, event: ev.Event) -> None:
        self.vm.emit(event)

    async def run(self) -> None:
        """Watch the boot until it must end, then end it; QEMU is gone when this returns."""
        boot = self.boot
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self._attach(boot.machine)
                watchers = [tg.create_task(Watchdog(self).run())]
                if not boot.machine.has_agent:
                    watchers.append(tg.create_task(ready_when_running(self)))
                await first_of(self.vm.control.stop, boot.over)
                await self._end()
                async with self.vm.failures.lock:  # no failure is cut off halfway through its evidence
                    for task in [*watchers, *self._reactions, *self._machine_tasks()]:
                        task.cancel()
                await self._kill_leftovers()  # a migration's other QEMU: its console must reach its end
        finally:
            self._tg = None
            self.console.cancel_timer()
            await self._kill_leftovers()  # cancelled or crashed: never leave a QEMU behind
            for machine in self._adopted:
                await machine.close()
            boot.end()

    async def _kill_leftovers(self) -> None:
        for machine in self._adopted:
            if machine.returncode is None:
                await machine.kill()

    def _attach(self, machine: Machine, *, qmp: QmpWatch | None = None) -> None:
        """Start watching ``machine``; its channels already open (a migration's destination) are kept."""
        assert self._tg is not None
        tg = self._tg
        watch = MachineWatch(machine)
        self._watches = [*(w for w in self._watches if not _finished(w)), watch]  # bounded however many migrations
        tg.create_task(self.console.read(watch))  # drains until EOF by itself; the group waits for it
        coros: list[Coroutine[Any, Any, None]] = [watch_exit(self, watch), sample_process(self, machine)]
        if qmp is None:
            coros.append(QmpWatch(self, machine).run())
        watch.tasks = [tg.create_task(coro) for coro in coros]
        if machine.has_agent:
            watch.agent_task = tg.create_task(AgentWatch(self, machine, machine.agent).run())

    def _machine_tasks(self) -> list[asyncio.Task[None]]:
        return [t for w in self._watches for t in (*w.tasks, w.agent_task) if t is not None]

    def adopt(self, machine: Machine) -> None:
        """A machine launched for this boot (a migration's destination): it never outlives the boot."""
        self._adopted.append(machine)

    def release(self, machine: Machine) -> None:
        """``machine`` (a replaced source, a failed destination) is gone and closed: forget it, so a
        boot migrated every minute for days holds its live machines, not thousands of dead ones."""
        if machine.returncode is not None and machine is not self.boot.machine and machine in self._adopted:
            self._adopted.remove(machine)

    async def replace_machine(self, new: Machine, qmp: QmpWatch) -> None:
        """``new`` runs the guest from now on (a migration completed): watch it, retire the old one.

        The old machine's watchers stop before it is told to quit, so its exit is no finding;
        its console and its agent channel drain to the end. The process trends start again: a new
        QEMU is not a leak. A boot that is ending keeps its machine (the caller checks).
        """
        assert self.boot.watching, "a boot that is ending keeps its machine"
        old_watch = self._watches[-1]
        old = old_watch.machine
        self.boot.machine = new
        self.boot.trends.new_process()
        self._attach(new, qmp=qmp)
        for task in old_watch.tasks:
            task.cancel()
        await old.shutdown(gently=False, step_timeout=self.watch.shutdown_timeout)
        await old.close()
        self.release(old)

    async def _end(self) -> None:
        """Stop QEMU: gently when the run ends, at once when a failure already took evidence."""
        boot, machine = self.boot, self.machine
        if machine.returncode is None:
            if boot.stop(self.vm.control.reason):
                # a soak that ends clean but leaks must not look clean
                for finding in boot.trends.end_of_run(clock.now()):
                    await self.record(finding.verdict(), "trend")
                await machine.shutdown(gently=boot.ready_at is not None, step_timeout=self.watch.shutdown_timeout)
            else:
                if boot.phase is Phase.FAILED and not boot.over.is_set():
                    # the run stopped while a failure was being diagnosed: let its evidence finish
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(EVIDENCE_DEADLINE_S):
                            await boot.over.wait()
                await machine.kill()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CONSOLE_DRAIN_S):
                await self._watches[-1].console_done.wait()
        uptime = clock.now() - boot.ready_at if boot.ready_at else 0.0
        _, signal_name = describe_exit(machine.returncode)
        self.emit(ev.VmStopped(
            vm=self.vm.spec.name, boot=boot.number, reason=boot.stop_reason or "failure",
            exit_code=machine.returncode, signal=signal_name, uptime_s=round(uptime, 3),
            heartbeats=boot.heartbeats,
        ))

    # ------------------------------------------------------------------ readiness

    def mark_ready(self, kernel: str) -> None:
        now = clock.now()
        boot = self.boot
        boot.become_ready(now)
        boot.slot.release()
        self.vm.on_ready()
        self.emit(ev.VmReady(vm=self.vm.spec.name, boot=boot.number, boot_s=round(now - boot.started, 3),
                             kernel=kernel))

    # ------------------------------------------------------------------ failures

    async def fail(self, verdict: Verdict, detected_by: str, *, diagnose: bool = False,
                   console_explains: bool = False, extra: dict[str, str] | None = None,
                   first_seen: float | None = None) -> None:
        """Record a failure that ends the boot; QEMU is killed after the evidence is taken.

        With ``console_explains``, a kernel report found on the console at the same
        time *is* the failure (a panic explains the reset that follows it).
        """
        boot, machine = self.boot, self.machine
        if not boot.fail(verdict):
            return
        files = dict(extra or {})
        if diagnose and machine.qmp is not None and machine.returncode is None:
            files["registers.txt"] = await evidence.registers(machine.qmp, self.watch.qmp_timeout)
        reports = await self.console.flush(force=True, extra=files if console_explains else None)
        if not (console_explains and reports):
            await self.record(verdict, detected_by, extra=files, first_seen=first_seen)
        boot.over.set()

    def explained_by_guest(self, kind: Kind) -> bool:
        """A lost-time report (``kind``) or a lost heartbeat is the guest's, however starved the host:
        this boot already has a guest failure (what follows comes from it), or a fault soak
        injected intended ``kind``."""
        return bool(self.boot.findings) or self.vm.failures.faults.intended(kind, clock.now())

    def fail_by_host(self, problem: str, message: str, *, retire: bool) -> None:
        """The host or soak ended the boot (QEMU refused to start, the host's OOM killer): an
        infrastructure problem, not a guest failure."""
        if self.boot.fail_by_host(message, retire=retire):
            self.emit(ev.InfraProblem(vm=self.vm.spec.name, problem=problem, message=message))
            self.boot.over.set()

    async def record(self, verdict: Verdict, detected_by: str, *, corrupted: bool = False,
                     report_text: str = "", extra: dict[str, str] | None = None,
                     first_seen: float | None = None) -> None:
        self.boot.findings += 1
        await self.vm.failures.record(self.boot.number, list(self.machine.argv), verdict, Evidence(
            detected_by, first_seen=first_seen, corrupted=corrupted, report_text=report_text, files=extra))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        """Run a reaction inside the boot's task group, so it never outlives the boot."""
        if self._tg is None:
            coro.close()
            return None
        task = self._tg.create_task(coro)
        self._reactions.add(task)
        task.add_done_callback(self._reactions.discard)
        return task


def _finished(watch: MachineWatch) -> bool:
    """Its machine is gone and every watcher of it is done: nothing of it is left to cancel or wait for."""
    tasks = [*watch.tasks, watch.agent_task]
    return (watch.machine.returncode is not None and watch.console_done.is_set()
            and all(task is None or task.done() for task in tasks))
