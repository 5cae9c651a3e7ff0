"""`soak classify FILE...`: the kernel failures in saved console logs.

A triage tool (what crashed, under which signature) and the way the classifier
is tested. Exit 0 when no file holds a crash, 1 when some file does, 2 when a
file cannot be read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from soak.classify import Report
from soak.classify import classify as classify_log
from soak.errors import UsageError


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _table(path: Path, reports: list[Report]) -> Table:
    table = Table(title=Text(str(path)), title_justify="left", show_lines=False)
    table.add_column("kind", no_wrap=True)
    table.add_column("title")
    table.add_column("corrupted", no_wrap=True)
    table.add_column("panicked", no_wrap=True)
    for report in reports:
        table.add_row(
            Text(report.kind.value),
            Text(report.title),
            Text("yes" if report.corrupted else ""),
            Text("yes" if report.panicked else ""),
        )
    return table


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file per line.")
def classify(files: tuple[Path, ...], as_json: bool) -> None:
    """Find kernel crashes in console logs and name them by their signature title."""
    for path in files:
        if not path.is_file():
            raise UsageError(f"cannot read {path}: not a file")
    console = Console(highlight=False)
    crashed = False
    for path in files:
        reports = classify_log(_read(path))
        crashed = crashed or bool(reports)
        if as_json:
            entry = {
                "file": str(path),
                "reports": [
                    {"kind": r.kind.value, "title": r.title, "corrupted": r.corrupted}
                    for r in reports
                ],
            }
            click.echo(json.dumps(entry))
        elif reports:
            console.print(_table(path, reports))
        else:
            console.print(Text(f"{path}: no crash"))
    if crashed:
        sys.exit(1)
