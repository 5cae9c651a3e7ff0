"""`soak summary RUN_DIR`: the failures of a run, from its journal alone, rated against the history."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from soak.cli.history import fail_on_option, history_options, history_use
from soak.errors import SoakError, UsageError
from soak.journal import JOURNAL_NAME
from soak.render import junit_xml, output_console, render_summary
from soak.runmodel import load_run, run_facts
from soak.summary import summary_of_run


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--junit", type=click.Path(path_type=Path), help="Also write JUnit XML (one test case per VM).")
@history_options(opt_out=True)
@fail_on_option
def summary(run_dir: Path, as_json: bool, junit: Path | None, history_path: Path | None, no_history: bool,
            regressed_after: int, flaky_window: int, fail_on: str) -> None:
    """Summarize RUN_DIR (finished, running or crashed); exit code = verdict (0, 1, 3), or with
    --fail-on new 1 only for a new or regressed failure."""
    history = history_use(history_path, no_history, regressed_after, flaky_window, fail_on)
    journal = run_dir / JOURNAL_NAME if run_dir.is_dir() else run_dir
    try:
        loaded = load_run(journal)
    except FileNotFoundError:
        raise UsageError(f"{run_dir}: no {JOURNAL_NAME} here: is it a soak run directory?") from None
    result = summary_of_run(loaded)
    try:
        statuses = history.rate(run_facts(loaded.model))
    except SoakError as exc:
        if fail_on == "new":
            raise
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[yellow]warning:[/] no statuses: {escape(str(exc))}")
        statuses = None
    if junit is not None:
        junit.write_text(junit_xml(result), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(result.to_json(statuses, fail_on), indent=2))
    else:
        render_summary(result, output_console(), journal.parent, statuses=statuses, fail_on=fail_on)
    sys.exit(result.exit_code_for(statuses, fail_on))
