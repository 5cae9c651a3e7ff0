"""`soak summary` merges a real sharded run: three `soak run --shard i/3`, one of them lost and retried.

Shards 0 and 2 run as usual (a fault kills tiny-0's QEMU, a failure nobody
declared). Shard 1's first attempt dies like a node does: its guest's QEMU is
killed from outside (a failure of that attempt), then its soak with SIGKILL,
leaving a journal without a run-finished record; a second attempt of shard 1
then runs on another "host" and finishes, as a Slurm requeue would. The merged
summary must show the lost attempt as superseded and still count its failure,
list the fleet with the hosts of the counted attempts, sum their VM-hours, and
rate the failures against the history without being fooled by the shard runs
that the history already holds. Copies of that run group, each damaged one way
(a shard missing, a torn journal, another seed, another profile, another run
group), must each give exit 3 and say exactly what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from soak import events as ev
from soak.cli import main
from soak.journal import read_journal

REPO = Path(__file__).resolve().parents[2]
GROUP = "merged"
pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(600)]  # 50-90 s here

PROFILE = """\
    [run]
    name = "three"
    duration = "30s"
    seed = 3
    accel = "tcg"
    metrics_listen = ""
    qemu_cores = "off"

    [watch]
    boot_timeout = "150s"
    hang_timeout = "30s"
    shutdown_timeout = "10s"

    [restart]
    policy = "on-failure"   # a VM killed comes back: the run goes on until its deadline
    backoff = "1s"

    [[group]]
    name = "tiny"
    count = 3
    vcpus = 1
    memory = "128M"

    [[group.fault]]
    type = "kill"        # tiny-0 (shard 0): a QEMU crash nobody declared
    at = ["2s"]
    vms = [0]
    expect = "survive"
"""


def soak_run(root: Path, shard: int, *, attempt: int = 0, host: str | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "soak", "run", str(root / "three.toml"), "--shard", f"{shard}/3",
         "--attempt", str(attempt), "--host", host or f"h{shard}", "--run-group", GROUP,
         "--runs-root", str(root / "runs")],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "SOAK_HISTORY": str(root / "history.db")},
    )


def events_of(journal: Path) -> list[ev.Event]:
    return read_journal(journal).events if journal.exists() else []


def wait_for(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def real_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The run group's folder, ``runs/three-merged`` (four attempts of three shards)."""
    root = tmp_path_factory.mktemp("merged")
    (root / "three.toml").write_text(textwrap.dedent(PROFILE))
    started = time.monotonic()
    processes = [soak_run(root, 0), soak_run(root, 2)]
    lost = soak_run(root, 1)
    processes.append(lost)
    group = root / "runs" / f"three-{GROUP}"
    try:
        journal = group / "shard-1-of-3-attempt-0" / "journal.jsonl"
        ready = wait_for("shard 1's guest ready", lambda: any(isinstance(e, ev.VmReady) for e in events_of(journal)),
                         240)
        assert ready
        [qemu] = [e.pid for e in events_of(journal) if isinstance(e, ev.VmStarting)]
        os.kill(qemu, signal.SIGKILL)
        wait_for("the crash journaled", lambda: any(isinstance(e, ev.Failure) for e in events_of(journal)), 30)
        lost.kill()  # the node dies: no run-finished record
        assert lost.wait(10) == -signal.SIGKILL
        processes.append(soak_run(root, 1, attempt=1, host="h3"))  # the engine's requeue, elsewhere
        codes = [p.wait(240) for p in processes if p is not lost]
        assert codes == [1, 0, 0], codes  # shard 0 saw its QEMU killed; the retried shard 1 was clean
        print(f"\nreal run group: {time.monotonic() - started:.0f}s")
        yield group
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def summary(capsys: pytest.CaptureFixture[str], *args: str | Path, history: Path | None = None) -> tuple[int, str]:
    options = ["--history", str(history)] if history else ["--no-history"]
    try:
        main(["summary", *map(str, args), *options])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out


def attempt_dirs(group: Path) -> dict[tuple[int, int], Path]:
    return {(int(d.name.split("-")[1]), int(d.name.split("-")[-1])): d for d in group.iterdir()}


def test_the_merged_summary_of_a_real_sharded_run(real_group: Path, capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    dirs = attempt_dirs(real_group)
    assert set(dirs) == {(0, 0), (1, 0), (1, 1), (2, 0)}
    history = real_group.parents[1] / "history.db"
    code, out = summary(capsys, real_group, "--json", "--junit", tmp_path / "junit.xml", history=history)
    data = json.loads(out)
    assert code == 1 and data["verdict"] == "failures" and data["exit_code"] == 1
    assert data["group_problems"] == [] and data["complete"] and data["run_group"] == data["run_id"] == GROUP
    assert (data["profile"], data["seed"], data["totals"]["vms"]) == ("three", 3, 3)

    shards = {s["shard"]: s for s in data["shards"]}
    assert [s["shards"] for s in data["shards"]] == [3, 3, 3] and set(shards) == {0, 1, 2}
    lost, retried = shards[1]["attempts"]
    assert (lost["attempt"], lost["host"], lost["superseded"], lost["finished"]) == (0, "h1", True, None)
    assert lost["unexpected_failures"] == 1 and lost["run_dir"].endswith("shard-1-of-3-attempt-0")
    assert (retried["attempt"], retried["host"], retried["superseded"], retried["finish_reason"]) == (
        1, "h3", False, "deadline")
    assert (shards[1]["host"], shards[1]["finished"], shards[1]["verdict"]) == ("h3", True, "clean")
    assert [len(shards[i]["attempts"]) for i in (0, 2)] == [1, 1]

    assert {v["name"]: (v["host"], v["shard"]) for v in data["vms"]} == {
        "tiny-0": ("h0", 0), "tiny-1": ("h3", 1), "tiny-2": ("h2", 2)}
    counted = [a for s in data["shards"] for a in s["attempts"] if not a["superseded"]]
    assert data["vm_hours"] == pytest.approx(sum(a["vm_hours"] for a in counted), abs=1e-3)
    assert data["vm_hours"] == pytest.approx(sum(v["uptime_s"] for v in data["vms"]) / 3600, abs=1e-3)

    crashes = [f for f in data["failures"] if f["kind"] == "qemu-crash"]
    assert {h for f in crashes for h in f["hosts"]} == {"h0", "h1"}, crashes
    assert {vm for f in crashes for vm in f["vms"]} == {"tiny-0", "tiny-1"}
    assert sum(f["superseded"] for f in crashes) == 1 and sum(f["count"] for f in crashes) == 2
    # The history holds the four shard runs (each `soak run` recorded itself): still new.
    assert {f["status"] for f in crashes} == {"new"}
    for failure in crashes:
        assert (real_group / failure["evidence"] / "failure.json").is_file(), failure["evidence"]

    suite = ET.parse(tmp_path / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"tiny-0", "tiny-1", "tiny-2"} and suite.get("failures") == "2"
    assert {p.get("name"): p.get("value") for p in cases["tiny-1"].iter("property")} == {"host": "h3", "shard": "1"}
    assert cases["tiny-1"].find("failure") is not None  # its lost attempt's crash
    assert cases["tiny-2"].find("failure") is None

    listed = [dirs[key] for key in sorted(dirs)]
    code_listed, out_listed = summary(capsys, *listed, "--json", history=history)
    assert code_listed == 1 and json.loads(out_listed) == data  # the folder or its run directories: one answer

    code, text = summary(capsys, real_group, history=history)
    assert code == 1
    assert "soak run group merged" in text and "Fleet by host" in text and "superseded" in text
    assert "superseded attempts 1:" in text and "did not finish" in text

    code, out = summary(capsys, dirs[(2, 0)], "--json")
    one = json.loads(out)
    assert code == 0 and "shards" not in one and one["vms"][0]["host"] == "h2"  # one run: as before


def copy_group(group: Path, where: Path) -> Path:
    copy = where / group.name
    shutil.copytree(group, copy, ignore=shutil.ignore_patterns("console*.log", "qemu-stderr.log"))
    return copy


def rewrite_run_started(journal: Path, **changes: Any) -> None:
    lines = journal.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        event = ev.from_record(json.loads(line))
        if isinstance(event, ev.RunStarted):
            lines[i] = json.dumps(ev.to_record(dataclasses.replace(event, **changes))) + "\n"
            break
    journal.write_text("".join(lines))


def test_a_damaged_copy_of_the_real_group_is_exit_3_and_says_why(
        real_group: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cases: dict[str, tuple[Callable[[Path], None], list[str]]] = {
        "missing": (lambda g: shutil.rmtree(g / "shard-2-of-3-attempt-0"),
                    ["shard 2/3: missing: no journal of it among the 3 found"]),
        "torn": (lambda g: os.truncate(g / "shard-2-of-3-attempt-0" / "journal.jsonl",
                                       (g / "shard-2-of-3-attempt-0" / "journal.jsonl").stat().st_size - 20),
                 ["shard 2/3 attempt 0 ({dir2}): unfinished: no run-finished record (still running, or its soak died)",
                  "shard 2/3 attempt 0 ({dir2}): torn: its journal's last line is cut short "
                  "(soak was killed writing it)"]),
        "seed": (lambda g: rewrite_run_started(g / "shard-2-of-3-attempt-0" / "journal.jsonl", seed=4),
                 ["shard 2/3 attempt 0 ({dir2}): another seed (4; the group's is 3)"]),
        "profile": (lambda g: rewrite_run_started(g / "shard-0-of-3-attempt-0" / "journal.jsonl",
                                                  profile_hash="feedfeedfeedfeed"),
                    ["shard 0/3 attempt 0 ({dir0}): another profile (three, hash feedfeedfeedfeed; "
                     "the group's is three, hash {hash})"]),
        "run group": (lambda g: rewrite_run_started(g / "shard-1-of-3-attempt-1" / "journal.jsonl",
                                                    run_group="yesterday"),
                      ["shard 1/3 attempt 1 ({dir1}): another run group (yesterday; the group's is merged)"]),
    }
    first = read_journal(real_group / "shard-0-of-3-attempt-0" / "journal.jsonl").events[0]
    assert isinstance(first, ev.RunStarted)
    for name, (damage, expected) in cases.items():
        copy = copy_group(real_group, tmp_path / name.replace(" ", "-"))
        damage(copy)
        code, out = summary(capsys, copy, "--json", "--junit", tmp_path / "junit.xml")
        data = json.loads(out)
        dirs = {f"dir{i}": copy / f"shard-{i}-of-3-attempt-{1 if i == 1 else 0}" for i in range(3)}
        lines = [line.format(hash=first.profile_hash, **dirs) for line in expected]
        assert (code, data["verdict"], data["group_problems"]) == (3, "infra-error", lines), name
        errors = [e.get("message") for e in ET.parse(tmp_path / "junit.xml").getroot().iter("error")]
        assert errors == lines, name
        code, text = summary(capsys, copy)
        assert code == 3 and all(f"run group {line[:19]}" in text for line in lines), text
