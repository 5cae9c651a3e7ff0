"""What ``soak run`` and ``soak summary`` do with the history, kept out of the thin CLI.

``soak run`` checks the history before it starts (a path the user named that
is not a history fails at once, exit 2, not eight hours later), then records
the finished run and rates its failures. A history that cannot be used at the
end never changes a run's verdict and never costs its summary: it becomes a
warning, and ``--fail-on new`` falls back to ``any`` (without statuses every
failure counts). ``soak summary`` rates a run against the history read-only,
as if the run were recorded, and never creates a history file.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from soak.errors import HistoryError, UsageError
from soak.history.importing import read_facts, record_run
from soak.history.listing import run_statuses
from soak.history.status import Key, Policy, Status
from soak.history.store import HistoryLocation, HistoryStore, Outcome
from soak.runmodel import RunFacts

log = logging.getLogger(__name__)


@dataclass
class Rated:
    """The statuses of a run's failures, or why there are none."""

    statuses: dict[Key, Status] | None = None
    outcome: Outcome | None = None
    """What recording the run did (``soak run``)."""
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HistoryUse:
    """The history a command uses (None: ``--no-history``) and the status rules."""

    location: HistoryLocation | None
    policy: Policy

    def preflight(self) -> str | None:
        """Open (or create) the history before a run; a warning when it cannot be used now.

        :raise UsageError: a path the user named that is not a history.
        """
        if self.location is None:
            return None
        try:
            store = HistoryStore.open(self.location)
        except HistoryError as exc:
            return f"{exc}; the run goes on and tries again when it ends"
        if store is not None:
            store.close()
        return None

    def record_and_rate(self, run_dir: Path) -> Rated:
        """Record a finished run and rate its failures; every problem is a warning, never raised."""
        rated = Rated()
        if self.location is None:
            return rated
        try:
            facts, directory = read_facts(run_dir)
            store = HistoryStore.open(self.location)
            assert store is not None
            with store:
                try:
                    rated.outcome = record_run(store, facts, directory)
                except (HistoryError, UsageError) as exc:
                    not_recorded = f"the run was not recorded in the history: {exc}"
                else:
                    not_recorded = ""
                rated.statuses = run_statuses(facts, store, self.policy)  # reads go on while a writer waits
                if not_recorded:
                    rated.warnings.append(not_recorded)
        except (HistoryError, UsageError) as exc:
            rated.warnings.append(f"the history cannot be used: {exc}")
        except Exception as exc:  # a bug here must not cost a finished run its summary or verdict
            log.exception("recording the run in the history failed")
            rated.statuses = None
            rated.warnings.append(f"the history failed (a soak bug, please report it): {exc!r}")
        return rated

    def rate(self, facts: RunFacts, *, exclude: Collection[str] = ()) -> dict[Key, Status] | None:
        """The statuses of a run's failures against the history, read-only; None with ``--no-history``.
        ``exclude``: run ids the history may hold that are part of the rated run itself (the
        shard attempts of a merged run group, each recorded by its own ``soak run``).

        :raise HistoryError: the history cannot be used.
        :raise UsageError: a path the user named that is not a history.
        """
        if self.location is None:
            return None
        store = HistoryStore.open(self.location, create=False)
        if store is None:
            return run_statuses(facts, None, self.policy)
        with store:
            return run_statuses(facts, store, self.policy, exclude=exclude)
