"""A long soak, measured from outside: soak's own RSS and fds over time, journal and console
bytes per VM-hour against soak's own estimate, evidence folders, and whether soak's memory
grows.

Runs `soak run profiles/nightly.toml` for ``--duration`` with, beside it, a guest that
floods its console (``/proc/kallsyms`` in a loop: the default image's kernel, soak's test
flood initramfs) and samples the soak process every ``--every`` seconds. soak's RSS trend is
a Theil-Sen slope with a Mann-Kendall test over the samples after ``--warmup``: a slope
indistinguishable from zero (p >= 0.05, or below 1 MiB/h) means flat.

Usage: .venv/bin/python bench/longhaul.py [--duration 1h] [--every 30] [--warmup 600] [--no-flood]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from soak.units import parse_duration  # noqa: E402

MIB = 1 << 20


def flood_group(work: Path) -> str:
    from soak.image import ensure_default_image
    from tests.console.flood_guest import flood_initrd

    image = ensure_default_image()
    initrd = flood_initrd(image, work / "flood-initrd.gz")
    return f"""
[[group]]
name = "flood"
vcpus = 1
memory = "256M"
image = {{ kernel = "{image.kernel}", initrd = "{initrd}", append = "flood_crash_after=0" }}
"""


def theil_sen(ts: list[float], vs: list[float]) -> float:
    slopes = sorted((vs[j] - vs[i]) / (ts[j] - ts[i]) for i in range(len(ts)) for j in range(i + 1, len(ts))
                    if ts[j] > ts[i])
    return slopes[len(slopes) // 2] if slopes else 0.0


def mann_kendall_p(vs: list[float]) -> float:
    """Two-sided p-value of a monotonic trend (normal approximation, no tie correction)."""
    n = len(vs)
    if n < 4:
        return 1.0
    s = sum((vs[j] > vs[i]) - (vs[j] < vs[i]) for i in range(n) for j in range(i + 1, n))
    var = n * (n - 1) * (2 * n + 5) / 18
    z = (s - (1 if s > 0 else -1 if s < 0 else 0)) / math.sqrt(var)
    return math.erfc(abs(z) / math.sqrt(2))


def sizes(run: Path) -> dict[str, int]:
    out = {"journal": (run / "journal.jsonl").stat().st_size, "console": 0, "console_flood": 0, "evidence": 0}
    for vm in (run / "vms").iterdir():
        console = sum(p.stat().st_size for p in vm.glob("console*.log"))
        out["console_flood" if vm.name.startswith("flood") else "console"] += console
        failures = vm / "failures"
        out["evidence"] += len(list(failures.iterdir())) if failures.is_dir() else 0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="1h")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples of soak")
    parser.add_argument("--warmup", type=float, default=600.0, help="seconds left out of the RSS trend")
    parser.add_argument("--no-flood", action="store_true")
    parser.add_argument("--keep", type=Path, help="run directory to keep (default: a temporary one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="soak-longhaul-"))
    profile = (REPO / "profiles" / "nightly.toml").read_text() + ("" if args.no_flood else flood_group(work))
    (work / "p.toml").write_text(profile)
    run = args.keep or work / "run"
    argv = [sys.executable, "-m", "soak", "run", str(work / "p.toml"), "--run-dir", str(run),
            "--duration", args.duration, "--no-history", "--metrics-listen", ""]
    started = time.monotonic()
    with open(work / "soak.out", "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        soak = psutil.Process(proc.pid)
        samples: list[tuple[float, int, int]] = []
        while proc.poll() is None:
            try:
                with soak.oneshot():
                    samples.append((time.monotonic() - started, soak.memory_info().rss, soak.num_fds()))
            except psutil.Error:
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=args.every)
    summary = json.loads((run / "summary.json").read_text())
    vm_hours = summary["vm_hours"]
    flood_hours = sum(v["uptime_s"] for v in summary["vms"] if v["name"].startswith("flood")) / 3600
    on_disk = sizes(run)
    estimate = next((line for line in (work / "soak.out").read_text().splitlines() if line.startswith("disk:")), "")
    late = [(t, rss) for t, rss, _ in samples if t >= args.warmup]
    ts, rss = [t / 3600 for t, _ in late], [r / MIB for _, r in late]
    slope, p = theil_sen(ts, rss), mann_kendall_p(rss)
    fds = [f for _, _, f in samples]
    limit = tomllib.loads(profile)["run"].get("console_limit", "256M")
    print(f"run: {args.duration} of profiles/nightly.toml{'' if args.no_flood else ' + a flooding guest'}, "
          f"exit {proc.returncode}, verdict {summary['verdict']}, {vm_hours:.2f} VM-hours")
    print(f"failures: {summary['totals']['failures']} ({summary['totals']['unexpected_failures']} unexpected), "
          f"soak problems: {summary['totals']['infra_problems']}, evidence folders: {on_disk['evidence']}")
    for f in summary["failures"]:
        print(f"  {f['kind']}: {f['title']} x{f['count']} on {', '.join(f['vms'])}")
    for problem in summary["infra_problems"][:10]:
        print(f"  soak problem {problem['problem']}: {problem['message'][:120]}")
    quiet_hours = max(vm_hours - flood_hours, 1e-9)
    print(f"journal: {on_disk['journal'] / 1024:.0f} KiB = {on_disk['journal'] / 1024 / vm_hours:.1f} KiB per VM-hour")
    print(f"console (without the flood): {on_disk['console'] / 1024:.0f} KiB = "
          f"{on_disk['console'] / 1024 / quiet_hours:.1f} KiB per VM-hour")
    if not args.no_flood:
        dropped = sum(v.get("console_dropped_bytes", 0) for v in summary["vms"] if v["name"].startswith("flood"))
        print(f"console of the flooding guest: {on_disk['console_flood'] / MIB:.1f} MiB on disk "
              f"(console_limit {limit}), {dropped / MIB:.0f} MiB dropped")
    print(f"soak's estimate at start: {estimate.removeprefix('disk: ')}")
    if samples:
        print(f"soak RSS: {samples[0][1] / MIB:.1f} MiB at start, {min(r for _, r, _ in samples) / MIB:.1f}-"
              f"{max(r for _, r, _ in samples) / MIB:.1f} MiB over the run, {samples[-1][1] / MIB:.1f} MiB at the end")
        print(f"soak RSS after {args.warmup:.0f}s: Theil-Sen slope {slope:+.2f} MiB/h, Mann-Kendall p = {p:.2f} "
              f"over {len(late)} samples -> {'flat' if p >= 0.05 or abs(slope) < 1.0 else 'GROWING'}")
        print(f"soak fds: {min(fds)}-{max(fds)}")
    print(f"(duration {parse_duration(args.duration):.0f}s, work dir {work})")


if __name__ == "__main__":
    main()
