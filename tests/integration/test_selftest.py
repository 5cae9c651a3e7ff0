"""The self-test profile, for real: every failure class provoked on its own VM and detected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


def test_selftest_detects_every_failure_class(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "soak", "run", str(REPO / "profiles" / "selftest.toml"), "--run-dir", str(run_dir),
         "--metrics-listen", ""],
        capture_output=True, text=True, timeout=900,
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    missed = [e for e in summary["expectations"] if not e["met"]]
    unexpected = [f for f in summary["failures"] if f["count"] > f["expected"]]
    assert not missed and not unexpected and not summary["infra_problems"], (
        f"missed: {missed}\nunexpected: {unexpected}\nsoak problems: {summary['infra_problems']}\n"
        f"{done.stdout[-6000:]}"
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    kinds = {e["kinds"] for e in summary["expectations"]}
    assert {"kernel-panic", "kernel-oops", "kernel-warning", "soft-lockup", "rcu-stall", "hung-task",
            "memory-safety", "oom", "workload-failure", "qemu-crash", "qemu-hang", "guest-hang", "io-error",
            "migration-failure"} <= {
        k for entry in kinds for k in entry.split("|")}
    assert "Expected vs detected" in done.stdout
    # the survivors took their faults and stayed up
    vms = {vm["name"]: vm for vm in summary["vms"]}
    assert vms["survivor-0"]["failures"] == 0 and vms["snapshot-0"]["failures"] == 0
    assert summary["faults"].get("pause") and summary["faults"].get("snapshot") == 2
