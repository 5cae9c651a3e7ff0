"""`soak summary DIR...`: the failures of a run, or of a run group merged, from journals alone,
rated against the history."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from soak.cli.history import fail_on_option, history_options, history_use
from soak.errors import SoakError, UsageError
from soak.history.hooks import HistoryUse
from soak.history.status import Key, Status
from soak.journal import JOURNAL_NAME
from soak.merged import group_root, load_group, summary_of_group
from soak.render import junit_xml, output_console, render_summary
from soak.rundir import find_journals
from soak.runmodel import RunFacts, load_run, run_facts
from soak.summary import summary_of_run


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="DIR...")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--junit", type=click.Path(path_type=Path), help="Also write JUnit XML (one test case per VM).")
@history_options(opt_out=True)
@fail_on_option
def summary(run_dirs: tuple[Path, ...], as_json: bool, junit: Path | None, history_path: Path | None,
            no_history: bool, regressed_after: int, flaky_window: int, fail_on: str) -> None:
    """Summarize a run (finished, running or crashed), or merge a run group: several run
    directories, or a folder holding them (the shards of one run and their attempts).
    Exit code = verdict (0, 1, 3; 3 also when a shard is missing, unfinished, torn or of
    another profile, seed or run group), or with --fail-on new 1 only for a new or
    regressed failure."""
    history = history_use(history_path, no_history, regressed_after, flaky_window, fail_on)
    first = run_dirs[0]
    if len(run_dirs) == 1 and (first.is_file() or (first / JOURNAL_NAME).is_file()):
        journal = first / JOURNAL_NAME if first.is_dir() else first
        try:
            loaded = load_run(journal)
        except FileNotFoundError:
            raise UsageError(f"{first}: no {JOURNAL_NAME} here: is it a soak run directory?") from None
        result, facts, exclude, where = summary_of_run(loaded), run_facts(loaded.model), frozenset[str](), \
            journal.parent
    else:
        group = load_group(find_journals(run_dirs))
        where = first if len(run_dirs) == 1 else group_root(group)
        result, facts = summary_of_group(group, where), group.run_facts()
        exclude = frozenset(a.model.run.run_id for a in group.attempts if a.model.run is not None)
    statuses = _rate(history, facts, exclude, fail_on)
    if junit is not None:
        junit.write_text(junit_xml(result), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(result.to_json(statuses, fail_on), indent=2))
    else:
        render_summary(result, output_console(), where, statuses=statuses, fail_on=fail_on)
    sys.exit(result.exit_code_for(statuses, fail_on))


def _rate(history: HistoryUse, facts: RunFacts, exclude: frozenset[str], fail_on: str) -> dict[Key, Status] | None:
    """The statuses, or a warning and none when the history cannot be used (unless needed)."""
    try:
        return history.rate(facts, exclude=exclude)
    except SoakError as exc:
        if fail_on == "new":
            raise
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[yellow]warning:[/] no statuses: {escape(str(exc))}")
        return None
