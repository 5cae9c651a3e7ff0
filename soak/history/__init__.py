"""The run history: every finished run remembered, so a failure can be called new or known.

A run is recorded from the one fold of its journal (`soak.runmodel.run_facts`):
its identity, span, VM-hours, verdict and each failure signature it saw with
the VMs and shapes it hit. Nothing is kept per event, so the store grows by
a few kilobytes per run (``soak.history.store``).

::

    location = HistoryLocation.resolve(option_path)      # --history, $SOAK_HISTORY, XDG default
    with HistoryStore.open(location) as store:           # HistoryError (3) / UsageError (2)
        store.record(facts, run_dir)                     # idempotent, one transaction
        import_runs(store, [run_dir, ...])               # soak history import
        run_statuses(facts, store, Policy())             # {(kind, title): "new" | ...}
        list_signatures(store, Filters(since=...), Policy())   # soak history
        list_runs(store, Filters(), Policy())            # soak history runs
        store.forget_before(t)                           # soak history prune
    retention.plan(root, Retention(...)), retention.apply(fates)   # soak history prune-runs

The statuses (new, known, regressed, flaky; expected for failures that failed
nothing) and their rules are in ``soak.history.status``. The history sits
beside the summary: the summary's views take a statuses mapping and never
import this package.
"""

from soak.history.importing import Imported, import_runs, read_facts, record_run
from soak.history.listing import (
    Filters,
    RunHistory,
    SignatureHistory,
    list_runs,
    list_signatures,
    run_statuses,
)
from soak.history.retention import Retention, RunDirFate
from soak.history.status import STATUSES, Chronicle, Policy, RunPoint, Status, status_of
from soak.history.store import HistoryLocation, HistoryStore, Outcome, RunRow, SightingRow

__all__ = [
    "STATUSES",
    "Chronicle",
    "Filters",
    "HistoryLocation",
    "HistoryStore",
    "Imported",
    "Outcome",
    "Policy",
    "Retention",
    "RunDirFate",
    "RunHistory",
    "RunPoint",
    "RunRow",
    "SightingRow",
    "SignatureHistory",
    "Status",
    "import_runs",
    "list_runs",
    "list_signatures",
    "read_facts",
    "record_run",
    "run_statuses",
    "status_of",
]
