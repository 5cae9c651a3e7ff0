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
    status in the history, when given). A merged summary (``summary.shards``) also shows
    each shard's attempts, the host of each VM and failure, and why the group is not whole;
    ``run_dir`` is then the group's root, which its evidence paths are relative to."""
    merged = summary.shards is not None
    if merged:
        _group_header(summary, console)
    else:
        status = summary.finish_reason or ("running or interrupted" if summary.started else "no run recorded")
        console.print(
            f"[bold]soak run {escape(summary.run_id)}[/] · profile {escape(summary.profile)} · seed {summary.seed}"
            f" · {summary.accel} · {format_duration(summary.duration_s)} ({status})"
        )
    console.print(_fleet(summary, merged))
    console.print(
        f"VM-hours soaked: [bold]{summary.vm_hours:.3f}[/] · boots {sum(v.boots for v in summary.vms.values())}"
        + (f" · faults injected {sum(summary.faults.values())}" if summary.faults else "")
        + (_superseded_totals(summary) if merged else "")
    )
    if times := summary.boot_times:
        console.print("Boot to ready: " + " · ".join(
            f"{key} {t['mean_s']:.1f} s (max {t['max_s']:.1f} s, {t['boots']} boots)" for key, t in times.items()),
            highlight=False)
    if summary.failures:
        console.print(_failures(summary, run_dir, statuses, merged))
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
    for line in summary.group_problems:
        console.print(f"[yellow]run group[/] {escape(line)}")
    code = summary.exit_code_for(statuses, fail_on)
    gate = f"; --fail-on {fail_on}: no new or regressed failure" if code != summary.exit_code else ""
    console.print(f"Verdict: [{_VERDICT_STYLE[summary.verdict]}]{summary.verdict}[/] (exit code {code}{gate})")


def _fleet(summary: Summary, merged: bool) -> Table:
    """One row per VM; merged: grouped by host, each with its host and shard."""
    fleet = Table(title="Fleet" + (" by host" if merged else ""), title_justify="left")
    loaded = any(vm.bogo_ops_per_s for vm in summary.vms.values())
    devices = any(vm.devices for vm in summary.vms.values())
    fleet_columns = ["VM", "vCPUs", "MiB", "boots", "uptime", "heartbeats", "failures", "state"]
    if merged:
        fleet_columns = ["host", "shard", *fleet_columns]
    extra = (["bogo-ops/s (mean per run)"] if loaded else []) + (["verified I/O MB/s r/w"] if devices else [])
    for column in fleet_columns + extra:
        fleet.add_column(column, justify="left" if column in ("host", "VM", "state") else "right")
    vms = sorted(summary.vms.values(), key=lambda vm: (vm.host, vm.shard)) if merged else list(summary.vms.values())
    for vm, after in zip(vms, [*vms[1:], None], strict=False):
        row = [vm.name, str(vm.vcpus), str(vm.memory_mib), str(vm.boots), format_duration(vm.uptime_s),
               str(vm.heartbeats), f"[red]{vm.failures}[/]" if vm.failures else "0", vm.state]
        if merged:
            row = [escape(vm.host) or "?", str(vm.shard), *row]
        if loaded:
            row.append(" ".join(f"{name} {rate:.0f}" for name, rate in sorted(vm.bogo_ops_per_s.items())))
        if devices:
            row.append(" ".join(f"{name} {d['read_mb_s']:.1f}/{d['write_mb_s']:.1f}"
                                + (f" ({d['drops']:.0f} dropped)" if d["drops"] else "")
                                for name, d in vm.devices.items() if name != "rng"))
        fleet.add_row(*row, end_section=merged and after is not None and after.host != vm.host)
    return fleet


def _failures(summary: Summary, run_dir: Path | None, statuses: Statuses | None, merged: bool) -> Table:
    table = Table(title="Failures by signature", title_justify="left")
    columns = ("kind", "title", "count", *(("hosts",) if merged else ()), "VMs", "first seen", "last seen",
               "evidence")
    for column in (("status", *columns) if statuses is not None else columns):
        table.add_column(column, overflow="fold")
    for group in summary.failures:
        count = str(group.count) + (f" ({group.expected} expected)" if group.expected else "")
        count += f" ({group.without_evidence} without evidence)" if group.without_evidence else ""
        spread = summary.spread.get((group.kind, group.title))
        count += f" ({spread.superseded} in superseded attempts)" if spread and spread.superseded else ""
        shown = [] if statuses is None else [_styled(statuses.get((group.kind, group.title), "?"))]
        hosts = [escape(", ".join(summary.hosts_of(group)))] if merged else []
        table.add_row(
            *shown,
            group.kind, escape(group.title) + (" [dim](corrupted)[/]" if group.corrupted else ""),
            count, *hosts, escape(", ".join(group.vms)), _when(group.first_seen), _when(group.last_seen),
            escape(str(run_dir / group.evidence) if run_dir else group.evidence),
        )
    return table


def _group_header(summary: Summary, console: Console) -> None:
    """The run group's line, then its shards and their attempts (superseded ones dimmed)."""
    shards = summary.shards or []
    hosts = {vm.host for vm in summary.vms.values() if vm.host}
    status = summary.finish_reason or "incomplete"
    console.print(
        f"[bold]soak run group {escape(summary.run_group)}[/] · profile {escape(summary.profile)}"
        f" · seed {summary.seed} · {summary.accel or '?'} · {len(shards)} shards on {len(hosts)} hosts"
        f" · {format_duration(summary.duration_s)} ({escape(status)})"
    )
    table = Table(title="Shards and attempts", title_justify="left")
    for column in ("shard", "attempt", "host", "run directory", "finished", "VMs", "VM-hours", "failures",
                   "verdict", ""):
        table.add_column(column, justify="right" if column in ("VMs", "VM-hours", "failures") else "left")
    for shard in shards:
        name = "?" if shard.shard is None else f"{shard.shard}/{shard.shards}"
        if not shard.attempts:
            table.add_row(name, "-", "-", "-", "-", "-", "-", "-", "-", "[bold yellow]missing[/]")
        for attempt in shard.attempts:
            finished = attempt.finish_reason or "[yellow]did not finish[/]"
            finished += " [yellow](torn)[/]" if attempt.torn_tail else ""
            row = [name, "?" if attempt.attempt is None else str(attempt.attempt), escape(attempt.host) or "?",
                   escape(attempt.run_dir), finished, str(attempt.vms), f"{attempt.vm_hours:.3f}",
                   f"[red]{attempt.unexpected_failures}[/]" if attempt.unexpected_failures else "0",
                   f"[{_VERDICT_STYLE[attempt.verdict]}]{attempt.verdict}[/]",
                   "[dim]superseded[/]" if attempt.superseded else "counted"]
            table.add_row(*row, style="dim" if attempt.superseded else None)
    console.print(table)


def _superseded_totals(summary: Summary) -> str:
    attempts = [a for shard in summary.shards or [] for a in shard.attempts if a.superseded]
    if not attempts:
        return ""
    return (f" · superseded attempts {len(attempts)}: {sum(a.vm_hours for a in attempts):.3f} VM-hours,"
            f" failures {sum(a.unexpected_failures for a in attempts)} (counted)")


def _styled(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, '')}]{status}[/]"


def junit_xml(summary: Summary) -> str:
    """One test case per VM; each failure signature seen on it is a <failure>. A merged
    summary's cases carry their VM's host and shard as properties (a failure of a superseded
    attempt lands on its VM's case), and a ``run-group`` case holds one <error> per reason
    the group is not whole."""
    merged = summary.shards is not None
    suite = ET.Element(
        "testsuite",
        name=f"soak.{summary.profile}",
        tests=str(len(summary.vms) + bool(summary.group_problems)),
        errors=str(summary.infra_total + len(summary.group_problems)),
        time=f"{summary.duration_s:.1f}",
    )
    failed = 0
    for vm in summary.vms.values():
        case = ET.SubElement(suite, "testcase", classname=f"soak.{summary.profile}", name=vm.name,
                             time=f"{vm.uptime_s:.1f}")
        if merged:
            properties = ET.SubElement(case, "properties")
            ET.SubElement(properties, "property", name="host", value=vm.host)
            ET.SubElement(properties, "property", name="shard", value=str(vm.shard))
        for group in summary.failures:
            if vm.name in group.vms and group.count > group.expected:
                failure = ET.SubElement(case, "failure", type=group.kind, message=group.title)
                failure.text = f"{group.kind}: {group.title}\ncount: {group.count}\nevidence: {group.evidence}\n"
                if merged:
                    failure.text += f"hosts: {', '.join(summary.hosts_of(group))}\n"
        failed += case.find("failure") is not None
        problems = [p for p in summary.infra_problems if p["vm"] == vm.name]
        for problem in problems[:5]:
            error = ET.SubElement(case, "error", type=problem["problem"], message=problem["message"][:200])
            error.text = problem["message"]
    suite.set("failures", str(failed))  # the test cases that hold a <failure>, as a CI reads them
    if summary.group_problems:
        case = ET.SubElement(suite, "testcase", classname=f"soak.{summary.profile}", name="run-group")
        for line in summary.group_problems:
            error = ET.SubElement(case, "error", type="run-group", message=line)
            error.text = line
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
