"""`soak report RUN_DIR`: one self-contained HTML file of the run, with plots."""

from __future__ import annotations

from pathlib import Path

import click

from soak.report import Statuses, load_for_report, write_report
from soak.runmodel import LoadedRun


def history_statuses(loaded: LoadedRun) -> Statuses | None:
    """The history status of each of the run's failure signatures; None: no history consulted.

    The hook for ``soak.history`` (issue 9, built alongside): it returns None until the
    history is wired here, as ``soak summary`` rates a run (read-only, ``run_facts``).
    """
    return None


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Where to write it (default RUN_DIR/report.html; evidence links stay relative).")
def report(run_dir: Path, output: Path | None) -> None:
    """Write an HTML report of RUN_DIR (finished, running or crashed): timeline, plots, failures."""
    loaded = load_for_report(run_dir)
    path = write_report(run_dir, output, statuses=history_statuses(loaded), loaded=loaded)
    click.echo(str(path))
