"""Cost of folding a long run's journal: `soak summary` and the detailed fold of a report.

    .venv/bin/python bench/replay.py [--vms 100] [--days 3]

Writes the journal a run of N VMs over D days would leave (what the journal
keeps: one heartbeat and one process sample per VM per minute, a stress-ng
figure per VM every 90 s, a fault every 10 minutes and a failure with a
restart every 6 hours per VM), then times `load_summary` and
`load_run(detail=True)` on it and reports the memory each needed on top of the
process: the fold streams the journal, so memory must not grow with the days.
The live cost of `RunModel.apply` per event is in bench/metrics.py.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

from soak import events as ev
from soak.kinds import Kind
from soak.runmodel import load_run
from soak.summary import load_summary

MINUTE = 60.0


def journal_events(vms: int, days: float, t0: float) -> Iterator[ev.Event]:
    infos = [ev.VmInfo(name=f"g-{i}", group=f"g{i % 4}", vcpus=1 << (i % 4), memory_mib=512, machine="pc",
                       image="default") for i in range(vms)]
    yield ev.RunStarted(t=t0, run_id="bench", profile="bench", profile_path="bench.toml", seed=1, accel="tcg",
                        accel_reason="", version="0", duration_s=days * 86400, command=[], vms=infos)
    boots = dict.fromkeys((info.name for info in infos), 1)
    for info in infos:
        yield ev.VmStarting(t=t0, vm=info.name, boot=1, pid=1, argv=["qemu"])
        yield ev.VmReady(t=t0 + 10, vm=info.name, boot=1, boot_s=10.0, kernel="6.1.0")
    for minute in range(1, int(days * 1440)):
        t = t0 + minute * MINUTE
        for i, info in enumerate(infos):
            name = info.name
            yield ev.Heartbeat(t=t, vm=name, seq=minute * 60, uptime_s=minute * 60.0, load1=1.0, mem_free_kib=1 << 18,
                               mem_available_kib=1 << 19, gap_s=1.0, lateness_s=0.01 * (minute % 7))
            yield ev.ProcessSample(t=t, vm=name, pid=1, cpu_s=minute * 50.0, rss_bytes=(300 << 20) + minute,
                                   threads=9, fds=40)
            if minute % 3 == i % 3 and minute % 2:
                yield ev.WorkloadMetrics(t=t, vm=name, stressor=("cpu", "vm")[minute % 2], bogo_ops=6000.0,
                                         bogo_ops_per_s=100.0 + i, seconds=60.0)
            if minute % 10 == i % 10:
                yield ev.FaultInjected(t=t, vm=name, fault="pause", seq=minute, duration_s=5.0)
            if minute % 360 == i % 360:
                yield from _crash(name, boots, t, minute)
    yield ev.RunFinished(t=t0 + days * 86400, reason="deadline", verdict="failures", failures=0, infra_problems=0)


def _crash(name: str, boots: dict[str, int], t: float, minute: int) -> Iterator[ev.Event]:
    boot = boots[name]
    yield ev.Failure(t=t, vm=name, kind=Kind.KERNEL_WARNING, title=f"WARNING in f{minute % 50}", boot=boot,
                     detected_by="console", latency_s=0.1, evidence=f"vms/{name}/failures/{boot:03d}-kernel-warning")
    yield ev.VmStopped(t=t + 1, vm=name, boot=boot, reason="failure", exit_code=None, heartbeats=100)
    boots[name] = boot + 1
    yield ev.VmStarting(t=t + 2, vm=name, boot=boot + 1, pid=2, argv=["qemu"])
    yield ev.VmReady(t=t + 12, vm=name, boot=boot + 1, boot_s=10.0, kernel="6.1.0")


def timed(fold: Callable[[], object]) -> float:
    start = time.perf_counter()
    fold()
    return time.perf_counter() - start


def peak_mib(fold: Callable[[], object]) -> float:
    """Peak memory allocated while folding (traced apart: tracing slows the fold down)."""
    tracemalloc.start()
    fold()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--days", type=float, nargs="+", default=[1.0, 3.0])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for days in args.days:
            path = Path(tmp) / f"journal-{days}.jsonl"
            count = 0
            with open(path, "w") as f:
                for event in journal_events(args.vms, days, 1.8e9):
                    f.write(json.dumps(ev.to_record(event), separators=(",", ":")) + "\n")
                    count += 1
            size = path.stat().st_size / 2**20
            summary = lambda: load_summary(path)  # noqa: E731, B023
            detail = lambda: load_run(path, detail=True)  # noqa: E731, B023
            summary_s, detail_s = timed(summary), timed(detail)
            print(f"{args.vms} VMs x {days:g} days: journal {count:,} records, {size:.0f} MiB")
            print(f"  soak summary: {summary_s:.1f} s ({count / summary_s:,.0f} records/s), "
                  f"peak {peak_mib(summary):.1f} MiB")
            print(f"  detailed fold (report, compare): {detail_s:.1f} s ({count / detail_s:,.0f} records/s), "
                  f"peak {peak_mib(detail):.1f} MiB")

if __name__ == "__main__":
    main()
