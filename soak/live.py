"""What a person watching `soak run` sees: a live fleet table, or plain lines in a log.

`LiveView` renders the run's `soak.runmodel.RunModel` (fed by the recorder
before this view, see `Session.run`) once a second from an asyncio task, never
from rich's refresh thread, which would read the model while the loop changes
it. It keeps no state of its own. When stdout is not a terminal (CI, cron) it
prints one line per notable event instead: VM ready, late heartbeat, failure,
fault, restart, retirement.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from soak import events as ev
from soak.runmodel import RunModel
from soak.units import format_duration

_STATE_STYLE = {
    "running": "green",
    "booting": "yellow",
    "unresponsive": "red",
    "restarting": "yellow",
    "retired": "red",
    "stopped": "dim",
    "down": "red",
}

_NOTABLE: dict[type[ev.Event], Callable[[Any], str]] = {
    ev.VmReady: lambda e: f"ready in {e.boot_s:.1f}s (boot {e.boot})",
    ev.HeartbeatLate: lambda e: f"no heartbeat for {e.age_s:.1f}s, diagnosing",
    ev.Failure: lambda e: f"FAILURE {e.kind}: {e.title}  [{e.evidence}]",
    ev.VmRestarting: lambda e: f"restarting (boot {e.boot})",
    ev.VmRetired: lambda e: f"retired: {e.reason}",
    ev.FaultInjected: lambda e: f"fault {e.fault}#{e.seq} {e.detail}".rstrip(),
}
"""One log line per notable VM event, for a console that is not a terminal."""


class LiveView:
    """Shows ``model``; `observe` only prints the notable events of a non-interactive run."""

    def __init__(self, console: Console, model: RunModel, *, interactive: bool | None = None) -> None:
        self.console = console
        self.model = model
        self.interactive = console.is_terminal if interactive is None else interactive

    def observe(self, event: ev.Event) -> None:
        describe = _NOTABLE.get(type(event))
        if describe is None or self.interactive or not isinstance(event, ev.VmEvent):
            return
        line = f"{time.strftime('%H:%M:%S')} {event.vm}: {describe(event)}"
        self.console.print(line, highlight=False, markup=False)  # titles are console text, not markup

    def render(self, now: float | None = None) -> Table:
        model = self.model
        now = time.time() if now is None else now
        run = model.run
        title = f"soak {run.profile} · seed {run.seed} · {run.accel}" if run else "soak"
        remaining = model.deadline() - now
        left = f"{format_duration(max(0.0, remaining))} left" if math.isfinite(remaining) else "no planned end"
        table = Table(title=f"{title} · {format_duration(model.elapsed(now))} elapsed, {left}", title_justify="left")
        for column in ("VM", "vCPUs", "MiB", "state", "boots", "heartbeat", "failures", "last failure"):
            table.add_column(column, justify="right" if column in ("vCPUs", "MiB", "boots", "failures") else "left")
        for vm in model.vms.values():
            beat = f"{now - vm.last_beat:.1f}s ago" if vm.last_beat is not None else "-"
            state = vm.shown_state
            style = _STATE_STYLE.get(state, "")
            failures = vm.failures + vm.expected_failures
            last = vm.last_failure
            table.add_row(
                vm.name, str(vm.info.vcpus) if vm.info else "?", str(vm.info.memory_mib) if vm.info else "?",
                f"[{style}]{state}[/]" if style else state, str(vm.boots), beat, str(failures) if failures else "-",
                escape(f"{last.kind}: {last.title}"[:60]) if last else "",
            )
        return table

    async def show(self, stop: asyncio.Event) -> None:
        """Redraw every second until ``stop`` (interactive terminals only)."""
        if not self.interactive:
            await stop.wait()
            return
        with Live(self.render(), console=self.console, auto_refresh=False, transient=False) as live:
            while not stop.is_set():
                live.update(self.render(), refresh=True)
                try:
                    async with asyncio.timeout(1.0):
                        await stop.wait()
                except TimeoutError:
                    pass
            live.update(self.render(), refresh=True)
