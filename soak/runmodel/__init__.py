"""The run model: the one fold of a run's events, from which every view is derived.

The journal, the metrics, the live view and the summary all see the same
events (``soak.events``); this package folds them *once* into a `RunModel`, and
every view reads that model: the summary (``soak.summary``: ``soak summary``,
``summary.json`` / ``summary.txt``, ``--junit``), the live fleet table
(``soak.live``), the Prometheus collector and the pushed totals
(``soak.metrics.views``), and the verdict written into `RunFinished`
(`run_finished`, the same function as the summary's verdict). Nothing else
keeps a bookkeeping of events: a new figure is a new field and handler here.

Folding::

    model = RunModel()                 # live: cheap, bounded, no per-event lists
    model.apply(event)                 # (also `observe`: a model is a Recorder observer)
    model = replay(events)             # a list of events, e.g. in a test
    loaded = load_run(journal_path)    # a journal, streamed; .model .torn_tail .skipped_records
    runs = load_runs([path, ...])      # several journals, one model each (shards, attempts)
    model = RunModel(detail=True)      # also the report's series and compare's samples

Reading (``now`` is Unix time; without it a live run is measured to its newest
event, a finished one always to its finish: `RunModel.end`)::

    model.run / model.finished         # RunStarted / RunFinished, or None
    model.vms[name]                    # VmRecord: info (shape), state, shown_state, boots,
                                       #   failures / expected_failures, kernel, uptime_s(end),
                                       #   heartbeats, guest (last Heartbeat), process (last
                                       #   ProcessSample), workload (last rate per stressor),
                                       #   throughput (mean rate per stressor, whole run)
    model.elapsed(now), model.vm_seconds(now), model.deadline(), model.fleet()
    model.failures / expected_failures # by kind (every kind present)
    model.infra_problems, model.problems   # counts by problem word; the first 100 whole
    model.faults_injected              # by fault name
    model.failure_groups()             # FailureGroup per (kind, title), most important first
    model.expectation_results()        # Expectation per declared failure (self-tests)
    model.boot_time / lateness / detection   # histograms by group / by watcher
    verdict_facts(model).verdict       # "clean" | "failures" | "infra-error"; .exit_code
    run_finished(model, reason)        # the RunFinished record a live run ends with
    run_facts(model)                   # RunFacts for a history store (issue 9)

Detail (`RunModel(detail=True)`, then ``model.detail``; see ``soak.runmodel.detail``)::

    detail.vms[name].lateness / rss / threads / fds     # Buckets: .points() -> [Point]
    detail.vms[name].throughput[stressor]               # Buckets of bogo-ops/s
    detail.vms[name].boots / failures / faults          # the fleet timeline: BootSpan,
                                                        #   FailureMark, FaultWindow
    detail.samples.bogo_ops_per_s[(stressor, vcpus)]    # per-run samples for soak compare
    detail.samples.boot_s[vcpus], .lateness_s[vcpus]

Several journals (``soak.runmodel.merge``): `merged_signatures({label: model})`,
`merged_vm_seconds`, `merged_signature_facts`, and `combined_facts(models).verdict`.
A run group (``soak.runmodel.group``: the shards of one run and their attempts)::

    group = group_runs(load_runs(journals))   # placed by their RunStarted records
    group.counted / group.superseded          # Attempt: .label .model .run_dir .host .slot
    group.by_shard()                          # [(shard, [Attempt, oldest first])]; [] = missing
    group.problems                            # missing, unfinished, torn, mismatched: one line each
    group.verdict_facts().verdict             # counted attempts + superseded failures + problems
    group.run_facts()                         # the group as one run, for the history's statuses

Extending: a new event type or field is folded by a handler in `RunModel._handlers`
(and `RunDetail._handlers` if a report needs it); events of types without a handler are
ignored, so an older soak reads a newer journal. A model is not thread-safe: one
thread applies, and a reader on another thread (the Prometheus scrape) takes the
owner's lock and copies (``soak.metrics.views.snapshot``).

Bounds (a run of days costs what a run of minutes does): label values capped
(32 fault names, problem words and stressors, 64 groups, then ``other``); at
most 1000 failure signatures (then one overflow title per kind); the first 100
soak problems kept whole; detail series at most 256 buckets each, timelines at
most 1000 boots / failures / faults per VM, samples at most 4096 per key
(thinned evenly past that). The per-VM state is a fixed set of fields.
"""

from soak.runmodel.detail import (
    BootSpan,
    FailureMark,
    FaultWindow,
    RunDetail,
    Samples,
    VmDetail,
)
from soak.runmodel.facts import RunFacts, SignatureFacts, VmShape, run_facts
from soak.runmodel.failures import Expectation, FailureGroup
from soak.runmodel.group import Attempt, RunGroup, group_runs
from soak.runmodel.merge import (
    MergedSignature,
    merged_signature_facts,
    merged_signatures,
    merged_vm_seconds,
)
from soak.runmodel.model import RunModel
from soak.runmodel.replay import LoadedRun, load_run, load_runs, replay
from soak.runmodel.series import Buckets, Point
from soak.runmodel.verdict import (
    VERDICT_EXIT,
    VerdictFacts,
    combined_facts,
    run_finished,
    verdict_facts,
)
from soak.runmodel.vm import HEARTBEAT_STATES, LIVE, Rate, VmRecord, VmState

__all__ = [
    "HEARTBEAT_STATES",
    "LIVE",
    "VERDICT_EXIT",
    "Attempt",
    "BootSpan",
    "Buckets",
    "Expectation",
    "FailureGroup",
    "FailureMark",
    "FaultWindow",
    "LoadedRun",
    "MergedSignature",
    "Point",
    "Rate",
    "RunDetail",
    "RunFacts",
    "RunGroup",
    "RunModel",
    "Samples",
    "SignatureFacts",
    "VerdictFacts",
    "VmDetail",
    "VmRecord",
    "VmShape",
    "VmState",
    "combined_facts",
    "group_runs",
    "load_run",
    "load_runs",
    "merged_signature_facts",
    "merged_signatures",
    "merged_vm_seconds",
    "replay",
    "run_facts",
    "run_finished",
    "verdict_facts",
]
