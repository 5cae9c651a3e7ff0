"""The runner of one VM: its boot loop, its restart policy and its fault timeline.

A `GuestRunner` owns one VM slot of the fleet for the whole run. Each boot is
one machine from its `MachineLauncher`, watched by a `BootRun`
(`soak.guest.bootrun`); when a boot ends, the restart policy decides whether
the VM boots again or retires. The VM's fault timeline runs beside its boots
and applies each fault to whichever boot is ready (`wait_ready`).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from soak import clock
from soak import events as ev
from soak.classify import ConsoleTriage
from soak.detect.trend import DEFAULT_WARMUP_S, ResourceTrends
from soak.diskio import DiskAlarm
from soak.errors import LaunchError
from soak.faults.driver import FaultDriver
from soak.guest.boot import Boot, BootSlot, Phase
from soak.guest.bootrun import BootRun, first_of
from soak.guest.context import RunControl, VmContext
from soak.guest.handle import BootHandle
from soak.guest.recording import FailureRecorder
from soak.load.plan import ramp_time_s
from soak.machine import Machine, MachineLauncher
from soak.profile import Profile, VmSpec
from soak.recorder import Recorder
from soak.rundir import RunDir
from soak.vm.consolestore import ConsoleStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GuestSetup:
    """What every runner of a run shares."""

    profile: Profile
    run_dir: RunDir
    recorder: Recorder
    launcher: MachineLauncher
    boot_slots: asyncio.Semaphore
    control: RunControl
    soak_command: Callable[[VmSpec], str]
    """The soak command line that re-runs one VM alone (for reproducers)."""
    disk_alarm: DiskAlarm | None = None
    """The run's reaction to a disk that refuses writes (an InfraProblem and a clean stop)."""


class GuestRunner:
    """Runs one VM of the fleet until the run stops or the restart policy gives up."""

    def __init__(self, spec: VmSpec, setup: GuestSetup) -> None:
        self.spec = spec
        self.setup = setup
        self.boots = 0
        self.restarts = 0
        self._current: BootRun | None = None
        self._readiness = asyncio.Event()
        """Set whenever a boot becomes ready or the run stops: wakes `wait_ready`."""
        self._first_ready = asyncio.Event()
        setup.run_dir.vm_dir(spec.name)
        seed = setup.profile.run.seed
        watch = setup.profile.watch
        faults = FaultDriver(spec.name, spec.faults, index_in_group=spec.index_in_group, seed=seed, emit=self.emit,
                             memory_s=max(120.0, 3 * watch.hang_timeout))
        on_write_error = setup.disk_alarm.write_failed if setup.disk_alarm is not None else None
        self.console = ConsoleStore(spec.name, setup.run_dir.vm_dir(spec.name),
                                    limit_bytes=setup.profile.run.console_limit, emit=self.emit,
                                    on_write_error=on_write_error)
        self.vm = VmContext(
            spec=spec, watch=watch, seed=seed, control=setup.control, faults=faults, launcher=setup.launcher,
            emit=self.emit,
            failures=FailureRecorder(spec, setup.run_dir, seed=seed, faults=faults,
                                     soak_command=setup.soak_command, emit=self.emit,
                                     evidence_per_signature=setup.profile.run.evidence_per_signature,
                                     console=self.console, on_write_error=on_write_error),
            on_ready=self._on_ready,
        )

    @property
    def machine(self) -> Machine | None:
        """The current boot's machine, if a boot is under way."""
        return self._current.machine if self._current is not None else None

    def emit(self, event: ev.Event) -> None:
        self.setup.recorder.emit(event)

    async def run(self) -> None:
        """Boot, watch and restart the VM until the run stops; its faults run alongside."""
        try:
            async with asyncio.TaskGroup() as tg:
                faults = tg.create_task(self.vm.faults.run(self, self._first_ready))
                try:
                    await self._boot_loop()
                finally:
                    faults.cancel()
        except Exception as exc:  # a bug in soak: this VM stops, the rest of the fleet goes on
            log.exception("runner of %s failed", self.spec.name)
            detail = "".join(traceback.format_exception(exc)[-3:]).strip()
            self.emit(ev.InfraProblem(vm=self.spec.name, problem="soak-bug", message=detail))
            self.emit(ev.VmRetired(vm=self.spec.name, reason="soak failed on this VM"))
        finally:
            await self.console.close()

    async def wait_ready(self) -> BootHandle | None:
        """The current boot once it is ready to take a fault; None when the run stops."""
        stop = self.setup.control.stop
        while not stop.is_set():
            current = self._current
            if current is not None and current.boot.phase is Phase.READY:
                return BootHandle(current)
            self._readiness.clear()
            await first_of(stop, self._readiness)
        return None

    def _on_ready(self) -> None:
        self._first_ready.set()
        self._readiness.set()

    async def _boot_loop(self) -> None:
        restart = self.setup.profile.restart
        control = self.setup.control
        while not control.stop.is_set():
            failed, retire = await self._one_boot()
            if control.stop.is_set():
                return
            if retire is not None:
                self.emit(ev.VmRetired(vm=self.spec.name, reason=retire))
                return
            if restart.policy == "never" or self.restarts >= restart.max_restarts:
                reason = "restart policy: never" if restart.policy == "never" else (
                    f"restart policy: {restart.max_restarts} restarts used")
                self.emit(ev.VmRetired(vm=self.spec.name, reason=reason))
                return
            if not failed and restart.policy != "always":
                self.emit(ev.VmRetired(vm=self.spec.name, reason="powered off"))
                return
            self.restarts += 1
            self.emit(ev.VmRestarting(vm=self.spec.name, boot=self.boots + 1, after_s=restart.backoff))
            await first_of_or_timeout(control.stop, restart.backoff)

    async def _one_boot(self) -> tuple[bool, str | None]:
        """One machine from launch to reap: (it ended in a failure, why booting again is pointless)."""
        self.boots += 1
        number = self.boots
        setup = self.setup
        console_log = self.console.open_boot(number)
        slot = BootSlot(setup.boot_slots)
        try:
            await slot.acquire()
            if setup.control.stop.is_set():
                return False, None
            try:
                machine = await setup.launcher.launch(self.spec, number)
            except LaunchError as exc:
                self.emit(ev.InfraProblem(vm=self.spec.name, problem="launch", message=str(exc)))
                return True, f"QEMU cannot start this VM: {exc}"
            watch = setup.profile.watch
            boot = Boot(number=number, machine=machine, started=clock.now(),
                        triage=ConsoleTriage(grace_seconds=watch.console_grace), slot=slot,
                        trends=ResourceTrends.for_boot(warmup_s=self._trend_warmup_s()))
            self.emit(ev.VmStarting(vm=self.spec.name, boot=number, pid=machine.pid, argv=list(machine.argv)))
            del machine  # the boot's machine changes with each migration: hold none of them here
            self._current = BootRun(self.vm, boot, console_log)
            try:
                await self._current.run()
            finally:
                self._current = None
            ended_badly = boot.failure is not None or boot.host_trouble is not None
            return ended_badly, f"QEMU cannot start this VM: {boot.host_trouble}" if boot.retire else None
        finally:
            slot.release()
            self.console.end_boot()

    def _trend_warmup_s(self) -> float:
        """A ramping load grows guest memory use on purpose: wait for the ramp before judging trends."""
        if self.spec.load is None:
            return DEFAULT_WARMUP_S
        return DEFAULT_WARMUP_S + ramp_time_s(self.spec.load, vcpus=self.spec.vcpus,
                                              memory_mib=self.spec.memory_mib)


async def first_of_or_timeout(event: asyncio.Event, timeout: float) -> None:
    """Wait for ``event``, at most ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass
