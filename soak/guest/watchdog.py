"""The watchdog of one boot: boot timeout, then the heartbeat deadline; no polling.

It sleeps until the next deadline. Heartbeats only move the deadline later, so
it wakes at most once per hang timeout; a phase change (ready, a fault window
opening or closing, a failure) wakes it through ``watch_changed``. A missed
deadline is diagnosed before anything is killed (`soak.guest.hang`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import TYPE_CHECKING

from soak import clock
from soak import events as ev
from soak.detect.boot import boot_timeout_verdict
from soak.detect.hang import hang_verdict
from soak.guest.boot import Phase
from soak.guest.hang import diagnose_hang
from soak.kinds import Kind

if TYPE_CHECKING:
    from soak.guest.bootrun import BootRun

IDLE_WAKE_S = 3600.0
"""While nothing is due (a fault window), wake this rarely in case of a missed ``watch_changed``."""


class Watchdog:
    def __init__(self, run: BootRun) -> None:
        self.run_ = run

    def _deadline(self) -> float | None:
        """When the boot's current phase is overdue; None when nothing is watched any more."""
        run, boot = self.run_, self.run_.boot
        watch = run.watch
        if boot.phase is Phase.STARTING:
            return boot.started + watch.boot_timeout
        if boot.phase is Phase.REBOOTING:
            return boot.phase_since + watch.boot_timeout
        if boot.phase is Phase.HELD:
            return clock.now() + IDLE_WAKE_S
        if boot.phase is Phase.READY and run.machine.has_agent:
            assert boot.last_heartbeat is not None
            return boot.last_heartbeat + watch.hang_timeout
        return None  # failed, stopping, ended, or no heartbeats to watch (console, QMP, process still are)

    async def run(self) -> None:
        boot = self.run_.boot
        while not boot.over.is_set():
            deadline = self._deadline()
            if deadline is None:
                return
            delay = deadline - clock.now()
            if delay > 0:
                boot.watch_changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await boot.watch_changed.wait()
                continue
            if boot.phase in (Phase.STARTING, Phase.REBOOTING):
                console = self.run_.console
                verdict = boot_timeout_verdict(console.stage_lines, bytes_seen=console.stage_bytes,
                                               agent_expected=self.run_.machine.has_agent)
                await self.run_.fail(verdict, "boot", diagnose=True)
                return
            if not await self._diagnose_hang():
                return

    async def _diagnose_hang(self) -> bool:
        """Find out why heartbeats stopped; True to keep watching (they resumed, or the host is to blame)."""
        run, boot = self.run_, self.run_.boot
        assert boot.last_heartbeat is not None
        seen_at = boot.last_heartbeat
        age = clock.now() - seen_at
        run.emit(ev.HeartbeatLate(vm=run.vm.spec.name, age_s=round(age, 3)))
        # the watchdog should have woken right at the deadline: any delay is soak's own starvation
        diagnosis = await diagnose_hang(run.machine, loop_lag_s=age - run.watch.hang_timeout)
        if boot.last_heartbeat != seen_at or boot.phase is not Phase.READY:
            return boot.watching  # it answered after all (a slow guest is not a hung one), or a window opened
        facts = diagnosis.facts
        if facts.host_starved and run.explained_by_guest(Kind.GUEST_HANG):
            facts = dataclasses.replace(facts, host_starved=False)
        verdict = hang_verdict(facts)
        if verdict is None:
            run.emit(ev.InfraProblem(vm=run.vm.spec.name, problem="host-starved",
                                     message=f"no heartbeat for {age:.1f}s while the host was starved "
                                             f"({diagnosis.starved_note})"))
            boot.last_heartbeat = clock.now()
            return True
        await run.fail(verdict, "heartbeat", diagnose=diagnosis.facts.qmp_answered,
                       extra={"threads.txt": diagnosis.threads}, first_seen=seen_at + run.watch.hang_timeout)
        return False
