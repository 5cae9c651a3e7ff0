"""What the metrics read from the run model: the totals (scraped and pushed) and a scrape's snapshot.

The metrics keep no bookkeeping of their own: `Metrics` feeds a
`soak.runmodel.RunModel`, and these two views of it are what gets rendered.
`RunTotals` hold only figures that lifecycle events decide (the journal keeps
those in full), so the totals replayed from a journal equal the live ones; the
sampled high-rate events feed only the live gauges and histograms.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from soak.events import Event
from soak.runmodel import RunModel, VmRecord, VmState, replay
from soak.runmodel.counts import Histogram


@dataclass(frozen=True, slots=True)
class RunTotals:
    """The final figures of a run: what is pushed, and what the summary JSON holds."""

    run_id: str
    profile: str
    seed: int
    accel: str
    version: str
    start_timestamp_s: float
    elapsed_s: float
    vm_seconds: float
    boots: int
    vms: dict[str, int]
    failures: dict[str, int]
    expected_failures: dict[str, int]
    infra_problems: dict[str, int]
    faults_injected: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """The ``metrics`` object of the summary JSON (see the metric names in `push`)."""
        return {
            "run_id": self.run_id,
            "profile": self.profile,
            "seed": self.seed,
            "accel": self.accel,
            "version": self.version,
            "start_timestamp_s": self.start_timestamp_s,
            "elapsed_s": self.elapsed_s,
            "vm_seconds": self.vm_seconds,
            "boots": self.boots,
            "vms": dict(self.vms),
            "failures": dict(self.failures),
            "expected_failures": dict(self.expected_failures),
            "infra_problems": dict(self.infra_problems),
            "faults_injected": dict(self.faults_injected),
        }


def run_totals(model: RunModel, now: float | None = None) -> RunTotals:
    """The model's totals, its time figures measured to ``now`` (see `RunModel.end`)."""
    run = model.run
    return RunTotals(
        run_id=run.run_id if run else "",
        profile=run.profile if run else "",
        seed=run.seed if run else 0,
        accel=run.accel if run else "",
        version=run.version if run else "",
        start_timestamp_s=run.t if run else 0.0,
        elapsed_s=model.elapsed(now),
        vm_seconds=model.vm_seconds(now),
        boots=model.boots,
        vms=model.fleet(),
        failures=dict(model.failures),
        expected_failures=dict(model.expected_failures),
        infra_problems=dict(model.infra_problems),
        faults_injected=dict(model.faults_injected),
    )


def totals_from_events(events: Iterable[Event]) -> RunTotals:
    """Replay events (a journal) into the totals the run pushed.

    Equal to the live `RunTotals` once `RunFinished` is in; for an unfinished
    (crashed) run the time figures run to the last event.
    """
    return run_totals(replay(events))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A copy of what a scrape renders beyond the totals, taken under the lock, rendered after."""

    deadline: float
    boot_time: dict[str, Histogram]
    lateness: dict[str, Histogram]
    detection: dict[str, Histogram]
    migration_time: dict[str, Histogram]
    migration_downtime: dict[str, Histogram]
    migrations: dict[str, int]
    vms: list[VmRecord]
    """The VMs still in the run (retired ones left it)."""


def snapshot(model: RunModel) -> Snapshot:
    return Snapshot(
        deadline=model.deadline(),
        boot_time=model.boot_time.copy(),
        lateness=model.lateness.copy(),
        detection=model.detection.copy(),
        migration_time=model.migration_time.copy(),
        migration_downtime=model.migration_downtime.copy(),
        migrations=dict(model.migrations),
        vms=[vm.copy() for vm in model.vms.values() if vm.state is not VmState.RETIRED],
    )
