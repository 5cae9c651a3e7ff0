"""Hand-written run directories for report and compare tests: a journal and, when asked, evidence.

`steady_run` is a small but complete run (boots, heartbeats, QEMU samples,
stress-ng rates, a fault window, a failure with its evidence folder); the edge
cases are variations of it (no failures, a VM that never beats, a crash).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from soak import events as ev
from soak.kinds import Kind

T0 = 1_800_000_000.0
HOSTILE = "<script>window.__pwned = 1</script>"
"""Console text that must be shown, never run."""


def info(name: str, vcpus: int = 1, group: str = "g") -> ev.VmInfo:
    return ev.VmInfo(name=name, group=group, vcpus=vcpus, memory_mib=256, machine="pc", image="default")


def started(vms: Sequence[ev.VmInfo], *, duration_s: float = 600.0, profile: str = "p",
            run_id: str = "r1") -> ev.RunStarted:
    return ev.RunStarted(t=T0, run_id=run_id, profile=profile, profile_path=f"{profile}.toml", seed=1,
                         accel="tcg", accel_reason="test", version="0.1.0", duration_s=duration_s,
                         command=["soak", "run"], vms=list(vms), qemu_version="7.2.0")


def beat(t: float, vm: str, lateness: float = 0.01) -> ev.Heartbeat:
    return ev.Heartbeat(t=t, vm=vm, seq=int(t - T0), uptime_s=t - T0, load1=0.5, mem_free_kib=1000,
                        mem_available_kib=2000, gap_s=1.0, lateness_s=lateness)


def sample(t: float, vm: str, rss: int = 200 << 20, threads: int = 8) -> ev.ProcessSample:
    return ev.ProcessSample(t=t, vm=vm, pid=1, cpu_s=t - T0, rss_bytes=rss, threads=threads, fds=30)


def rate(t: float, vm: str, value: float, stressor: str = "cpu") -> ev.WorkloadMetrics:
    return ev.WorkloadMetrics(t=t, vm=vm, stressor=stressor, bogo_ops=value * 10, bogo_ops_per_s=value,
                              seconds=10.0)


def steady_run(*, failure_title: str = "WARNING in foo_bar", failures: bool = True, beating: Iterable[str] = ("g-0", "g-1"),
               finished: bool = True, duration_s: float = 600.0) -> list[ev.Event]:
    vms = [info("g-0", 1), info("g-1", 2)]
    beating = set(beating)
    events: list[ev.Event] = [started(vms, duration_s=duration_s)]
    for vm in vms:
        events += [ev.VmStarting(t=T0 + 1, vm=vm.name, boot=1, pid=10, argv=["qemu"]),
                   ev.VmReady(t=T0 + 9, vm=vm.name, boot=1, boot_s=8.0, kernel="6.1.0")]
    for second in range(60, int(duration_s), 60):
        t = T0 + second
        for i, vm in enumerate(vms):
            if vm.name in beating:
                events.append(beat(t, vm.name, 0.01 * (second % 7)))
            events.append(sample(t, vm.name, rss=(200 << 20) + second * 4096 * (i + 1), threads=8 + i))
            events.append(rate(t + 5, vm.name, 100.0 * vm.vcpus + second % 11))
    events.append(ev.FaultInjected(t=T0 + 120, vm="g-0", fault="pause", seq=1, duration_s=10.0))
    if failures:
        events.append(ev.Failure(t=T0 + 300, vm="g-1", kind=Kind.KERNEL_WARNING, title=failure_title, boot=1,
                                 detected_by="console", latency_s=0.2, evidence="vms/g-1/failures/001-kernel-warning",
                                 message="a warning"))
    if finished:
        for vm in vms:
            events.append(ev.VmStopped(t=T0 + duration_s, vm=vm.name, boot=1, reason="deadline", exit_code=0))
        events.append(ev.RunFinished(t=T0 + duration_s, reason="deadline",
                                     verdict="failures" if failures else "clean",
                                     failures=int(failures), infra_problems=0))
    return events


def write_run(run_dir: Path, events: Iterable[ev.Event], *, tail: str = "") -> Path:
    """A run directory holding ``events`` as its journal (``tail``: raw text after the last record)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "journal.jsonl").open("w") as f:
        for event in events:
            f.write(json.dumps(ev.to_record(event), separators=(",", ":")) + "\n")
        f.write(tail)
    return run_dir


def write_evidence(run_dir: Path, folder: str, files: dict[str, str]) -> Path:
    path = run_dir / folder
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def throughput_run(rates: dict[tuple[str, int], Sequence[float]], *, profile: str = "p",
                   run_id: str = "r1", boots: Sequence[float] = (), failures: Sequence[str] = ()) -> list[ev.Event]:
    """A run whose only figures are the given stress-ng rates per (stressor, vCPUs), and boot times."""
    vcpus = sorted({v for _, v in rates} | {1})
    vms = [info(f"v{n}", n) for n in vcpus]
    events: list[ev.Event] = [started(vms, profile=profile, run_id=run_id)]
    for i, boot_s in enumerate(boots):
        events.append(ev.VmReady(t=T0 + i, vm="v1", boot=i + 1, boot_s=boot_s))
    for (stressor, n), values in rates.items():
        events += [rate(T0 + 10 + i, f"v{n}", value, stressor) for i, value in enumerate(values)]
    for i, title in enumerate(failures):
        events.append(ev.Failure(t=T0 + 50 + i, vm="v1", kind=Kind.KERNEL_WARNING, title=title, boot=1,
                                 detected_by="console"))
    return events


def noisy(rng: random.Random, mean: float, cv: float, n: int) -> list[float]:
    return [max(0.0, rng.gauss(mean, mean * cv)) for _ in range(n)]
