"""`soak report RUN_DIR`: one self-contained HTML file of the run, with plots."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from soak.cli.history import history_options, history_use
from soak.errors import SoakError
from soak.report import Statuses, load_for_report, write_report
from soak.runmodel import LoadedRun, run_facts


def history_statuses(loaded: LoadedRun, history_path: Path | None, no_history: bool, regressed_after: int,
                     flaky_window: int) -> Statuses | None:
    """The history status of each of the run's failure signatures (read-only, as ``soak summary``
    rates a run); None without a history, or with a warning when it cannot be read."""
    history = history_use(history_path, no_history, regressed_after, flaky_window)
    try:
        return history.rate(run_facts(loaded.model))
    except SoakError as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[yellow]warning:[/] no statuses: "
                                                                     f"{escape(str(exc))}")
        return None


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Where to write it (default RUN_DIR/report.html; evidence links stay relative).")
@history_options(opt_out=True)
def report(run_dir: Path, output: Path | None, history_path: Path | None, no_history: bool, regressed_after: int,
           flaky_window: int) -> None:
    """Write an HTML report of RUN_DIR (finished, running or crashed): timeline, plots, failures."""
    loaded = load_for_report(run_dir)
    statuses = history_statuses(loaded, history_path, no_history, regressed_after, flaky_window)
    path = write_report(run_dir, output, statuses=statuses, loaded=loaded)
    click.echo(str(path))
