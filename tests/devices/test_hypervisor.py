"""profiles/hypervisor.toml for a few minutes, for real: every device, migration and device fault at
once, and the run ends clean (the faults' declared outcomes only)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


def test_the_hypervisor_fleet_runs_clean(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "soak", "run", str(REPO / "profiles" / "hypervisor.toml"), "--duration", "130s",
         "--run-dir", str(run_dir), "--metrics-listen", ""],
        capture_output=True, text=True, timeout=600,
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    unexpected = [f for f in summary["failures"] if f["count"] > f["expected"]]
    assert done.returncode == 0 and not unexpected and not summary["infra_problems"], (
        f"unexpected: {unexpected}\nsoak problems: {summary['infra_problems']}\n{done.stdout[-6000:]}")
    faults = summary["faults"]
    assert {"migrate", "balloon", "link-down", "disk-error", "disk-full"} <= set(faults), faults
    expected = {(f["kind"], f["title"]) for f in summary["failures"]}
    assert expected <= {("io-error", "disk write failed: Input/output error"),
                        ("io-error", "disk read failed: Input/output error")}, expected
    assert expected, "disk-error's I/O errors reached the guest"
    journal = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert sum(1 for r in journal if r["type"] == "migrated" and r["ok"]) >= 2  # both movers
    vms = {vm["name"]: vm["devices"] for vm in summary["vms"]}
    assert set(vms["mover-0"]) == {"disk0", "disk1", "net", "rng"}
    assert set(vms["pair-1"]) == {"disk0", "net", "rng"} and set(vms["full-0"]) == {"disk0"}
    assert all(d["write_mb_s"] > 0 for devices in vms.values() for name, d in devices.items() if name != "rng")
