"""Run groups the tests write with the event classes: the journals of a sharded run's attempts.

`shard_events` is one attempt of one shard of a 3-VM fleet (``tiny-0..2``, one VM
per shard), as ``soak run --shard I/N`` journals it: its guest boots, fails as
asked, and the attempt finishes (or not). `write_attempt` writes it where
``soak run`` would, ``ROOT/shard-I-of-N-attempt-K/journal.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from soak import events as ev
from soak.kinds import Kind
from soak.runmodel import replay, run_finished

T0 = 1_760_000_000.0
HOUR = 3600.0
WARN = (Kind.KERNEL_WARNING, "WARNING in foo")
LOCKUP = (Kind.SOFT_LOCKUP, "BUG: soft lockup in bar")


def shard_events(shard: int, shards: int = 3, *, attempt: int = 0, host: str | None = None, seed: int = 3,
                 run_group: str = "night-1", profile_hash: str = "0123456789abcdef", profile: str = "three",
                 started: float = T0, hours: float = 1.0, finished: bool = True,
                 failures: Sequence[tuple[Kind, str]] = (), infra: Sequence[str] = (),
                 reason: str = "deadline", run_id: str = "") -> list[ev.Event]:
    vm = f"tiny-{shard}"
    info = ev.VmInfo(name=vm, group="tiny", vcpus=1, memory_mib=128, machine="pc", image="default")
    end = started + hours * HOUR
    events: list[ev.Event] = [
        ev.RunStarted(t=started, run_id=run_id or f"{run_group}-{shard}-{attempt}-{int(started)}", profile=profile,
                      profile_path=f"profiles/{profile}.toml", seed=seed, accel="tcg", accel_reason="",
                      version="0.1.0", duration_s=hours * HOUR, command=[], vms=[info], qemu_version="7.2.0",
                      host=host or f"h{shard}", shard=shard, shards=shards, fleet_size=3,
                      profile_hash=profile_hash, run_group=run_group, attempt=attempt),
        ev.VmStarting(t=started + 1, vm=vm, boot=1, pid=100 + shard, argv=["qemu"]),
        ev.VmReady(t=started + 5, vm=vm, boot=1, boot_s=4.0, kernel="6.1.0-cloud"),
    ]
    for i, (kind, title) in enumerate(failures):
        events.append(ev.Failure(t=started + 60 + i, vm=vm, kind=kind, title=title, boot=1, detected_by="console",
                                 evidence=f"vms/{vm}/failures/{i + 1:03d}-{kind.value}"))
    for problem in infra:
        events.append(ev.InfraProblem(t=started + 90, vm=vm, problem=problem, message=f"{problem} on {vm}"))
    if finished:
        events.append(ev.VmStopped(t=end, vm=vm, boot=1, reason=reason, exit_code=0, uptime_s=end - started - 5,
                                   heartbeats=0))
        events.append(run_finished(replay(events), reason, t=end))
    return events


def write_journal(run_dir: Path, events: Sequence[ev.Event], *, torn: bool = False) -> Path:
    """``run_dir/journal.jsonl``; ``torn``: a last line cut short, as a killed soak leaves it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "journal.jsonl", "w", encoding="utf-8") as f:
        for event in events:
            f.write(json.dumps(ev.to_record(event)) + "\n")
        if torn:
            f.write('{"type": "heartbeat", "t": 1760000')
    return run_dir


def write_attempt(root: Path, shard: int, shards: int = 3, *, attempt: int = 0, torn: bool = False,
                  **kwargs: object) -> Path:
    """One attempt's run directory under ``root`` (see `shard_events`)."""
    events = shard_events(shard, shards, attempt=attempt, **kwargs)  # type: ignore[arg-type]
    return write_journal(root / f"shard-{shard}-of-{shards}-attempt-{attempt}", events, torn=torn)


def write_group(root: Path, shards: int = 3, **kwargs: object) -> Path:
    """Every shard's first attempt, finished; returns ``root``."""
    for shard in range(shards):
        write_attempt(root, shard, shards, **kwargs)
    return root
