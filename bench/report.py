"""Cost and size of `soak report` (and `soak compare`) for a long run of many VMs.

    .venv/bin/python bench/report.py [--vms 100] [--days 3]

Writes the journal bench/replay.py writes (one heartbeat and one process
sample per VM per minute, a stress-ng figure per VM every few minutes, a fault
every 10 minutes, a failure with a restart every 6 hours per VM), with seeded
noise on every figure so no line is flat (flat stretches cost two points: the
noise gives the size's worst case), folds it with detail, then times building
the report and prints its size by part: the bound is per VM and series (256
points), not per day. Then times comparing
the run with itself (every sample key at the model's bound of 4,096 samples).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from replay import journal_events  # bench/replay.py: the same synthetic run

from soak import events as ev
from soak.compare import compare_runs
from soak.report import build_report
from soak.runmodel import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--days", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        journal = run_dir / "journal.jsonl"
        with journal.open("w") as f:
            for event in noisy(journal_events(args.vms, args.days, 1.8e9)):
                f.write(json.dumps(ev.to_record(event), separators=(",", ":")) + "\n")
        start = time.perf_counter()
        loaded = load_run(journal, detail=True)
        fold_s = time.perf_counter() - start
        start = time.perf_counter()
        html = build_report(loaded, run_dir)
        build_s = time.perf_counter() - start
        size = len(html.encode())
        print(f"{args.vms} VMs x {args.days:g} days: journal {journal.stat().st_size / 2**20:.0f} MiB, "
              f"detailed fold {fold_s:.1f} s")
        print(f"  report: built in {build_s:.2f} s, {size / 2**20:.2f} MiB "
              f"({size / args.vms / 1024:.1f} KiB per VM)")
        for name, part in _parts(html).items():
            print(f"    {name:<12} {part / 1024:8.0f} KiB")
        start = time.perf_counter()
        result = compare_runs(loaded, loaded)
        compare_s = time.perf_counter() - start
        samples = max(row.a.n for row in result.rows)
        print(f"  compare with itself: {len(result.rows)} rows (up to {samples} samples a side) "
              f"in {compare_s:.1f} s, verdict {result.verdict}")


def noisy(events: Iterator[ev.Event]) -> Iterator[ev.Event]:
    """The same events with every plotted figure jittered (seeded)."""
    rng = random.Random(1)
    for event in events:
        if isinstance(event, ev.Heartbeat):
            event = dataclasses.replace(event, lateness_s=rng.expovariate(20.0))
        elif isinstance(event, ev.ProcessSample):
            event = dataclasses.replace(event, rss_bytes=event.rss_bytes + rng.randrange(64 << 20),
                                        threads=event.threads + rng.randrange(4), fds=event.fds + rng.randrange(8))
        elif isinstance(event, ev.WorkloadMetrics):
            event = dataclasses.replace(event, bogo_ops_per_s=event.bogo_ops_per_s * rng.uniform(0.9, 1.1))
        yield event


def _parts(html: str) -> dict[str, int]:
    """Bytes of each section of the page (its plots included)."""
    sections = re.findall(r'<section id="([^"]+)">(.*?)</section>', html, flags=re.S)
    return {name: len(body.encode()) for name, body in sections}


if __name__ == "__main__":
    main()
