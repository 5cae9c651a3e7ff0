"""Guest throughput per vCPU under stress-ng's cpu stressor, at 1, 2, 4 and 8 vCPUs.

One guest per size, one cpu worker per vCPU, steady runs of `--period`; the
figures are stress-ng's own bogo-ops/s (real time) as the agent reported them
(`WorkloadMetrics` in the journal), averaged over the runs after the first.
Under TCG on a 2-core host, more vCPUs than host cores share them: the
per-vCPU figure shows how much of a vCPU the guest really gets.

Usage: .venv/bin/python bench/throughput.py [--vcpus 1 2 4 8] [--period 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path


def profile(vcpus: int, period: int, runs: int) -> str:
    return textwrap.dedent(f"""
        [run]
        name = "throughput"
        duration = "{(period + 8) * (runs + 1) + 30}s"
        accel = "auto"
        metrics_listen = ""

        [watch]
        hang_timeout = "60s"

        [[group]]
        name = "cpu{vcpus}"
        vcpus = {vcpus}
        memory = "256M"
        load = {{ stressors = ["cpu"], pattern = "steady", period = "{period}s", workers_per_vcpu = 1 }}
    """)


def measure(vcpus: int, period: int, runs: int) -> tuple[float, int]:
    work = Path(tempfile.mkdtemp(prefix="soak-tput-"))
    (work / "p.toml").write_text(profile(vcpus, period, runs))
    subprocess.run([sys.executable, "-m", "soak", "run", str(work / "p.toml"), "--run-dir", str(work / "run")],
                   capture_output=True, check=False)
    rates = []
    for line in (work / "run" / "journal.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["type"] == "workload-metrics" and record["stressor"] == "cpu":
            rates.append(float(record["bogo_ops_per_s"]))
    steady = rates[1:] or rates  # the first run overlaps the guest's own start-up
    return (statistics.mean(steady) if steady else float("nan")), len(steady)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vcpus", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--period", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{'vCPUs':>5} {'bogo-ops/s':>11} {'per vCPU':>9} {'vs 1 vCPU':>10} {'runs':>5}")
    base: float | None = None
    for n in args.vcpus:
        rate, count = measure(n, args.period, args.runs)
        per = rate / n
        base = base or per
        print(f"{n:>5} {rate:>11.1f} {per:>9.1f} {per / base:>10.2f} {count:>5}", flush=True)


if __name__ == "__main__":
    main()
