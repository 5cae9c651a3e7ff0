"""`soak report RUN_DIR`: one self-contained HTML file of the run, with plots."""

from __future__ import annotations

from pathlib import Path

import click

from soak.report import Statuses, write_report


def history_statuses(run_dir: Path) -> Statuses | None:
    """The history status of each of the run's signatures, or None without a history.

    The hook for ``soak.history`` (issue 9, written alongside): until it lands, None.
    """
    return None


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Where to write it (default RUN_DIR/report.html; evidence links stay relative).")
def report(run_dir: Path, output: Path | None) -> None:
    """Write an HTML report of RUN_DIR (finished, running or crashed): timeline, plots, failures."""
    path = write_report(run_dir, output, statuses=history_statuses(run_dir))
    click.echo(str(path))
