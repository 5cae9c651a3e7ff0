"""What a person watching `soak run` sees: a live fleet table, or plain lines in a log.

`LiveView` is an observer like the journal and the metrics: it folds events
into a small per-VM state and renders it once a second from an asyncio task
(never from rich's refresh thread, which would read the state while the loop
changes it). When stdout is not a terminal (CI, cron) it prints one line per
notable event instead: VM ready, failure, restart, retirement.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from soak import events as ev
from soak.units import format_duration


@dataclass
class _VmLine:
    vcpus: int
    memory_mib: int
    state: str = "waiting"
    boots: int = 0
    failures: int = 0
    last_beat: float | None = None
    last_failure: str = ""


_STATE_STYLE = {
    "running": "green",
    "booting": "yellow",
    "unresponsive": "red",
    "restarting": "yellow",
    "retired": "red",
    "stopped": "dim",
    "down": "red",
}


class LiveView:
    def __init__(self, console: Console, *, interactive: bool | None = None) -> None:
        self.console = console
        self.interactive = console.is_terminal if interactive is None else interactive
        self._vms: dict[str, _VmLine] = {}
        self._started = time.time()
        self._deadline = 0.0
        self._title = ""

    def observe(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            self._started = event.t
            self._deadline = event.t + event.duration_s
            self._title = f"soak {event.profile} · seed {event.seed} · {event.accel}"
            for info in event.vms:
                self._vms[info.name] = _VmLine(info.vcpus, info.memory_mib)
            return
        if not isinstance(event, ev.VmEvent) or event.vm not in self._vms:
            return
        line = self._vms[event.vm]
        message = self._fold(line, event)
        if message and not self.interactive:
            self.console.print(f"{time.strftime('%H:%M:%S')} {event.vm}: {message}", highlight=False)

    def _fold(self, line: _VmLine, event: ev.VmEvent) -> str | None:
        if isinstance(event, ev.Heartbeat):
            line.last_beat = event.t
            if line.state == "unresponsive":
                line.state = "running"
            return None
        if isinstance(event, ev.VmStarting):
            line.state, line.boots = "booting", line.boots + 1
            return None
        if isinstance(event, ev.VmReady):
            line.state, line.last_beat = "running", event.t
            return f"ready in {event.boot_s:.1f}s (boot {event.boot})"
        if isinstance(event, ev.HeartbeatLate):
            line.state = "unresponsive"
            return f"no heartbeat for {event.age_s:.1f}s, diagnosing"
        if isinstance(event, ev.Failure):
            line.failures += 1
            line.last_failure = f"{event.kind}: {event.title}"
            return f"FAILURE {event.kind}: {event.title}  [{event.evidence}]"
        if isinstance(event, ev.VmRestarting):
            line.state = "restarting"
            return f"restarting (boot {event.boot})"
        if isinstance(event, ev.VmRetired):
            line.state = "retired"
            return f"retired: {event.reason}"
        if isinstance(event, ev.VmStopped):
            line.state = "stopped" if event.reason in ("deadline", "signal") else "down"
        if isinstance(event, ev.FaultInjected):
            return f"fault {event.fault}#{event.seq} {event.detail}".rstrip()
        return None

    def render(self) -> Table:
        now = time.time()
        remaining = max(0.0, self._deadline - now)
        table = Table(
            title=f"{self._title} · {format_duration(now - self._started)} elapsed, "
            f"{format_duration(remaining)} left",
            title_justify="left",
        )
        for column in ("VM", "vCPUs", "MiB", "state", "boots", "heartbeat", "failures", "last failure"):
            table.add_column(column, justify="right" if column in ("vCPUs", "MiB", "boots", "failures") else "left")
        for name, line in self._vms.items():
            beat = f"{now - line.last_beat:.1f}s ago" if line.last_beat else "-"
            style = _STATE_STYLE.get(line.state, "")
            table.add_row(
                name, str(line.vcpus), str(line.memory_mib), f"[{style}]{line.state}[/]" if style else line.state,
                str(line.boots), beat, str(line.failures) if line.failures else "-",
                escape(line.last_failure[:60]),
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
