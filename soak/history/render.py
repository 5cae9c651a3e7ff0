"""The history as people read it: signatures across runs, and the runs."""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from soak.history.listing import RunHistory, SignatureHistory
from soak.history.status import STATUSES, Status
from soak.history.store import RunRow

STATUS_STYLE: dict[str, str] = {
    "new": "bold red", "regressed": "bold magenta", "flaky": "yellow", "known": "dim", "expected": "green",
}


def styled(status: Status | str) -> str:
    return f"[{STATUS_STYLE.get(status, '')}]{status}[/]"


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def _shape(s: SignatureHistory) -> str:
    parts = [f"vCPUs {','.join(map(str, s.vcpus))}" if s.vcpus else "",
             f"MiB {','.join(map(str, s.memory_mib))}" if s.memory_mib else "",
             f"kernel {', '.join(s.kernels)}" if s.kernels else "",
             f"QEMU {', '.join(s.qemu_versions)}" if s.qemu_versions else "",
             ", ".join(s.accels)]
    return escape(" · ".join(p for p in parts if p))


def render_signatures(runs: list[RunRow], signatures: list[SignatureHistory], console: Console, where: str) -> None:
    """One row per signature: status, runs seen of runs that could have, shapes, rate, evidence."""
    profiles = sorted({r.profile for r in runs})
    console.print(f"[bold]soak history[/] {escape(where)} · {len(runs)} runs"
                  + (f" of {escape(', '.join(profiles))}" if profiles else "")
                  + (f" · {_when(runs[0].started)} to {_when(runs[-1].started)}" if runs else ""))
    if not signatures:
        console.print("No failures in these runs.")
        return
    table = Table(title="Failure signatures across runs", title_justify="left")
    for column in ("status", "kind", "title", "runs", "first seen", "last seen", "VMs and shapes", "per VM-h",
                   "newest evidence"):
        table.add_column(column, overflow="fold", justify="right" if column in ("runs", "per VM-h") else "left")
    for s in signatures:
        rate = s.rate_per_vm_hour
        vms = escape(", ".join(s.vms[:6]) + (f" +{len(s.vms) - 6}" if len(s.vms) > 6 else ""))
        table.add_row(styled(s.status), s.kind, escape(s.title) + (" [dim](corrupted)[/]" if s.corrupted else ""),
                      f"{s.runs_seen}/{s.runs_total}", _when(s.first_seen), _when(s.last_seen),
                      f"{vms}\n[dim]{_shape(s)}[/]", "-" if rate is None else f"{rate:.3g}",
                      escape(s.last_evidence))
    console.print(table)
    counts = {status: sum(s.status == status for s in signatures) for status in STATUSES}
    console.print(" · ".join(f"{styled(k)} {n}" for k, n in counts.items() if n))


def render_runs(runs: list[RunHistory], console: Console, where: str) -> None:
    """One row per run: when, profile, verdict, VM-hours and the statuses of what it saw."""
    console.print(f"[bold]soak history runs[/] {escape(where)} · {len(runs)} runs")
    if not runs:
        return
    table = Table(title_justify="left")
    for column in ("started", "run", "profile", "verdict", "VM-hours", "accel", "QEMU", "signatures", "run directory"):
        table.add_column(column, overflow="fold", justify="right" if column == "VM-hours" else "left")
    for entry in runs:
        r = entry.run
        seen = ", ".join(f"{styled(k)} {entry.statuses[k]}" for k in STATUSES if entry.statuses.get(k)) or "-"
        table.add_row(_when(r.started), r.run_id, escape(r.profile),
                      r.verdict + ("" if r.finish_reason else " [dim](unfinished)[/]"), f"{r.vm_hours:.2f}",
                      r.accel, r.qemu_version or "?", seen, escape(r.run_dir))
    console.print(table)
