"""`soak run PROFILE`: run a soak, record it in the history, print its summary; the exit code is
the verdict (``--fail-on new``: only new or regressed failures fail it)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
from prometheus_client import CollectorRegistry
from rich.markup import escape

from soak.cli.history import fail_on_option, history_options, history_use
from soak.errors import MetricsError
from soak.exporter import SelfCollector, default_grouping, push_final, serve_metrics
from soak.metrics import Metrics
from soak.profile import load_profile
from soak.render import output_console, render_summary
from soak.rundir import default_run_dir
from soak.session import RunOptions, Session, write_summary_files
from soak.shard import resolve_placement


@click.command()
@click.argument("profile_path", metavar="PROFILE", type=click.Path(path_type=Path))
@click.option("--duration", help="Override run.duration, e.g. 90s, 2h, 3d.")
@click.option("--seed", type=int, help="Override run.seed.")
@click.option("--accel", type=click.Choice(["auto", "tcg", "kvm"]), help="Override run.accel.")
@click.option("--run-dir", type=click.Path(path_type=Path), help="Where to write the run (default runs/NAME-TIME).")
@click.option("--runs-root", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
              envvar="SOAK_RUNS_ROOT", help="Where default run directories go (shards: ROOT/NAME-GROUP/...).")
@click.option("--vm", "only_vms", multiple=True, help="Run only this VM of the fleet (repeatable), e.g. to reproduce.")
@click.option("--metrics-listen", help="host:port for /metrics (port 0: any free port; '' disables).")
@click.option("--pushgateway", help="Push the final figures to this Pushgateway URL at the end.")
@click.option("--console-limit", help="Override run.console_limit: console bytes kept per VM, e.g. 64M.")
@click.option("--shard", metavar="I/N|auto",
              help="Run only shard I of N of the fleet (VM index mod N); auto: from a Slurm job array.")
@click.option("--attempt", type=int, envvar="SOAK_ATTEMPT",
              help="This shard's attempt (default: from Slurm or the Indexed Job, else 0). Env SOAK_ATTEMPT.")
@click.option("--run-group", envvar="SOAK_RUN_GROUP",
              help="Id the shards of one run share (default: the engine's job id). Env SOAK_RUN_GROUP.")
@click.option("--host", envvar="SOAK_HOST",
              help="This host's name in the journal and metrics (default: the Slurm node or hostname).")
@history_options(opt_out=True)
@fail_on_option
@click.option("-v", "--verbose", count=True, help="More logging on stderr.")
def run(profile_path: Path, duration: str | None, seed: int | None, accel: str | None, run_dir: Path | None,
        runs_root: Path, only_vms: tuple[str, ...], metrics_listen: str | None, pushgateway: str | None,
        console_limit: str | None, shard: str | None, attempt: int | None, run_group: str | None,
        host: str | None, history_path: Path | None, no_history: bool, regressed_after: int, flaky_window: int,
        fail_on: str, verbose: int) -> None:
    """Soak the fleet of PROFILE; exit 0 clean, 1 failures, 2 bad profile, 3 soak failed."""
    logging.basicConfig(level=logging.WARNING - 10 * verbose, format="%(asctime)s %(name)s: %(message)s")
    history = history_use(history_path, no_history, regressed_after, flaky_window, fail_on)
    overrides: dict[str, Any] = {"duration": duration, "seed": seed, "accel": accel,
                                 "metrics_listen": metrics_listen, "console_limit": console_limit}
    profile = load_profile(profile_path, overrides)
    placement = resolve_placement(profile, os.environ, shard=shard, attempt=attempt, run_group=run_group,
                                  host=host)
    console = output_console()
    if placement.sharded:
        default_dir = placement.run_dir(profile.run.name, runs_root)
    else:
        default_dir = default_run_dir(profile.run.name, runs_root)
    options = RunOptions(
        profile_path=profile_path,
        profile=profile,
        run_dir=run_dir or default_dir,
        only_vms=list(only_vms),
        placement=placement,
    )
    registry = CollectorRegistry()
    registry.register(SelfCollector(placement.metric_labels()))
    metrics = Metrics(registry, hang_timeout_s=profile.watch.hang_timeout, labels=placement.metric_labels(),
                      run_info_labels=placement.run_info_labels())
    options.observers.append(metrics)
    session = Session(options, console)
    if warning := history.preflight():
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    listen = profile.run.metrics_listen
    server = serve_metrics(registry, listen) if listen else None  # a busy port fails before any work
    try:
        if server is not None:
            console.print(f"metrics: {server.url}")
        session.prepare()
        console.print(f"run directory: {options.run_dir}")
        summary = asyncio.run(session.run())
    finally:
        if server is not None:
            server.close()
    if pushgateway:
        try:
            totals = metrics.totals()
            grouping = default_grouping(totals, shard=placement.shard.index if placement.sharded else None)
            push_final(totals, pushgateway, grouping=grouping, labels=metrics.labels,
                       run_info_labels=metrics.run_info_labels)
            console.print(f"pushed the final figures to {pushgateway}")
        except MetricsError as exc:
            console.print(f"[yellow]warning:[/] {exc}")
    rated = history.record_and_rate(options.run_dir)
    for warning in rated.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    if rated.statuses is not None:
        for problem in write_summary_files(summary, options.run_dir, rated.statuses, fail_on):
            console.print(f"[yellow]warning:[/] {escape(problem)}")  # the one without statuses stays
    elif fail_on == "new":
        console.print("[yellow]warning:[/] without the history every failure counts (--fail-on any)")
    render_summary(summary, console, options.run_dir, statuses=rated.statuses, fail_on=fail_on)
    sys.exit(summary.exit_code_for(rated.statuses, fail_on))
