"""A real Slurm cluster runs a 3-shard soak through deploy/slurm/soak-array.sbatch.

Four slurmd nodes on loopback (hv1-hv4, one ``kvm`` gres each, so one shard per
node and one spare). While the shards run, one node dies (its slurmd, slurmstepd
and soak are killed at once): Slurm must requeue that shard on the spare node,
and the requeue must write a second run directory next to the first. Another
shard is stopped the way a time limit stops it (SIGTERM to the batch script,
which forwards it to soak): its guests stop in order and its journal is finished.
Every attempt's run-start record must agree on the run group, profile and seed,
and ``soak summary`` of the run group must show it whole and clean, with the
dead node's attempt superseded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from soak import events as ev
from soak.journal import read_journal

from .slurm import SlurmCluster, missing_tools, slurm_cluster

REPO = Path(__file__).resolve().parents[2]
SBATCH = REPO / "deploy" / "slurm" / "soak-array.sbatch"
SHARDS = 3

pytestmark = [pytest.mark.slurm, pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(900)]

PROFILE = """\
    # One tiny idle VM per shard.
    [run]
    name = "sl"
    duration = "60s"
    seed = 11
    accel = "tcg"
    metrics_listen = ""

    [watch]
    boot_timeout = "150s"
    hang_timeout = "30s"
    shutdown_timeout = "10s"

    [restart]
    policy = "never"

    [[group]]
    name = "tiny"
    count = 3
    vcpus = 1
    memory = "128M"
"""


@pytest.fixture
def cluster() -> Iterator[SlurmCluster]:
    missing = missing_tools()
    if missing:
        pytest.fail(f"Slurm is not installed (missing {', '.join(missing)}): run scripts/bootstrap")
    if os.geteuid() != 0:
        pytest.fail("the Slurm test runs munged and slurmd as root (CI does): run it as root")
    root = Path(tempfile.mkdtemp(prefix="soak-slurm-"))  # short: munge's socket path is bounded
    cluster = None
    try:
        with slurm_cluster(root) as cluster:
            yield cluster
    finally:
        left = cluster.marked_pids() if cluster else []
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"processes of the test cluster outlived it: {left}"


def run_started(journal: Path) -> ev.RunStarted | None:
    if not journal.exists():
        return None
    return next((e for e in read_journal(journal).events if isinstance(e, ev.RunStarted)), None)


def has_event(journal: Path, kind: type[ev.Event]) -> bool:
    return journal.exists() and any(isinstance(e, kind) for e in read_journal(journal).events)


def wait_for(what: str, check: Callable[[], Any], cluster: SlurmCluster, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    squeue = cluster.run("squeue", check=False).stdout
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}\n{squeue}{cluster.logs()}")


def test_a_dead_node_s_shard_is_requeued_into_a_new_run_directory(cluster: SlurmCluster) -> None:
    started = time.monotonic()
    profile = cluster.root / "sl.toml"
    profile.write_text(textwrap.dedent(PROFILE))
    runs = cluster.root / "runs"
    soak = str(Path(sys.executable).with_name("soak"))
    job = cluster.run(
        "sbatch", "--parsable", f"--array=0-{SHARDS - 1}", f"--output={cluster.root}/slurm-%A_%a.out",
        str(SBATCH), str(profile),
        env=cluster.env(SOAK=soak, SOAK_RUNS=str(runs), PATH=os.environ["PATH"]),
    ).stdout.strip()
    group = runs / f"sl-slurm-soaktest-{job}"

    def journal(shard: int, attempt: int) -> Path:
        return group / f"shard-{shard}-of-{SHARDS}-attempt-{attempt}" / "journal.jsonl"

    for shard in range(SHARDS):
        wait_for(f"shard {shard}'s guest ready", lambda s=shard: has_event(journal(s, 0), ev.VmReady),
                 cluster, 240)
    dead = cluster.job(f"{job}_1")["NodeList"]
    killed_at = time.monotonic()
    cluster.kill_node(dead)
    # Shard 0 is stopped as a time limit stops it: SIGTERM to the batch script only.
    cluster.run("scancel", "--batch", "--signal=TERM", f"{job}_0")

    wait_for("shard 1 requeued and started again", lambda: run_started(journal(1, 1)), cluster, 300)
    requeue_s = time.monotonic() - killed_at
    wait_for("every task done", lambda: not cluster.run("squeue", "-h").stdout.strip(), cluster, 300)
    print(f"\nrequeue: {requeue_s:.0f}s from the node's death to the new attempt's start; "
          f"whole test {time.monotonic() - started:.0f}s")

    task = {shard: cluster.job(f"{job}_{shard}") for shard in range(SHARDS)}
    assert task[1]["Restarts"] == "1" and task[1]["NodeList"] != dead, task[1]
    assert all(t["JobState"] == "COMPLETED" and t["ExitCode"] == "0:0" for t in task.values()), task

    attempts = {(0, 0), (1, 0), (1, 1), (2, 0)}
    assert {(int(p.name.split("-")[1]), int(p.name.split("-")[-1])) for p in group.iterdir()} == attempts
    records = {key: run_started(journal(*key)) for key in attempts}
    first = records[(0, 0)]
    assert first is not None
    for (shard, attempt), record in records.items():
        assert record is not None, (shard, attempt)
        assert (record.shard, record.shards, record.attempt) == (shard, SHARDS, attempt)
        assert (record.run_group, record.profile_hash, record.seed, record.fleet_size) == (
            f"slurm-soaktest-{job}", first.profile_hash, 11, 3)
        assert (record.engine, record.engine_job) == ("slurm", f"{job}_{shard}")
        assert record.host == task[shard]["NodeList"] if (shard, attempt) != (1, 0) else record.host == dead
        assert [vm.name for vm in record.vms] == [f"tiny-{shard}"]
        assert (runs / f"slurm-{job}_{shard}-attempt-{attempt}.log").exists()

    lost = read_journal(journal(1, 0))
    assert not any(isinstance(e, ev.RunFinished) for e in lost.events), "the dead node's attempt finished?"
    finished = {key: [e for e in read_journal(journal(*key)).events if isinstance(e, ev.RunFinished)]
                for key in attempts - {(1, 0)}}
    assert [e.reason for e in finished[(0, 0)]] == ["signal"]
    assert [e.reason for e in finished[(1, 1)]] == [e.reason for e in finished[(2, 0)]] == ["deadline"]
    stopped = [e for e in read_journal(journal(0, 0)).events if isinstance(e, ev.VmStopped)]
    assert [e.reason for e in stopped] == ["signal"], "SIGTERM must stop the guest in order, once"

    # The merged summary of the run group: whole, the lost attempt superseded yet shown, clean.
    done = subprocess.run([soak, "summary", str(group), "--json", "--no-history"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    merged = json.loads(done.stdout)
    assert (merged["run_group"], merged["verdict"], merged["group_problems"], merged["complete"]) == (
        f"slurm-soaktest-{job}", "clean", [], True)
    shards = {s["shard"]: s for s in merged["shards"]}
    assert sorted(shards) == list(range(SHARDS)) and not any(s["missing"] for s in shards.values())
    lost, requeued = shards[1]["attempts"]
    assert (lost["attempt"], lost["host"], lost["superseded"], lost["finished"]) == (0, dead, True, None)
    assert (requeued["attempt"], requeued["host"], requeued["superseded"]) == (1, task[1]["NodeList"], False)
    assert [len(shards[s]["attempts"]) for s in (0, 2)] == [1, 1]
    assert {v["name"]: (v["host"], v["shard"]) for v in merged["vms"]} == {
        f"tiny-{s}": (task[s]["NodeList"], s) for s in range(SHARDS)}
    counted = [a for s in merged["shards"] for a in s["attempts"] if not a["superseded"]]
    assert len(counted) == SHARDS and merged["vm_hours"] > 0
    assert merged["vm_hours"] == pytest.approx(sum(a["vm_hours"] for a in counted), abs=1e-3)
    text = subprocess.run([soak, "summary", str(group), "--no-history"], capture_output=True, text=True,
                          timeout=120, check=False).stdout
    assert "superseded" in text and "did not finish" in text and dead in text and "Verdict: clean" in text
