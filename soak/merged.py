"""The merged summary of a run group: one `Summary` over the journals of its shards and attempts.

Not a second fold: each journal is folded into its own model and summarized by
`soak.summary.summary_of_run`, exactly as ``soak summary RUN`` does; this module
only combines those views, as ``soak.runmodel.group`` places the journals
(which attempt of a shard counts) and ``soak.runmodel.merge`` merges their
failure signatures:

- the fleet: the VMs of each shard's counted attempt, each with its host and shard;
- failures: by signature over *every* attempt, superseded ones included (a host
  that died may itself be the bug), each with the hosts and attempts it hit;
  evidence paths relative to the group's root (the folder holding its run
  directories);
- VM-hours, boots, faults, soak problems, expectations, observations and the
  metrics totals: those of the counted attempts;
- the verdict: `RunGroup.verdict_facts` (``infra-error`` when the journals are
  not one whole run: a shard missing, unfinished, torn or of another profile);
- ``shards``: every shard with its attempts, for ``--json`` and the text view.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from soak.runmodel import (
    Attempt,
    RunGroup,
    group_runs,
    load_runs,
    merged_signatures,
    merged_vm_seconds,
)
from soak.runmodel.model import MAX_KEPT_OBSERVATIONS, MAX_KEPT_PROBLEMS
from soak.summary import AttemptSummary, ShardSummary, Spread, Summary, summary_of_run


def load_group(journals: Sequence[Path]) -> RunGroup:
    """Fold each journal into its own model and place them (``soak.runmodel.group``).

    :raise FileNotFoundError: a journal is missing.
    """
    return group_runs(load_runs(journals))


def group_root(group: RunGroup) -> Path:
    """The deepest folder holding every run directory of the group (as the paths were given)."""
    dirs = [str(a.run_dir) for a in group.attempts]
    if not dirs:
        return Path()
    try:
        return Path(os.path.commonpath(dirs))
    except ValueError:  # relative and absolute paths mixed
        return Path(os.path.commonpath([os.path.abspath(d) for d in dirs]))


def summary_of_group(group: RunGroup, root: Path | None = None) -> Summary:
    """The merged summary of a run group (module docstring); evidence relative to ``root``
    (default `group_root`)."""
    root = group_root(group) if root is None else root
    parts = {a.label: summary_of_run(a.loaded) for a in group.attempts}
    counted = [parts[a.label] for a in group.counted]
    starts = [p.started for p in parts.values() if p.started is not None]
    started = min(starts) if starts else None
    complete = bool(counted) and all(p.finished is not None for p in counted) and all(
        attempts for _, attempts in group.by_shard())
    finished = max(p.finished for p in counted if p.finished is not None) if complete else None
    end = finished if finished is not None else max((a.model.end() for a in group.attempts), default=0.0)
    summary = Summary(
        run_id=group.run_group,
        profile=group.profile,
        seed=group.seed,
        accel="+".join(dict.fromkeys(p.accel for p in counted if p.accel)),
        started=started,
        finished=finished,
        finish_reason="+".join(sorted({p.finish_reason for p in counted if p.finish_reason})) if complete else None,
        duration_s=max(0.0, end - started) if started is not None else 0.0,
        vm_hours=merged_vm_seconds({a.label: a.model for a in group.counted}) / 3600,
        infra_problems=[p for part in counted for p in part.infra_problems][:MAX_KEPT_PROBLEMS],
        infra_total=sum(p.infra_total for p in counted),
        faults=_added(p.faults for p in counted),
        torn_tail=any(a.loaded.torn_tail for a in group.counted),
        skipped_records=sum(p.skipped_records for p in parts.values()),
        metrics=_metrics(group.run_group, counted, started, end),
        expectations=[e for p in counted for e in p.expectations],
        verdict=group.verdict_facts().verdict,
        observations=[o for p in counted for o in p.observations][:MAX_KEPT_OBSERVATIONS],
        journal_dropped=sum(p.journal_dropped for p in counted),
        shards=[ShardSummary(shard, _shard_count(group, attempts), [_attempt(a, parts[a.label]) for a in attempts])
                for shard, attempts in group.by_shard()],
        run_group=group.run_group,
        root=str(root),
        group_problems=list(group.problems),
    )
    for attempt in group.counted:
        for name, vm in parts[attempt.label].vms.items():
            summary.vms[name if name not in summary.vms else f"{name}@{attempt.label}"] = vm
    _add_failures(summary, group, root)
    return summary


def _add_failures(summary: Summary, group: RunGroup, root: Path) -> None:
    by_label = {a.label: a for a in group.attempts}
    for merged in merged_signatures(group.models()):
        failure = merged.group
        key = (failure.kind, failure.title)
        failure.evidence = _evidence(by_label.get(merged.evidence_run), failure.evidence, root)
        failure.last_evidence = _evidence(by_label.get(merged.last_evidence_run), failure.last_evidence, root)
        summary.failures.append(failure)
        summary.spread[key] = Spread(
            hosts=list(dict.fromkeys(by_label[label].host for label in merged.runs if by_label[label].host)),
            attempts=list(merged.runs),
            superseded=sum(a.model.signatures.groups[key].count for a in group.superseded
                           if key in a.model.signatures.groups),
        )


def _evidence(attempt: Attempt | None, evidence: str, root: Path) -> str:
    """An attempt's evidence folder (relative to its run directory) relative to the group's root."""
    if not evidence or attempt is None:
        return evidence
    try:
        run_dir = os.path.relpath(attempt.run_dir, root)
    except ValueError:
        return str(attempt.run_dir / evidence)
    return str(Path(run_dir) / evidence)


def _attempt(attempt: Attempt, part: Summary) -> AttemptSummary:
    run = attempt.started
    return AttemptSummary(
        label=attempt.label,
        attempt=run.attempt if run else None,
        host=attempt.host,
        run_dir=str(attempt.run_dir),
        run_id=part.run_id,
        engine_job=run.engine_job if run else "",
        started=part.started,
        finished=part.finished,
        finish_reason=part.finish_reason,
        torn_tail=part.torn_tail,
        skipped_records=part.skipped_records,
        superseded=attempt.superseded,
        verdict=part.verdict,
        vms=len(part.vms),
        vm_hours=part.vm_hours,
        failures=sum(g.count for g in part.failures),
        unexpected_failures=part.unexpected_failures,
        infra_problems=part.infra_total,
    )


def _shard_count(group: RunGroup, attempts: list[Attempt]) -> int:
    slot = attempts[0].slot if attempts else None
    return slot[1] if slot is not None else group.shards


def _added(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for name, n in count.items():
            total[name] = total.get(name, 0) + n
    return total


def _metrics(run_group: str, counted: list[Summary], started: float | None, end: float) -> dict[str, Any]:
    """The counted attempts' run totals added up, in the shape of one run's (``summary.metrics``)."""
    if not counted:
        return {}
    first = counted[0].metrics
    return first | {
        "run_id": run_group,
        "start_timestamp_s": started or 0.0,
        "elapsed_s": max(0.0, end - started) if started is not None else 0.0,
        "vm_seconds": sum(p.metrics.get("vm_seconds", 0.0) for p in counted),
        "boots": sum(p.metrics.get("boots", 0) for p in counted),
    } | {name: _added(p.metrics.get(name, {}) for p in counted)
         for name in ("vms", "failures", "expected_failures", "infra_problems", "faults_injected")}
