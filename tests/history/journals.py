"""Run directories the tests write with the event classes: a journal, and a summary.json as soak leaves it.

`write_run` makes one run of a profile that started at a given time, saw the
given failure signatures (unexpected unless listed in ``expected``) on VMs of
known shapes, and finished (or not). Its verdict is the run model's own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from soak import events as ev
from soak.kinds import Kind
from soak.runmodel import replay, run_finished
from soak.session import write_summary_files
from soak.summary import summary_of

DAY = 86400.0
T0 = 1_760_000_000.0
"""A fixed start (October 2025), so statuses and orderings never depend on the clock."""

SHAPES = [(1, 256, "6.1.0-cloud"), (2, 512, "6.1.0-cloud"), (4, 1024, "6.1.0-cloud")]
WARN = (Kind.KERNEL_WARNING, "WARNING in foo")
LOCKUP = (Kind.SOFT_LOCKUP, "BUG: soft lockup in bar")
CRASH = (Kind.QEMU_CRASH, "QEMU killed by SIGSEGV in baz")


def run_events(run_id: str, *, started: float, profile: str = "nightly", failures: Sequence[tuple[Kind, str]] = (),
               expected: Sequence[tuple[Kind, str]] = (), finished: bool = True, boots: bool = True,
               qemu: str = "7.2.0", hours: float = 1.0) -> list[ev.Event]:
    infos = [ev.VmInfo(name=f"g-{i}", group="g", vcpus=v, memory_mib=m, machine="pc", image="default")
             for i, (v, m, _) in enumerate(SHAPES)]
    events: list[ev.Event] = [ev.RunStarted(
        t=started, run_id=run_id, profile=profile, profile_path=f"profiles/{profile}.toml", seed=1, accel="tcg",
        accel_reason="", version="0.1.0", duration_s=hours * 3600, command=[], vms=infos, qemu_version=qemu)]
    if boots:
        for info, (_, _, kernel) in zip(infos, SHAPES, strict=True):
            events.append(ev.VmStarting(t=started + 1, vm=info.name, boot=1, pid=1, argv=["qemu"]))
            events.append(ev.VmReady(t=started + 5, vm=info.name, boot=1, boot_s=4.0, kernel=kernel))
    for i, (kind, title) in enumerate([*failures, *expected]):
        vm = f"g-{i % len(SHAPES)}"
        events.append(ev.Failure(t=started + 60 + i, vm=vm, kind=kind, title=title, boot=1, detected_by="console",
                                 evidence=f"vms/{vm}/failures/{i + 1:03d}-{kind.value}",
                                 expected=(kind, title) in expected and (kind, title) not in failures))
    if finished:
        end = started + hours * 3600
        if boots:
            for info in infos:
                events.append(ev.VmStopped(t=end, vm=info.name, boot=1, reason="deadline", exit_code=0,
                                           uptime_s=end - started - 5, heartbeats=0))
        events.append(run_finished(replay(events), "deadline", t=end))
    return events


def write_run(root: Path, run_id: str, **kwargs: object) -> Path:
    """A run directory under ``root`` named after the run (see `run_events`); returns it."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    events = run_events(run_id, **kwargs)  # type: ignore[arg-type]
    with open(run_dir / "journal.jsonl", "w", encoding="utf-8") as f:
        for event in events:
            f.write(json.dumps(ev.to_record(event)) + "\n")
    if isinstance(events[-1], ev.RunFinished):
        write_summary_files(summary_of(replay(events)), run_dir)
    return run_dir
