"""Driving one VM's fault timeline, and remembering which faults came before a failure.

The driver runs beside the VM's boots for the whole run. When a fault is due
it waits for a ready boot, tells the boot what to expect (a window without
heartbeats, a reboot), applies the fault, and journals it. Failures ask the
driver which faults preceded them ("hang after pause#3") and whether a fault
declared them as its intended outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from soak import clock
from soak import events as ev
from soak.faults.catalog import FAIL, SURVIVE, FaultType, fault_type
from soak.faults.inject import FaultError, FaultTarget, inject
from soak.faults.schedule import fault_timeline
from soak.faults.settings import FaultSettings
from soak.kinds import Kind

log = logging.getLogger(__name__)

MAX_REMEMBERED = 64
"""Faults remembered at most (and only those that ended within ``memory_s``)."""
OUTLIVED_GRACE_S = 3.0
"""After a fault failed to apply, how long its VM's own failure (QEMU died under it) may take to show."""


class FaultableBoot(FaultTarget, Protocol):
    """A ready boot, as the driver sees it."""

    @property
    def alive(self) -> bool:
        """Still running and watched (not failed, not stopping)."""

    def suspend_watch(self) -> None:
        """No hang detection until `resume_watch` (the guest cannot heartbeat meanwhile)."""

    def resume_watch(self) -> None:
        """Hang detection again, timed from now."""

    def expect_reboot(self) -> None:
        """The next HELLO with a new boot id is the fault's outcome; hang detection waits for it."""

    async def ends_within(self, timeout: float) -> bool:
        """True when the boot fails or its QEMU goes within ``timeout`` (it may already have)."""


class FaultableVm(Protocol):
    async def wait_ready(self) -> FaultableBoot | None:
        """The current boot once it is ready; None when the run is stopping."""


@dataclass(frozen=True, slots=True)
class _Remembered:
    at: float
    label: str
    fault: FaultType
    expect: str
    end: float


def describe(settings: FaultSettings) -> str:
    """What this fault does, for the journal and the live view."""
    if settings.type == "migrate":
        extra = f" to a destination with {settings.mismatch} mismatched" if settings.mismatch else ""
        return f"{settings.mode} migration to a new QEMU process{extra}"
    return fault_type(settings.type).summary


class FaultDriver:
    def __init__(self, vm: str, faults: Sequence[FaultSettings], *, index_in_group: int, seed: int,
                 emit: Callable[[ev.Event], None], memory_s: float) -> None:
        self.vm = vm
        self.faults = list(faults)
        self.index_in_group = index_in_group
        self.seed = seed
        self.emit = emit
        self.memory_s = memory_s
        """How far back a failure looks for the faults that preceded it."""
        self._seq = 0
        self._recent: deque[_Remembered] = deque(maxlen=MAX_REMEMBERED)

    async def run(self, vm: FaultableVm, first_ready: asyncio.Event) -> None:
        """Apply the timeline until cancelled (at the end of the run)."""
        if not self.faults:
            return
        await first_ready.wait()
        start = clock.now()
        timeline = fault_timeline(self.faults, seed=self.seed, vm=self.vm,
                                  vm_index_in_group=self.index_in_group)
        for planned in timeline:
            await asyncio.sleep(max(0.0, start + planned.at_s - clock.now()))
            boot = await vm.wait_ready()
            if boot is None:
                return
            await self._apply(planned.settings, boot)

    async def _apply(self, settings: FaultSettings, boot: FaultableBoot) -> None:
        self._seq += 1
        kind = fault_type(settings.type)
        expect = settings.outcome_expected
        label = f"{settings.type}#{self._seq}"
        now = clock.now()
        windowed = kind.windowed or kind.needs in ("hotplug", "snapshot")
        self._forget_old(now)
        self._recent.append(_Remembered(now, label, kind, expect, now + (settings.duration if windowed else 0)))
        self.emit(ev.FaultInjected(vm=self.vm, fault=settings.type, seq=self._seq,
                                   duration_s=settings.duration if windowed else 0.0, expect=expect,
                                   detail=describe(settings)))
        suspended = kind.may_pause or (not kind.guest and not kind.guest_runs and expect == SURVIVE)
        if kind.reboots:
            boot.expect_reboot()
        elif suspended:
            boot.suspend_watch()
        try:
            await inject(settings, boot, self._seq)
        except (FaultError, OSError) as exc:
            # a fault that failed because its VM did (a crash, a hang being diagnosed) is part of that failure
            if not await boot.ends_within(OUTLIVED_GRACE_S):
                self.emit(ev.InfraProblem(vm=self.vm, problem="fault", message=f"{label}: {exc}"))
        finally:
            if suspended:
                boot.resume_watch()

    def _forget_old(self, now: float) -> None:
        """Faults that ended longer than ``memory_s`` ago can explain no later failure."""
        while self._recent and now - self._recent[0].end > self.memory_s:
            self._recent.popleft()

    @property
    def remembered(self) -> int:
        return len(self._recent)

    def preceding(self, now: float) -> list[str]:
        """Labels of the faults applied shortly before ``now`` (oldest first)."""
        return [r.label for r in self._recent if now - r.end <= self.memory_s]

    def intended(self, kind: Kind, now: float) -> bool:
        """A recent fault declared this failure kind as its intended outcome."""
        return any(
            r.expect == FAIL and kind in r.fault.outcome and now - r.end <= self.memory_s for r in self._recent
        )
