"""`soak summary RUN_DIR`: the failures of a run, from its journal alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from soak.errors import UsageError
from soak.journal import JOURNAL_NAME
from soak.render import junit_xml, output_console, render_summary
from soak.summary import load_summary


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--junit", type=click.Path(path_type=Path), help="Also write JUnit XML (one test case per VM).")
def summary(run_dir: Path, as_json: bool, junit: Path | None) -> None:
    """Summarize RUN_DIR (finished, running or crashed); exit code = verdict (0, 1, 3)."""
    journal = run_dir / JOURNAL_NAME if run_dir.is_dir() else run_dir
    try:
        result = load_summary(journal)
    except FileNotFoundError:
        raise UsageError(f"{run_dir}: no {JOURNAL_NAME} here: is it a soak run directory?") from None
    if junit is not None:
        junit.write_text(junit_xml(result), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        render_summary(result, output_console(), journal.parent)
    sys.exit(result.exit_code)
