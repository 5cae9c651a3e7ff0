"""Turning a `Summary` into what people read: a rich report, JUnit XML for CI."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from soak.summary import Statuses, Summary
from soak.units import format_duration

_VERDICT_STYLE = {"clean": "bold green", "failures": "bold red", "infra-error": "bold yellow"}
_STATUS_STYLE = {"new": "bold red", "regressed": "bold magenta", "flaky": "yellow", "known": "dim",
                 "expected": "green"}


def output_console() -> Console:
    """The console for reports: as wide as a terminal, or 160 columns in a log file."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)
    return console


def _when(t: float) -> str:
    return time.strftime("%m-%d %H:%M:%S", time.localtime(t))


def render_summary(summary: Summary, console: Console, run_dir: Path | None = None, *,
                   statuses: Statuses | None = None, fail_on: str = "any") -> None:
    """Print the fleet, the soak totals and the failures grouped by signature (with their
    status in the history, when given)."""
    status = summary.finish_reason or ("running or interrupted" if summary.started else "no run recorded")
    console.print(
        f"[bold]soak run {escape(summary.run_id)}[/] · profile {escape(summary.profile)} · seed {summary.seed}"
        f" · {summary.accel} · {format_duration(summary.duration_s)} ({status})"
    )
    fleet = Table(title="Fleet", title_justify="left")
    loaded = any(vm.bogo_ops_per_s for vm in summary.vms.values())
    fleet_columns = ["VM", "vCPUs", "MiB", "boots", "uptime", "heartbeats", "failures", "state"]
    for column in fleet_columns + (["bogo-ops/s (mean per run)"] if loaded else []):
        fleet.add_column(column, justify="left" if column in ("VM", "state") else "right")
    for vm in summary.vms.values():
        row = [vm.name, str(vm.vcpus), str(vm.memory_mib), str(vm.boots), format_duration(vm.uptime_s),
               str(vm.heartbeats), f"[red]{vm.failures}[/]" if vm.failures else "0", vm.state]
        if loaded:
            row.append(" ".join(f"{name} {rate:.0f}" for name, rate in sorted(vm.bogo_ops_per_s.items())))
        fleet.add_row(*row)
    console.print(fleet)
    console.print(
        f"VM-hours soaked: [bold]{summary.vm_hours:.3f}[/] · boots {sum(v.boots for v in summary.vms.values())}"
        + (f" · faults injected {sum(summary.faults.values())}" if summary.faults else "")
    )
    if summary.failures:
        table = Table(title="Failures by signature", title_justify="left")
        columns = ("kind", "title", "count", "VMs", "first seen", "last seen", "evidence")
        for column in (("status", *columns) if statuses is not None else columns):
            table.add_column(column, overflow="fold")
        for group in summary.failures:
            count = str(group.count) + (f" ({group.expected} expected)" if group.expected else "")
            count += f" ({group.without_evidence} without evidence)" if group.without_evidence else ""
            shown = [] if statuses is None else [_styled(statuses.get((group.kind, group.title), "?"))]
            table.add_row(
                *shown,
                group.kind, escape(group.title) + (" [dim](corrupted)[/]" if group.corrupted else ""),
                count, escape(", ".join(group.vms)), _when(group.first_seen), _when(group.last_seen),
                escape(str(run_dir / group.evidence) if run_dir else group.evidence),
            )
        console.print(table)
    else:
        console.print("No failures.")
    if summary.expectations:
        table = Table(title="Expected vs detected", title_justify="left")
        for column in ("VM", "expected", "detected", "after", "deadline", ""):
            table.add_column(column)
        for e in summary.expectations:
            table.add_row(
                e.vm, e.kinds, escape(e.detected) or "[red]nothing[/]",
                "-" if e.after_s is None else f"{e.after_s:.1f}s", f"{e.within_s:.0f}s",
                "[green]ok[/]" if e.met else "[red]MISSED[/]",
            )
        console.print(table)
    for problem in summary.infra_problems[:10]:
        console.print(f"[yellow]soak problem[/] {problem['vm'] or ''} {problem['problem']}: {escape(problem['message'])}")
    if summary.infra_total > 10:
        console.print(f"[yellow]... and {summary.infra_total - 10} more soak problems[/]")
    for observation in summary.observations[:10]:
        console.print(f"[cyan]observation[/] {observation['topic']}: {escape(observation['message'])}")
    if summary.torn_tail or summary.skipped_records:
        console.print(f"[dim]journal: torn last line={summary.torn_tail}, unreadable records={summary.skipped_records}[/]")
    code = summary.exit_code_for(statuses, fail_on)
    gate = f"; --fail-on {fail_on}: no new or regressed failure" if code != summary.exit_code else ""
    console.print(f"Verdict: [{_VERDICT_STYLE[summary.verdict]}]{summary.verdict}[/] (exit code {code}{gate})")


def _styled(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, '')}]{status}[/]"


def junit_xml(summary: Summary) -> str:
    """One test case per VM; each failure signature seen on it is a <failure>."""
    suite = ET.Element(
        "testsuite",
        name=f"soak.{summary.profile}",
        tests=str(len(summary.vms)),
        failures=str(sum(1 for vm in summary.vms.values() if vm.failures > vm.expected_failures)),
        errors=str(summary.infra_total),
        time=f"{summary.duration_s:.1f}",
    )
    for vm in summary.vms.values():
        case = ET.SubElement(suite, "testcase", classname=f"soak.{summary.profile}", name=vm.name,
                             time=f"{vm.uptime_s:.1f}")
        for group in summary.failures:
            if vm.name in group.vms and group.count > group.expected:
                failure = ET.SubElement(case, "failure", type=group.kind, message=group.title)
                failure.text = f"{group.kind}: {group.title}\ncount: {group.count}\nevidence: {group.evidence}\n"
        problems = [p for p in summary.infra_problems if p["vm"] == vm.name]
        for problem in problems[:5]:
            error = ET.SubElement(case, "error", type=problem["problem"], message=problem["message"][:200])
            error.text = problem["message"]
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
