"""soak's own memory over many hours of a run, on fake machines and a virtual clock.

The supervisor, runners, watchers, fault drivers, console stores, journal writer, run model,
metrics collector and live view of a real `soak run` (`Session._supervise`), driving fake
guests (`soak.machine.fake`) that heartbeat, print, run stress-ng jobs, take host faults
(pause, reset, NMI, live migration) and guest faults (a panic, a warning), crash and hang,
reboot after every failure, and one of them floods its console; the loop's clock jumps from
timer to timer, so an hour takes seconds.

After each virtual hour it prints soak's Python heap (``tracemalloc``, after a collection)
(soak's own allocations: the fake machines' and this script's are left out), the process's
RSS and the live objects; then the heap's Theil-Sen slope per virtual hour after ``--warmup``
(soak's bounded stores fill over a run's first two hours: README "Bounds"), and the
allocation sites that grew most between the middle and the end of the run.

Usage: .venv/bin/python bench/memory.py [--hours 6] [--warmup 2] [--vms 7] [--flood-kib 4] [--migrate-every 60]
       [--top 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import sys
import tempfile
import time
import tomllib
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import psutil
from prometheus_client import CollectorRegistry, generate_latest
from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from soak.accel import AccelChoice  # noqa: E402
from soak.diskio import WriterThread  # noqa: E402
from soak.journal import Journal  # noqa: E402
from soak.live import LiveView  # noqa: E402
from soak.machine import BootImage  # noqa: E402
from soak.machine.fake import Exit, FakeLauncher, GuestScript, Hang, Panic, Print  # noqa: E402
from soak.metrics import Metrics  # noqa: E402
from soak.profile import VmSpec, validate_profile  # noqa: E402
from soak.recorder import Recorder  # noqa: E402
from soak.runmodel import RunModel  # noqa: E402
from soak.session import RunOptions, Session  # noqa: E402
from soak.supervisor import Supervisor  # noqa: E402
from tests.guest.virtual import VirtualClockLoop  # noqa: E402

MIB = 1 << 20
HOUR = 3600.0

PROFILE = """
[run]
name = "memory"
duration = "{hours}h"
seed = 1
max_parallel_boots = 2
metrics_listen = ""
console_limit = "8M"

[watch]
boot_timeout = "3m"
heartbeat_interval = "1s"
hang_timeout = "30s"
console_grace = "10s"
qmp_timeout = "2s"
shutdown_timeout = "5s"

[restart]
policy = "on-failure"
max_restarts = 1000000
backoff = "10s"

[[group]]
name = "mix"
count = {mix}
vcpus = [1, 2]
fault = [{{ type = "pause", every = "10m", start = "5m", duration = "20s" }}{migrate}]
[group.load]
stressors = ["cpu", "vm", "timer"]
pattern = "bursts"
period = "60s"
idle = "60s"

[[group]]
name = "reset"
vcpus = 2
fault = [{{ type = "reset", every = "15m", start = "7m" }}]
[group.load]
stressors = ["cpu", "vm"]
pattern = "steady"
period = "60s"

[[group]]
name = "nmi"
vcpus = 2
fault = [{{ type = "nmi", every = "10m", start = "3m" }}]
[group.load]
stressors = ["cpu"]
pattern = "steady"
period = "60s"

[[group]]
name = "panic"
vcpus = 1
fault = [{{ type = "panic", every = "20m", start = "10m" }}, {{ type = "warn", every = "5m", start = "2m" }}]

[[group]]
name = "crash"
vcpus = 1
{flood}"""

FLOOD_GROUP = """
[[group]]
name = "flood"
vcpus = 1
"""
KALLSYMS_LINE = "ffffffff8{n:07x} T soak_flood_symbol_{n}\n"
"""What the real run's flooding guest prints (``/proc/kallsyms`` in a loop): about 40 bytes a line."""

CHATTER_EVERY_S = 5
"""Every live guest prints a console line this often (a kernel's background messages)."""


def script(spec: VmSpec, boot: int) -> GuestScript:
    """Each boot of each VM: guest faults do what the kernel would; crash VMs die now and then."""
    faults = {
        "panic": [(0.5, Panic("soak-faultinject: requested panic"))],
        "warn": [(0.5, Print((f"[ {boot * 10}.000000] WARNING: CPU: 0 PID: {boot} at drivers/soak/faultinject.c:42 "
                              "soak_fault_warn+0x1c/0x30 [soak_faultinject]",
                              "[ 10.000001] ---[ end trace 0000000000000000 ]---")))],
    }
    steps: list[tuple[float, object]] = []
    if spec.group == "crash":  # QEMU dies or the guest hangs, alternately, after 20-40 min
        at = 1200.0 + 600.0 * (boot % 3)
        steps.append((at, Exit(-11) if boot % 2 else Hang(busy=True)))
    return GuestScript(steps=steps, faults=faults)  # type: ignore[arg-type]


async def chatter(launcher: FakeLauncher, stop: asyncio.Event, flood_bytes_per_s: int) -> None:
    """Console lines from every live guest, a flood from the flood VM; dead machines are dropped
    (the fake's memory, not soak's)."""
    n = 0
    tick = 0
    lines = max(1, flood_bytes_per_s // len(KALLSYMS_LINE.format(n=0)))
    while not stop.is_set():
        await asyncio.sleep(1.0)
        tick += 1
        launcher.launched[:] = [m for m in launcher.launched if m.returncode is None]
        for machine in launcher.launched:
            if machine.name.startswith("flood"):
                machine.act(Print(("".join(KALLSYMS_LINE.format(n=n + i) for i in range(lines)).rstrip("\n"),)))
            elif tick % CHATTER_EVERY_S == 0:
                machine.act(Print((f"[{n:>8}.{n % 1000000:06d}] random: crng reseeded on system resumption {n}",)))
            n += 1


def drain(threads: list[WriterThread], timeout: float = 10.0) -> None:
    """Let the journal's and consoles' writer threads empty their queues (in real time: the virtual
    clock runs far ahead of a disk, and what waits for it is not what soak keeps)."""
    deadline = time.monotonic() + timeout
    while any(t.pending_bytes for t in threads) and time.monotonic() < deadline:
        time.sleep(0.01)


def soak_heap(keep: Path | None) -> int:
    """Bytes soak's Python objects hold now (a snapshot without the fakes and this script);
    the snapshot goes to ``keep`` rather than staying in memory, where it would count."""
    gc.collect()
    ours = soak_only(tracemalloc.take_snapshot())
    if keep is not None:
        ours.dump(str(keep))
    return sum(trace.size for trace in ours.traces)


def theil_sen(xs: list[float], ys: list[float]) -> float:
    slopes = sorted((ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs)))
    return slopes[len(slopes) // 2] if slopes else 0.0


def soak_only(snapshot: tracemalloc.Snapshot) -> tracemalloc.Snapshot:
    """Without what the fake machines and this script allocate themselves."""
    return snapshot.filter_traces([
        tracemalloc.Filter(False, "*/soak/machine/fake/*"),
        tracemalloc.Filter(False, "*/bench/*"),
        tracemalloc.Filter(False, tracemalloc.__file__),
    ])


def where(trace: tracemalloc.StatisticDiff) -> str:
    """The innermost frames in soak's own code (else the innermost frame), for one line of output."""
    frames = list(reversed(trace.traceback))  # innermost first
    shown = frames[:1] + [f for f in frames[1:] if "/soak/" in f.filename][:2]
    return " <- ".join(f"{f.filename.split('/soak/')[-1].split('/python3.11/')[-1]}:{f.lineno}" for f in shown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=6, help="virtual hours to run (default 6)")
    parser.add_argument("--vms", type=int, default=7, help="VMs (at least 5: one per fault kind; default 7)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="virtual hours left out of the slope while bounded stores fill (default 2)")
    parser.add_argument("--top", type=int, default=8, help="growing allocation sites to show")
    parser.add_argument("--flood-kib", type=int, default=4,
                        help="KiB/s one more VM floods its console with (0: no flood VM; default 4)")
    parser.add_argument("--migrate-every", type=int, default=60,
                        help="seconds between live migrations of the mix VMs (0: none; default 60)")
    parser.add_argument("--frames", type=int, default=1, help="frames kept per allocation (more: slower)")
    parser.add_argument("--scrape-every", type=float, default=15.0, help="virtual seconds between /metrics scrapes")
    args = parser.parse_args()
    logging.getLogger("soak.diskio").setLevel(logging.ERROR)  # its statvfs thread lags the virtual clock
    flood = FLOOD_GROUP if args.flood_kib else ""
    migrate = f', {{ type = "migrate", every = "{args.migrate_every}s", start = "1m" }}' if args.migrate_every else ""
    profile_text = PROFILE.format(hours=args.hours, mix=max(1, args.vms - 4 - bool(flood)), flood=flood,
                                  migrate=migrate)
    profile = validate_profile(tomllib.loads(profile_text), "memory.toml")

    tracemalloc.start(args.frames)
    started = time.perf_counter()
    hours: list[float] = []
    heaps: list[int] = []
    snapshots: dict[int, Path] = {}

    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-memory-")))
        (work / "memory.toml").write_text(profile_text)
        options = RunOptions(profile_path=work / "memory.toml", profile=profile, run_dir=work / "run", command=["bench"])
        devnull = stack.enter_context(open(os.devnull, "w", encoding="utf-8"))  # a log nobody keeps in memory
        session = Session(options, Console(file=devnull, width=120))
        session.accel = AccelChoice("tcg", "fake machines")
        session.images = {spec.group: BootImage(None, None, (), "fake", agent=True) for spec in session.fleet}
        session.run_dir.create()
        launcher = FakeLauncher(script, qmp_timeout=profile.watch.qmp_timeout)
        registry = CollectorRegistry()
        metrics = Metrics(registry, hang_timeout_s=profile.watch.hang_timeout)
        scraped = 0

        async def measure(stop: asyncio.Event, threads: Callable[[], list[WriterThread]]) -> None:
            nonlocal scraped
            hour = 0
            next_hour = asyncio.get_running_loop().time() + HOUR
            while not stop.is_set():
                await asyncio.sleep(args.scrape_every)
                scraped += len(generate_latest(registry))
                if asyncio.get_running_loop().time() < next_hour:
                    continue
                hour += 1
                next_hour += HOUR
                drain(threads())
                keep = work / f"hour-{hour}.snapshot" if hour in (max(1, args.hours // 2), args.hours - 1) else None
                heap = soak_heap(keep)
                if keep is not None:
                    snapshots[hour] = keep
                hours.append(hour)
                heaps.append(heap)
                rss = psutil.Process().memory_info().rss
                print(f"  hour {hour:>3}: heap {heap / MIB:7.2f} MiB, RSS {rss / MIB:6.1f} MiB, "
                      f"{len(gc.get_objects()):>7} objects, "
                      f"{len(asyncio.all_tasks()):>4} tasks, wall {time.perf_counter() - started:6.1f} s", flush=True)

        async def run() -> None:
            journal = Journal(session.run_dir.journal)
            model = RunModel()
            live = LiveView(session.console, model, interactive=False)
            recorder = Recorder([model, journal, metrics, live])
            supervisor = Supervisor(profile, session.fleet, session.run_dir, recorder, launcher, lambda s: "soak")
            stop = asyncio.Event()
            def threads() -> list[WriterThread]:
                return [journal._thread, *(runner.console._thread for runner in supervisor.runners)]

            helpers = [asyncio.create_task(chatter(launcher, stop, args.flood_kib * 1024)), asyncio.create_task(measure(stop, threads))]
            try:
                await session._supervise(supervisor, recorder, journal, live, model)
            finally:
                stop.set()
                for helper in helpers:
                    helper.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)

        print(f"{args.hours} virtual hours, {len(session.fleet)} VMs (pause, migration every {args.migrate_every} s, "
              f"reset, NMI, guest panic and warning, QEMU crash and guest hang, a {args.flood_kib} KiB/s flood), "
              f"a console line per VM every {CHATTER_EVERY_S} s:")
        loop = VirtualClockLoop()
        try:
            loop.run_until_complete(run())
        finally:
            loop.close()
        journal_bytes = session.run_dir.journal.stat().st_size
        compared = {h: tracemalloc.Snapshot.load(str(path)) for h, path in sorted(snapshots.items())}

    wall = time.perf_counter() - started
    model = metrics.model
    print(f"wall {wall:.0f} s; {model.boots} boots, {sum(model.faults_injected.values())} faults, "
          f"{model.failures_total} failures, journal {journal_bytes / MIB:.1f} MiB, "
          f"{scraped / MIB:.0f} MiB of /metrics scraped")
    later = [(h, v) for h, v in zip(hours, heaps, strict=True) if h >= args.warmup]
    if len(later) >= 2:
        slope = theil_sen([h for h, _ in later], [v for _, v in later])
        print(f"heap from hour {later[0][0]:.0f}: {later[0][1] / MIB:.2f} -> {later[-1][1] / MIB:.2f} MiB; "
              f"Theil-Sen slope {slope / 1024:+.1f} KiB per virtual hour")
    if len(compared) == 2:
        (a, first), (b, last) = compared.items()
        print(f"allocation sites that grew most from hour {a} to hour {b} (soak's code, the fakes left out):")
        for stat in last.compare_to(first, "traceback")[:args.top]:
            if stat.size_diff <= 0:
                break
            print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {where(stat)}")

if __name__ == "__main__":
    main()
