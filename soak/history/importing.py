"""Recording runs: a run directory (or its journal) folded once, its facts into the store.

The facts come from `soak.runmodel.run_facts` over the one fold of the
journal (`load_run`): the history keeps no bookkeeping of events of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from soak.errors import UsageError
from soak.history.store import HistoryStore, Outcome
from soak.journal import JOURNAL_NAME
from soak.rundir import find_journals
from soak.runmodel import RunFacts, load_run, run_facts


def read_facts(path: Path) -> tuple[RunFacts, Path]:
    """The history facts of the run at ``path`` (its directory or its journal), and its directory.

    :raise UsageError: no readable journal there.
    """
    journal = path / JOURNAL_NAME if path.is_dir() else path
    try:
        loaded = load_run(journal)
    except FileNotFoundError:
        raise UsageError(f"{path}: no {JOURNAL_NAME} here: is it a soak run directory?") from None
    except OSError as exc:
        raise UsageError(f"{journal}: cannot read the journal: {exc.strerror or exc}") from exc
    return run_facts(loaded.model), journal.parent


@dataclass(frozen=True, slots=True)
class Imported:
    path: Path
    run_id: str = ""
    outcome: Outcome | None = None
    problem: str = ""
    """Why the run could not be recorded (the others are recorded all the same)."""


def record_run(store: HistoryStore, facts: RunFacts, run_dir: Path) -> Outcome:
    """Record one run whose facts are read already (the end of ``soak run``).

    :raise UsageError: the run has no id (its journal lost its first lines).
    :raise HistoryError: the store cannot be used.
    """
    try:
        return store.record(facts, run_dir)
    except ValueError as exc:
        raise UsageError(f"{run_dir}: {exc}") from None


def import_runs(store: HistoryStore, paths: Iterable[Path]) -> list[Imported]:
    """Record each run, one transaction each; a run that cannot be read is skipped and said why.

    :raise HistoryError: the store cannot be used (nothing more is tried).
    """
    results = []
    for given in paths:
        try:  # a folder of runs (a run group's, a nightly root) brings every run below it
            found = [given] if (given / JOURNAL_NAME).exists() or given.is_file() else find_journals([given])
        except UsageError as exc:
            results.append(Imported(given, problem=str(exc)))
            continue
        for path in found:
            try:
                facts, run_dir = read_facts(path)
                results.append(Imported(path, facts.run_id, record_run(store, facts, run_dir)))
            except UsageError as exc:
                results.append(Imported(path, problem=str(exc)))
    return results
