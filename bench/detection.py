"""Detection latency per failure kind: from the fault's injection to soak's journal record.

Runs profiles/selftest.toml (or reads a finished self-test run with --run-dir) and
splits each delay in two:

- the guest's own delay: from the injection to the first sign soak could see (the
  kernel's console line, the missed heartbeat deadline, QEMU's exit). The kernel's
  detectors dominate here: the RCU stall timeout, the soft-lockup threshold, the
  hung-task timeout, the heartbeat hang timeout;
- soak's delay: from that first sign to the journal record (`Failure.latency_s`),
  which for console reports includes the `console_grace` wait for the rest of the report.

Usage: .venv/bin/python bench/detection.py [--run-dir RUN]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_selftest() -> Path:
    run_dir = Path(tempfile.mkdtemp(prefix="soak-detect-")) / "run"
    subprocess.run([sys.executable, "-m", "soak", "run", str(REPO / "profiles" / "selftest.toml"),
                    "--run-dir", str(run_dir), "--metrics-listen", ""], check=False, capture_output=True)
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, help="A finished self-test run to analyse.")
    args = parser.parse_args()
    run_dir = args.run_dir or run_selftest()
    records = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines() if line.strip()]
    faults = {}
    for r in records:
        if r["type"] == "fault":
            faults.setdefault(r["vm"], r)
    print(f"{'VM':<16} {'fault':<12} {'kind':<18} {'total s':>8} {'guest s':>8} {'soak s':>7}  title")
    for r in records:
        if r["type"] != "failure" or not r.get("expected"):
            continue
        fault = faults.get(r["vm"])
        if fault is None:
            continue
        total = r["t"] - fault["t"]
        soak = r.get("latency_s")
        guest = total - soak if soak is not None else float("nan")
        soak_text = f"{soak:7.2f}" if soak is not None else "      -"
        print(f"{r['vm']:<16} {fault['fault']:<12} {r['kind']:<18} {total:8.2f} {guest:8.2f} {soak_text}  "
              f"{r['title'][:60]}")
        faults.pop(r["vm"])  # the first expected failure per VM is the one its fault provoked


if __name__ == "__main__":
    main()
