"""A ready boot as fault injectors see it (`soak.faults.driver.FaultableBoot`)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from soak import clock
from soak.faults.devices import DiskTarget
from soak.faults.settings import FaultSettings
from soak.guest.boot import Phase
from soak.guest.migration import migrate
from soak.vm.channels import GuestAgent, Qmp
from soak.vm.devices import CACHE_MODES

if TYPE_CHECKING:
    from soak.guest.bootrun import BootRun


class BootHandle:
    def __init__(self, run: BootRun) -> None:
        self._run = run
        self._boot = run.boot
        self._held_at: float | None = None

    def send_signal(self, sig: int) -> None:
        self._boot.machine.send_signal(sig)

    @property
    def qmp(self) -> Qmp | None:
        return self._boot.machine.qmp

    @property
    def agent(self) -> GuestAgent | None:
        return self._boot.machine.agent

    @property
    def qmp_timeout(self) -> float:
        return self._run.watch.qmp_timeout

    @property
    def alive(self) -> bool:
        return self._boot.alive

    @property
    def memory_mib(self) -> int:
        return self._run.vm.spec.memory_mib

    @property
    def disks(self) -> list[DiskTarget]:
        images = self._boot.machine.disk_images
        return [DiskTarget(i, image, d.io_size, (CACHE_MODES[d.cache][0], CACHE_MODES[d.cache][2]),
                           image.parent if d.backing == "tmpfs" else None)
                for i, (d, image) in enumerate(zip(self._run.vm.spec.disks, images, strict=False))]

    def suspend_watch(self) -> None:
        if self._boot.phase is Phase.READY:
            self._held_at = clock.now()
            self._boot.hold(self._held_at)

    def resume_watch(self) -> None:
        boot, now = self._boot, clock.now()
        if self._held_at is not None and boot.load is not None:
            boot.load.paused(now - self._held_at)  # the load's deadlines move by the window
        self._held_at = None
        boot.release(now)

    def expect_reboot(self) -> None:
        if self._boot.phase is Phase.READY:
            self._run.console.new_stage()
            self._boot.expect_reboot(clock.now())
            if self._boot.load_task is not None:  # its runs die with this kernel: the next hello starts afresh
                self._boot.load_task.cancel()  # (waiting on them would call a slow reboot a stuck stress-ng)

    async def migrate(self, settings: FaultSettings, seq: int) -> str:
        return await migrate(self._run, settings, seq)

    async def ends_within(self, timeout: float) -> bool:
        """The boot ends (fails, or QEMU is gone) within ``timeout``: a fault that failed with it
        is part of that failure, not a problem of its own."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._boot.over.wait()
        return not self._boot.alive
