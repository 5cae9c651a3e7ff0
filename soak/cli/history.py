"""`soak history`: failure signatures across recorded runs; import, runs, prune, prune-runs.

Also the history options `soak run` and `soak summary` share (`history_options`,
`fail_on_option`, `history_use`).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from soak.errors import UsageError
from soak.history import (
    Filters,
    HistoryLocation,
    HistoryStore,
    Policy,
    Retention,
    import_runs,
    list_runs,
    list_signatures,
    retention,
)
from soak.history.hooks import HistoryUse
from soak.history.render import render_runs, render_signatures
from soak.history.status import REGRESSED_AFTER, WINDOW
from soak.kinds import Kind
from soak.render import output_console
from soak.summary import FAIL_ON
from soak.units import parse_duration

F = TypeVar("F", bound=Callable[..., Any])


def history_options(*, opt_out: bool) -> Callable[[F], F]:
    """--history (and $SOAK_HISTORY), --no-history, --regressed-after, --flaky-window."""
    def decorate(f: F) -> F:
        f = click.option("--flaky-window", type=int, default=WINDOW, show_default=True,
                         help="Comparable runs looked at to call a signature flaky.")(f)
        f = click.option("--regressed-after", type=int, default=REGRESSED_AFTER, show_default=True,
                         help="Runs in a row without a signature before its return counts as regressed.")(f)
        if opt_out:
            f = click.option("--no-history", is_flag=True, help="Neither read nor record the run history.")(f)
        return click.option("--history", "history_path", type=click.Path(path_type=Path), envvar="SOAK_HISTORY",
                            help="The history database (or $SOAK_HISTORY; default $XDG_DATA_HOME/soak/history.db).")(f)
    return decorate


fail_on_option = click.option(
    "--fail-on", type=click.Choice(FAIL_ON), default="any", show_default=True,
    help="Exit 1 on any unexpected failure, or only on a new or regressed one (known and flaky pass).")


def history_use(history_path: Path | None, no_history: bool, regressed_after: int, flaky_window: int,
                fail_on: str = "any") -> HistoryUse:
    """The history a command uses, its options checked.

    :raise UsageError: bad numbers, or ``--fail-on new`` without a history.
    """
    if no_history and fail_on == "new":
        raise UsageError("--fail-on new needs the history to tell new failures from known ones: drop --no-history")
    try:
        policy = Policy(regressed_after=regressed_after, window=flaky_window)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return HistoryUse(None if no_history else HistoryLocation.resolve(history_path), policy)


def parse_since(text: str | None, now: float) -> float | None:
    """``7d``, ``12h`` (a window back from now) or a date ``2026-11-25``: a Unix time.

    :raise UsageError: neither.
    """
    if text is None:
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return time.mktime(time.strptime(text, "%Y-%m-%d"))
        except ValueError:
            raise UsageError(f"--since {text}: not a date") from None
    try:
        return now - parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--since: {exc} (or a date such as 2026-11-25)") from None


def _open(ctx: click.Context, history_path: Path | None, *, create: bool) -> tuple[HistoryLocation, HistoryStore | None]:
    """The subcommand's --history, else the group's (which $SOAK_HISTORY fills)."""
    location = HistoryLocation.resolve(history_path or (ctx.obj or {}).get("history_path"))
    return location, HistoryStore.open(location, create=create)


def _policy(regressed_after: int, flaky_window: int) -> Policy:
    return history_use(None, True, regressed_after, flaky_window).policy


@click.group(invoke_without_command=True)
@history_options(opt_out=False)
@click.option("--profile", help="Only runs of this profile.")
@click.option("--since", help="Only runs started in this window (7d, 12h) or since this date (2026-11-25).")
@click.option("--kind", help="Only failures of this kind, e.g. kernel-warning.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def history(ctx: click.Context, history_path: Path | None, regressed_after: int, flaky_window: int,
            profile: str | None, since: str | None, kind: str | None, as_json: bool) -> None:
    """Failure signatures across the recorded runs: status, runs seen of runs that could have seen
    them, shapes hit, rate per VM-hour, newest evidence."""
    ctx.obj = {"history_path": history_path, "policy": (regressed_after, flaky_window)}
    if ctx.invoked_subcommand is not None:
        return
    policy = _policy(regressed_after, flaky_window)
    if kind is not None and kind not in {k.value for k in Kind}:
        raise UsageError(f"--kind {kind}: no such failure kind (kinds: {', '.join(k.value for k in Kind)})")
    filters = Filters(profile, parse_since(since, time.time()), kind)
    location, store = _open(ctx, history_path, create=False)
    runs, signatures = ([], []) if store is None else list_signatures(store, filters, policy)
    if store is not None:
        store.close()
    if as_json:
        click.echo(json.dumps({
            "history": str(location.path), "exists": store is not None,
            "filters": {"profile": profile, "since": filters.since, "kind": kind},
            "policy": {"regressed_after": policy.regressed_after, "flaky_window": policy.window},
            "runs": len(runs), "signatures": [s.to_json() for s in signatures]}, indent=2))
    elif store is None:
        click.echo(f"no history at {location.path} yet: soak run records every run, "
                   "soak history import RUN_DIR adds old ones")
    else:
        render_signatures(runs, signatures, output_console(), str(location.path))


@history.command("import")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--history", "history_path", type=click.Path(path_type=Path),
              help="The history database (default: soak history's --history, $SOAK_HISTORY, the XDG path).")
@click.pass_context
def import_(ctx: click.Context, run_dirs: tuple[Path, ...], history_path: Path | None) -> None:
    """Record old or copied runs (idempotent: a run already recorded is left as it is); exit 2 if
    some RUN_DIR is not a run."""
    _, store = _open(ctx, history_path, create=True)
    assert store is not None
    with store:
        results = import_runs(store, run_dirs)
    for r in results:
        click.echo(f"{r.outcome:9} {r.run_id}  {r.path}" if r.outcome else f"skipped   {r.problem}")
    sys.exit(2 if any(r.problem for r in results) else 0)


@history.command("runs")
@click.option("--history", "history_path", type=click.Path(path_type=Path),
              help="The history database (default: soak history's --history, $SOAK_HISTORY, the XDG path).")
@click.option("--profile", help="Only runs of this profile.")
@click.option("--since", help="Only runs started in this window (7d) or since this date.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def runs(ctx: click.Context, history_path: Path | None, profile: str | None, since: str | None,
         as_json: bool) -> None:
    """The recorded runs, oldest first, with the statuses of the failures each saw."""
    policy = _policy(*ctx.obj["policy"])
    location, store = _open(ctx, history_path, create=False)
    listed = []
    if store is not None:
        with store:
            listed = list_runs(store, Filters(profile, parse_since(since, time.time())), policy)
    if as_json:
        click.echo(json.dumps({"history": str(location.path), "runs": [r.to_json() for r in listed]}, indent=2))
    else:
        render_runs(listed, output_console(), str(location.path))


@history.command("prune")
@click.option("--history", "history_path", type=click.Path(path_type=Path),
              help="The history database (default: soak history's --history, $SOAK_HISTORY, the XDG path).")
@click.option("--keep", required=True, help="Forget runs that started longer ago than this, e.g. 365d.")
@click.pass_context
def prune(ctx: click.Context, history_path: Path | None, keep: str) -> None:
    """Forget old runs (and signatures no remaining run saw); run directories are not touched."""
    try:
        cutoff = time.time() - parse_duration(keep)
    except ValueError as exc:
        raise UsageError(f"--keep: {exc}") from None
    location, store = _open(ctx, history_path, create=False)
    forgotten = 0
    if store is not None:
        with store:
            forgotten = store.forget_before(cutoff)
    click.echo(f"forgot {forgotten} runs started before {time.strftime('%Y-%m-%d %H:%M', time.localtime(cutoff))}"
               f" ({location.path})")


@history.command("prune-runs")
@click.argument("root", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--keep-clean", default="14d", show_default=True, help="Keep clean runs this long.")
@click.option("--keep-failed", default="90d", show_default=True,
              help="Keep runs with failures, soak errors or no summary this long.")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def prune_runs(root: Path, keep_clean: str, keep_failed: str, dry_run: bool, as_json: bool) -> None:
    """Delete old run directories under ROOT: clean ones after --keep-clean, the others after
    --keep-failed, running ones never; exit 3 if some could not be deleted."""
    try:
        rule = Retention(parse_duration(keep_clean), parse_duration(keep_failed))
    except ValueError as exc:
        raise UsageError(f"prune-runs: {exc}") from None
    fates = retention.plan(root, rule)
    problems = [] if dry_run else retention.apply(fates)
    failed = {path for path, _ in problems}
    if as_json:
        click.echo(json.dumps({"root": str(root), "dry_run": dry_run, "runs": [f.to_json() for f in fates],
                               "problems": [{"path": str(p), "error": e} for p, e in problems]}, indent=2))
    else:
        for fate in fates:
            verb = {"delete": "would delete" if dry_run else "NOT deleted" if fate.path in failed else "deleted",
                    "keep": "kept", "running": "running"}
            click.echo(f"{verb[fate.action]:12} {fate.verdict:11} {fate.age_s / 86400:6.1f}d  {fate.path}")
        for path, error in problems:
            click.echo(f"cannot delete {path}: {error}", err=True)
    sys.exit(3 if problems else 0)
