"""The supervisor: the whole fleet under one task group, one deadline, one stop.

Every VM gets a `GuestRunner` in the task group. Boots share a semaphore so a
small host is never hit by a boot storm. The run ends at its deadline or at
the first SIGINT/SIGTERM: every runner then stops its guest in order (agent
poweroff, QMP quit, SIGKILL). A second signal stops at once: runners are
cancelled and kill their QEMU in their ``finally``. If soak itself dies, the
kernel kills every QEMU (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from soak.diskio import DiskAlarm
from soak.guest import GuestRunner, GuestSetup, RunControl
from soak.machine import MachineLauncher
from soak.profile import Profile, VmSpec
from soak.recorder import Recorder
from soak.rundir import RunDir

log = logging.getLogger(__name__)

ECHO_WINDOW_S = 1.0
"""The same signal again within this long is an echo, not a second request (``scancel`` sends TERM
to the batch script and to soak at once, and the script's trap forwards its own)."""


@dataclass
class SupervisorResult:
    reason: str
    """``deadline`` or ``signal``."""


class Supervisor:
    """Runs a fleet for a duration; `run` returns when every QEMU is gone."""

    def __init__(
        self,
        profile: Profile,
        fleet: list[VmSpec],
        run_dir: RunDir,
        recorder: Recorder,
        launcher: MachineLauncher,
        soak_command: Callable[[VmSpec], str],
    ) -> None:
        self.profile = profile
        self.fleet = fleet
        self.run_dir = run_dir
        self.recorder = recorder
        self.launcher = launcher
        self.soak_command = soak_command
        self.control = RunControl()
        self.disk_alarm: DiskAlarm | None = None
        """Set by the session before `run`: given to every runner."""
        self.runners: list[GuestRunner] = []

    def request_stop(self, reason: str) -> None:
        self.control.request_stop(reason)

    async def run(self, duration_s: float) -> SupervisorResult:
        loop = asyncio.get_running_loop()
        deadline = loop.call_later(duration_s, self.request_stop, "deadline")
        main = asyncio.current_task()
        first: tuple[int, float] | None = None

        def on_signal(signum: int) -> None:
            nonlocal first
            now = loop.time()
            if first is None:
                first = (signum, now)
                log.warning("%s: stopping all guests (again to kill them now)", signal.Signals(signum).name)
                self.request_stop("signal")
            elif first[0] == signum and now - first[1] < ECHO_WINDOW_S:
                pass  # the same signal twice at once: a batch system's and its wrapper's, one request
            elif main is not None:
                main.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        setup = GuestSetup(
            profile=self.profile,
            run_dir=self.run_dir,
            recorder=self.recorder,
            launcher=self.launcher,
            disk_alarm=self.disk_alarm,
            boot_slots=asyncio.Semaphore(self.profile.run.max_parallel_boots),
            control=self.control,
            soak_command=self.soak_command,
        )
        self.runners = [GuestRunner(spec, setup) for spec in self.fleet]
        try:
            async with asyncio.TaskGroup() as tg:
                for runner in self.runners:
                    tg.create_task(runner.run(), name=f"vm {runner.spec.name}")
        finally:
            deadline.cancel()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        return SupervisorResult(self.control.reason)
