"""A ready boot as fault injectors see it (`soak.faults.driver.FaultableBoot`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from soak.guest.boot import Boot
from soak.vm.agent import AgentClient
from soak.vm.qmp import QmpSession

if TYPE_CHECKING:
    from soak.guest.runner import GuestRunner


class BootHandle:
    def __init__(self, runner: GuestRunner, boot: Boot) -> None:
        self._runner = runner
        self._boot = boot
        self._suspended_at = time.monotonic()

    @property
    def pid(self) -> int:
        return self._boot.qemu.pid

    @property
    def qmp(self) -> QmpSession | None:
        return self._runner.qmp

    @property
    def agent(self) -> AgentClient | None:
        return self._runner.agent

    @property
    def qmp_timeout(self) -> float:
        return self._runner.watch.qmp_timeout

    @property
    def alive(self) -> bool:
        return self._boot.alive

    def suspend_watch(self) -> None:
        self._boot.watch_suspended += 1
        self._suspended_at = time.monotonic()

    def resume_watch(self) -> None:
        boot = self._boot
        boot.watch_suspended = max(0, boot.watch_suspended - 1)
        if boot.load is not None:
            boot.load.paused(time.monotonic() - self._suspended_at)
        if not boot.watch_suspended:
            boot.last_heartbeat = time.monotonic()  # the hang timeout counts from the window's end
            boot.watch_changed.set()

    def expect_reboot(self) -> None:
        self._boot.expecting_reboot = True
        self._boot.watch_changed.set()
