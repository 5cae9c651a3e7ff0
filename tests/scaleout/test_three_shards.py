"""Three real `soak run --shard i/3` on loopback, one real Prometheus finding them by file_sd.

Each shard boots its one tiny TCG guest and serves /metrics on its own port;
Prometheus discovers the three through the file_sd job of the shipped
``grafana/prometheus/scrape-example.yml``. Every dashboard query, taken with
every variable at "All", must then see the whole fleet: all three hosts, all
three shards, all three VMs; the variables list them; picking one host narrows
to it. When the shards stop (SIGTERM), each pushes its final figures: three
Pushgateway groups, one per shard, none overwritten.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from soak import events as ev
from soak.journal import read_journal
from tests.metrics.promql import POSSIBLY_EMPTY, SCRAPE_EXAMPLE, dashboard_exprs, substitute
from tests.metrics.servers import (
    PROMETHEUS,
    PUSHGATEWAY,
    Prometheus,
    prometheus,
    pushgateway,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
SHARDS = 3
HOSTS = {f"h{i}" for i in range(SHARDS)}
FLEET = {f"tiny-{i}" for i in range(SHARDS)}
GROUP = "three"
METRICS_LINE = re.compile(r"metrics: http://(\S+?)/metrics")

pytestmark = [pytest.mark.qemu, pytest.mark.prometheus, pytest.mark.timeout(600)]

PROFILE = """\
    [run]
    name = "three"
    duration = "10m"          # stopped by the test (SIGTERM) once Prometheus has seen enough
    seed = 3
    accel = "tcg"

    [watch]
    boot_timeout = "150s"
    hang_timeout = "30s"
    sample_interval = "2s"
    shutdown_timeout = "10s"

    [restart]
    policy = "never"

    [[group]]
    name = "tiny"
    count = 3
    vcpus = 1
    memory = "128M"
"""

FLEET_WIDE = {
    "soak-overview / VMs running / A": 3,
    "soak-overview / Boots / A": 3,
    "soak-run-group / Shards reporting / A": 3,
    "soak-run-group / VMs running / A": 3,
    "soak-run-group / Boots / A": 3,
}
"""Panels whose single number must count the whole fleet."""


class Shard:
    """One `soak run --shard` process and the lines it prints."""

    def __init__(self, index: int, profile: Path, root: Path, gateway: str) -> None:
        self.index = index
        self.process = subprocess.Popen(
            [sys.executable, "-m", "soak", "run", str(profile), "--shard", f"{index}/{SHARDS}",
             "--host", f"h{index}", "--run-group", GROUP, "--runs-root", str(root),
             "--metrics-listen", "127.0.0.1:0", "--pushgateway", f"http://{gateway}"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def target(self, timeout_s: float = 120) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
            if match := METRICS_LINE.search(line):
                return match.group(1)
        raise AssertionError(f"shard {self.index} printed no metrics URL:\n{''.join(self.seen)}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise


@pytest.fixture
def shards(tmp_path: Path) -> Iterator[tuple[list[Shard], str, Path]]:
    profile = tmp_path / "three.toml"
    profile.write_text(textwrap.dedent(PROFILE))
    with pushgateway(tmp_path) as gateway:
        started = [Shard(i, profile, tmp_path / "runs", gateway) for i in range(SHARDS)]
        try:
            yield started, gateway, tmp_path / "runs"
        finally:
            for shard in started:
                if shard.process.poll() is None:
                    shard.process.kill()
                    shard.process.wait(10)


def file_sd_job(path: Path) -> dict[str, Any]:
    """The shipped example's soak job, reading its targets from ``path``."""
    config = yaml.safe_load(SCRAPE_EXAMPLE.read_text())
    [job] = [dict(j) for j in config["scrape_configs"] if j["job_name"] == "soak"]
    job.pop("static_configs")
    job["file_sd_configs"] = [{**job["file_sd_configs"][0], "files": [str(path)]}]
    return job


def values(result: list[dict[str, Any]], label: str) -> set[str]:
    return {r["metric"][label] for r in result if label in r["metric"]}


def label_values(prom: Prometheus, definition: str) -> set[str]:
    """Grafana's ``label_values(selector, label)``, with every variable at "All"."""
    match = re.fullmatch(r"label_values\((.*), (\w+)\)", substitute(definition))
    assert match, definition
    selector, label = match.groups()
    return values(prom.query(f"group by ({label}) ({selector})"), label)


@pytest.mark.skipif(PROMETHEUS is None or PUSHGATEWAY is None, reason="scripts/bootstrap installs them")
def test_the_dashboards_see_the_whole_fleet_of_three_shards(
    shards: tuple[list[Shard], str, Path], tmp_path: Path
) -> None:
    started = time.monotonic()
    processes, gateway, runs = shards
    targets = [shard.target() for shard in processes]
    file_sd = tmp_path / "file-sd" / "soak-loopback.yml"
    file_sd.parent.mkdir()
    file_sd.write_text(yaml.safe_dump([{"targets": targets, "labels": {"lab": "loopback"}}]))
    with prometheus(tmp_path, {"pushgateway": [gateway]}, honor=("pushgateway",),
                    scrape_configs=(file_sd_job(file_sd),)) as prom:
        wait_until("three shards scraped", lambda: len(prom.query('up{job="soak"} == 1')) == SHARDS, 30)
        wait_until("every guest running",
                   lambda: prom.query('sum(soak_vms{job="soak", state="running"}) == 3'), 240)
        wait_until("15 scrapes of each shard", lambda: len(prom.query(
            'count_over_time(soak_run_elapsed_seconds{job="soak"}[1m]) >= 15')) == SHARDS, 60)

        unlabelled = prom.query('{job="soak", __name__!~"up|scrape_.+", host=""} '
                                'or {job="soak", __name__!~"up|scrape_.+", shard=""}')
        assert not unlabelled, f"series without host or shard: {unlabelled[:3]}"
        assert values(prom.query('soak_run_info{job="soak"}'), "lab") == {"loopback"}  # file_sd's label

        per_host = per_vm = fleet_wide = 0
        for key, expr in dashboard_exprs():
            result = prom.query(substitute(expr))
            if not result:
                assert key in POSSIBLY_EMPTY, f"no data for {key}"
                continue
            if "host" in result[0]["metric"]:
                assert values(result, "host") == HOSTS, f"{key} misses hosts: {values(result, 'host')}"
                per_host += 1
            if "vm" in result[0]["metric"]:
                assert values(result, "vm") == FLEET, f"{key} misses VMs: {values(result, 'vm')}"
                per_vm += 1
            if key in FLEET_WIDE:
                assert float(result[0]["value"][1]) == FLEET_WIDE[key], (key, result)
                fleet_wide += 1
        print(f"\nqueries with every host: {per_host}, every VM: {per_vm}, fleet-wide counts: {fleet_wide}")
        assert per_host >= 15 and per_vm >= 15 and fleet_wide == len(FLEET_WIDE)

        for path in sorted((REPO / "grafana" / "dashboards").glob("*.json")):
            for variable in yaml.safe_load(path.read_text())["templating"]["list"]:
                if variable["type"] != "query":
                    continue
                found = label_values(prom, variable["definition"])
                expected = {"host": HOSTS, "shard": {"0", "1", "2"}, "vm": FLEET, "run_group": {GROUP},
                            "instance": set(targets)}
                if variable["name"] in expected:
                    assert found >= expected[variable["name"]], (path.name, variable["name"], found)

        one_host = 'sum(soak_vms{job=~"soak", host=~"h1", shard=~".*", instance=~".*", state="running"})'
        assert float(prom.query(one_host)[0]["value"][1]) == 1, "picking a host narrows to its shard"

        codes = [shard.stop() for shard in processes]
        assert codes == [0, 0, 0], [shard.seen[-5:] for shard in processes]
        wait_until("three pushed shards scraped", lambda: len(prom.query(
            f'soak_run_info{{job="soak_final", run_group="{GROUP}"}}')) == SHARDS, 30)
        pushed = prom.query(f'soak_run_info{{job="soak_final", run_group="{GROUP}"}}')
        assert {(r["metric"]["instance"], r["metric"]["host"]) for r in pushed} == {
            (f"shard-{i}", f"h{i}") for i in range(SHARDS)}
        shards_pushed = dict(dashboard_exprs())["soak-run-group / Shards pushed / A"]
        assert values(prom.query(substitute(shards_pushed)), "host") == HOSTS

    for i in range(SHARDS):
        [run_dir] = (runs / f"three-{GROUP}").glob(f"shard-{i}-of-{SHARDS}-attempt-0")
        record = next(e for e in read_journal(run_dir / "journal.jsonl").events if isinstance(e, ev.RunStarted))
        assert (record.shard, record.shards, record.host, record.run_group) == (i, SHARDS, f"h{i}", GROUP)
        assert [vm.name for vm in record.vms] == [f"tiny-{i}"] and record.fleet_size == SHARDS
    print(f"\nthree shards: {time.monotonic() - started:.0f}s")
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _is_a_tiny_qemu(int(p))]


def _is_a_tiny_qemu(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return "qemu-system" in cmdline and "soak_vm=tiny-" in cmdline
