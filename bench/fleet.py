"""What the supervisor costs next to the guests it watches, and how fast it notices a death.

Boots N idle guests with a real `soak run` (a subprocess), lets them run, kills
one QEMU near the end, and prints:

- supervisor CPU time (soak's own process, not its QEMUs) as a share of one core, and per VM;
- supervisor RSS at the start of the steady state and at the end (growth = a leak);
- boot-to-ready p50 / p99 (from the journal);
- heartbeat lateness p50 / p99 (from the live /metrics histogram);
- the time from the SIGKILL of a QEMU to its failure record in the journal.

A guest that does not boot (a boot timeout, a crash while booting) does not stop
the measurement: once every guest is ready or retired, the figures are taken
over the guests that booted, and the others are listed with their failure.

Usage: .venv/bin/python bench/fleet.py --vms 8 32 --minutes 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def profile(vms: int, minutes: float) -> str:
    return textwrap.dedent(f"""
        [run]
        name = "bench"
        duration = "{int(minutes * 60 + 600)}s"
        accel = "tcg"
        max_parallel_boots = 2
        metrics_listen = "127.0.0.1:0"

        [watch]
        boot_timeout = "10m"
        hang_timeout = "30s"

        [restart]
        policy = "never"

        [[group]]
        name = "idle"
        count = {vms}
        vcpus = [1, 2]
        memory = "160M"
    """)


def journal(run_dir: Path) -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    path = run_dir / "journal.jsonl"
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            records.append(json.loads(line))
    return records


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def histogram_quantile(text: str, name: str, q: float) -> float:
    """Quantile from Prometheus cumulative buckets summed over labels (upper bound of the bucket)."""
    buckets: dict[float, float] = {}
    for match in re.finditer(rf'^{name}_bucket{{.*le="([^"]+)"}} (\S+)$', text, re.M):
        le = math.inf if match.group(1) == "+Inf" else float(match.group(1))
        buckets[le] = buckets.get(le, 0.0) + float(match.group(2))
    if not buckets or not buckets.get(math.inf):
        return math.nan
    total = buckets[math.inf]
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return le
    return math.inf


BOOT_WAIT_S = 1800.0
"""Longest wait for the fleet to settle (every guest ready or retired); the profile's boot
timeout (10 min) retires a guest that hangs long before that."""


def boot_state(records: list[dict[str, object]]) -> tuple[set[str], dict[str, str]]:
    """The guests that became ready, and those retired without being ready (with why)."""
    ready = {str(r["vm"]) for r in records if r["type"] == "vm-ready"}
    why: dict[str, str] = {}
    for r in records:
        if r["type"] == "failure" and r["vm"] not in ready:
            why.setdefault(str(r["vm"]), str(r["title"]))
    lost = {str(r["vm"]): why.get(str(r["vm"]), str(r.get("reason", ""))) for r in records
            if r["type"] == "vm-retired" and r["vm"] not in ready}
    return ready, lost


def wait_until_settled(run_dir: Path, vms: int, timeout: float) -> tuple[set[str], dict[str, str]]:
    """Wait until every guest is ready or retired (or the timeout); returns both sets."""
    deadline = time.monotonic() + timeout
    while True:
        ready, lost = boot_state(journal(run_dir))
        if len(ready) + len(lost) >= vms or time.monotonic() > deadline:
            return ready, lost
        time.sleep(0.5)


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)


def bench(vms: int, minutes: float) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="soak-bench-"))
    (work / "bench.toml").write_text(profile(vms, minutes))
    run_dir = work / "run"
    soak = subprocess.Popen(
        [sys.executable, "-m", "soak", "run", str(work / "bench.toml"), "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert soak.stdout is not None
    url = ""
    while not url:
        line = soak.stdout.readline()
        if not line:
            raise SystemExit("soak exited before serving metrics")
        if line.startswith("metrics: "):
            url = line.split()[1]
    drain = subprocess.Popen(["cat"], stdin=soak.stdout, stdout=subprocess.DEVNULL)
    me = psutil.Process(soak.pid)
    try:
        ready, lost = wait_until_settled(run_dir, vms, BOOT_WAIT_S)
        if not ready:
            raise SystemExit(f"no guest booted; {len(lost)} retired: {sorted(set(lost.values()))}")
        for vm in sorted(lost):
            print(f"  {vm} did not boot: {lost[vm]}", flush=True)
        if len(ready) + len(lost) < vms:
            print(f"  {vms - len(ready) - len(lost)} guests still booting after {BOOT_WAIT_S:.0f}s", flush=True)
        time.sleep(10)  # let the boot storm settle
        cpu0 = sum(me.cpu_times()[:2])
        rss0 = me.memory_info().rss
        t0 = time.monotonic()
        time.sleep(minutes * 60)
        cpu1 = sum(me.cpu_times()[:2])
        elapsed = time.monotonic() - t0
        rss1 = me.memory_info().rss
        metrics = urllib.request.urlopen(url, timeout=10).read().decode()
        victim = next(r for r in journal(run_dir) if r["type"] == "vm-starting" and r["vm"] in ready)
        killed_at = time.time()
        os.kill(int(victim["pid"]), signal.SIGKILL)  # type: ignore[call-overload]

        def killed() -> dict[str, object] | None:
            return next((r for r in journal(run_dir) if r["type"] == "failure" and r["vm"] == victim["vm"]
                         and float(r["t"]) >= killed_at), None)  # type: ignore[arg-type]

        wait_for(killed, 30, "the kill to be journaled")
        failure = killed()
        assert failure is not None
    finally:
        soak.send_signal(signal.SIGTERM)
        soak.wait(120)
        drain.wait(10)
    boots = [float(r["boot_s"]) for r in journal(run_dir) if r["type"] == "vm-ready"]  # type: ignore[arg-type]
    share = (cpu1 - cpu0) / elapsed
    return {
        "vms": vms,
        "booted": len(ready),
        "cpu_share_of_core": share,
        "cpu_share_per_vm": share / len(ready),
        "rss_start_mib": rss0 / 2**20,
        "rss_end_mib": rss1 / 2**20,
        "boot_p50_s": percentile(boots, 0.5),
        "boot_p99_s": percentile(boots, 0.99),
        "hb_lateness_p50_s": histogram_quantile(metrics, "soak_heartbeat_lateness_seconds", 0.5),
        "hb_lateness_p99_s": histogram_quantile(metrics, "soak_heartbeat_lateness_seconds", 0.99),
        "kill_to_journal_ms": (float(failure["t"]) - killed_at) * 1000,  # type: ignore[arg-type]
        "steady_s": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args()
    print(f"{'VMs':>4} {'booted':>6} {'CPU%core':>9} {'CPU%/VM':>8} {'RSS MiB':>13} {'boot p50/p99 s':>15} "
          f"{'HB late p50/p99 s':>18} {'kill->journal ms':>17}")
    for n in args.vms:
        r = bench(n, args.minutes)
        print(f"{n:>4} {r['booted']:>6} {100 * r['cpu_share_of_core']:>8.2f}% {100 * r['cpu_share_per_vm']:>7.3f}% "
              f"{r['rss_start_mib']:>6.1f}->{r['rss_end_mib']:<6.1f} "
              f"{r['boot_p50_s']:>7.1f}/{r['boot_p99_s']:<7.1f} "
              f"{r['hb_lateness_p50_s']:>9.3f}/{r['hb_lateness_p99_s']:<8.3f} {r['kill_to_journal_ms']:>17.1f}",
              flush=True)


if __name__ == "__main__":
    main()
