"""A real soak recorded in the history: `soak run --fail-on new` fails on its new failure, and passes once
an earlier run of the profile knew it; `soak summary` and `soak history` agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from soak.kinds import Kind
from tests.conftest import REPO
from tests.history.journals import write_run
from tests.integration.harness import write_profile

pytestmark = pytest.mark.qemu

KILLED = (Kind.QEMU_CRASH, "QEMU killed by SIGKILL")


def soak(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "soak", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


def test_a_real_run_is_recorded_and_gated_by_its_statuses(tmp_path: Path) -> None:
    # one guest whose QEMU a fault kills though the profile says it must survive: an unexpected qemu-crash
    profile = write_profile(tmp_path / "p.toml", """
        [[group]]
        name = "k"
        vcpus = 1
        memory = "256M"
        fault = [{ type = "kill", at = ["2s"], expect = "survive" }]
    """, duration="30s")
    db, run_dir = tmp_path / "history.db", tmp_path / "run"
    done = soak("run", str(profile), "--run-dir", str(run_dir), "--history", str(db), "--fail-on", "new",
                timeout=300)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "new" in done.stdout and "warning" not in done.stdout
    recorded = json.loads((run_dir / "summary.json").read_text())
    [failure] = recorded["failures"]
    assert (failure["kind"], failure["title"], failure["status"]) == (KILLED[0].value, KILLED[1], "new")
    assert recorded["fail_on"] == "new" and recorded["exit_code"] == 1

    again = soak("history", "import", str(run_dir), "--history", str(db))  # `soak run` recorded it already
    assert again.returncode == 0 and again.stdout.startswith("unchanged")
    summary = soak("summary", str(run_dir), "--history", str(db), "--fail-on", "new", "--json")
    assert summary.returncode == 1 and json.loads(summary.stdout)["failures"][0]["status"] == "new"

    # an earlier night of the same profile saw the same crash: now it is known, and --fail-on new passes
    started = recorded["started"]
    earlier = write_run(tmp_path / "older", "earlier", started=started - 86400, profile="test", failures=[KILLED])
    assert soak("history", "import", str(earlier), "--history", str(db)).returncode == 0
    summary = soak("summary", str(run_dir), "--history", str(db), "--fail-on", "new", "--json")
    assert summary.returncode == 0, summary.stdout[-2000:] + summary.stderr
    assert json.loads(summary.stdout)["failures"][0]["status"] == "known"

    listing = json.loads(soak("history", "--history", str(db), "--json").stdout)
    [signature] = listing["signatures"]
    assert (signature["title"], signature["runs_seen"], signature["runs_total"]) == (KILLED[1], 2, 2)
    assert signature["status"] == "known" and signature["accels"] == ["tcg"]
    with open(run_dir / "journal.jsonl") as journal:
        real_qemu = json.loads(journal.readline())["qemu_version"]
    assert real_qemu[0].isdigit() and real_qemu in signature["qemu_versions"]
    real_kernel = next(v["kernel"] for v in recorded["vms"] if v["name"] == "k-0")
    assert real_kernel and real_kernel in signature["kernels"]
    assert signature["last_evidence"].startswith(str(run_dir.resolve())) and signature["last_evidence_exists"]


def test_a_history_path_that_is_not_a_history_stops_a_run_before_it_starts(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.toml", '[[group]]\nname = "k"\nvcpus = 1\n', duration="20s")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n" * 50)
    done = soak("run", str(profile), "--run-dir", str(tmp_path / "run"), "--history", str(notes))
    assert done.returncode == 2 and done.stderr.startswith("UsageError: ") and "not a soak history" in done.stderr
    assert not (tmp_path / "run").exists()
    done = soak("run", str(profile), "--no-history", "--fail-on", "new")
    assert done.returncode == 2 and "--fail-on new needs the history" in done.stderr
