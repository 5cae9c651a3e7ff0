"""Cost of the merged summary of a run group: one fleet split into N shards, vs one run.

    .venv/bin/python bench/merged.py [--vms 100] [--hours 8] [--shards 1 4 16 64]

Writes the journals the same fleet (bench/replay.py's: heartbeats and process
samples per minute, stress-ng figures, faults, a failure and restart every 6
hours per VM) would leave as one run and as N shards, plus a lost first
attempt of shard 0 (half the run, no run-finished record), then times
`soak summary` of the one run and of the group (finding the journals, folding
each into its own model, combining them) and traces the peak memory of each.
The figures to read: the time per record stays that of one run (the merge
itself is cheap), and the memory grows with the number of journals (one
bounded model each), not with their length.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from soak import events as ev
from soak.merged import load_group, summary_of_group
from soak.rundir import find_journals
from soak.summary import Summary, load_summary

sys.path.insert(0, str(Path(__file__).parent))
from replay import journal_events, peak_mib, timed  # bench/replay.py: a long run's journal

T0 = 1.8e9


def write_group(group: Path, vms: int, days: float, shards: int) -> int:
    """Every shard's journal (attempt 1) and a lost attempt 0 of shard 0, in one pass over the
    fleet's events; returns the records written."""
    files = {shard: _open(group / f"shard-{shard}-attempt-1") for shard in range(shards)}
    lost = _open(group / "shard-0-attempt-0")
    lost_until = T0 + days * 86400 / 2
    owner: dict[str, int] = {}
    count = 0
    try:
        for event in journal_events(vms, days, T0):
            if isinstance(event, ev.RunStarted):
                owner = {vm.name: i % shards for i, vm in enumerate(event.vms)}
                for shard, f in [*files.items(), (0, lost)]:
                    attempt = 0 if f is lost else 1
                    count += _write(f, dataclasses.replace(
                        event, run_id=f"bench-{shard}-{attempt}", vms=[vm for vm in event.vms if owner[vm.name] == shard],
                        host=f"h{shard}-{attempt}", shard=shard, shards=shards, fleet_size=len(event.vms),
                        profile_hash="b" * 16, run_group="bench", attempt=attempt))
                continue
            targets = [files[owner[event.vm]]] if isinstance(event, ev.VmEvent) else list(files.values())
            if event.t <= lost_until and (not isinstance(event, ev.VmEvent) or owner[event.vm] == 0):
                targets.append(lost)
            for f in targets:
                count += _write(f, event)
    finally:
        for f in [*files.values(), lost]:
            f.close()
    return count


def _open(run_dir: Path) -> TextIO:
    run_dir.mkdir(parents=True)
    return open(run_dir / "journal.jsonl", "w")


def _write(f: TextIO, event: ev.Event) -> int:
    f.write(json.dumps(ev.to_record(event), separators=(",", ":")) + "\n")
    return 1


def best(fold: Callable[[], object], repeat: int = 3) -> float:
    return min(timed(fold) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 4, 16, 64])
    args = parser.parse_args()
    days = args.hours / 24
    with tempfile.TemporaryDirectory() as tmp:
        one = _open(Path(tmp) / "one")
        records = sum(_write(one, event) for event in journal_events(args.vms, days, T0))
        one.close()
        journal = Path(tmp) / "one" / "journal.jsonl"
        print(f"{args.vms} VMs x {args.hours:g} h, {records:,} records as one run: "
              f"soak summary peak {peak_mib(lambda: load_summary(journal)):.1f} MiB")
        for shards in args.shards:
            group = Path(tmp) / f"group-{shards}"
            total = write_group(group, args.vms, days, shards)

            def merged(group: Path = group) -> Summary:
                return summary_of_group(load_group(find_journals([group])))

            summary = merged()
            assert summary.group_problems == [] and len(summary.vms) == args.vms, summary.group_problems
            one_s, seconds, peak = best(lambda: load_summary(journal)), best(merged), peak_mib(merged)
            print(f"  {shards:3d} shards + 1 lost attempt ({shards + 1} journals, {total:,} records): "
                  f"{seconds:.2f} s, {seconds / total * 1e6:.1f} us per record = "
                  f"{seconds / one_s * records / total:.2f}x one run's ({one_s / records * 1e6:.1f} us); "
                  f"peak {peak:.1f} MiB ({peak * 1024 / (shards + 1):.0f} KiB per journal)")


if __name__ == "__main__":
    main()
