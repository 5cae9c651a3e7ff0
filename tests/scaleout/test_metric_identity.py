"""A shard's series say which host and shard they come from; shards' pushes never collide."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from soak.exporter import default_grouping, push_final
from soak.metrics import Metrics
from soak.shard import Placement, Shard
from tests.metrics.scenario import every_event, finish
from tests.metrics.servers import PROMTOOL, PUSHGATEWAY, http_get, pushgateway

REPO = Path(__file__).resolve().parents[2]
PLACEMENT = Placement(Shard(2, 3), 1, "hv4", "slurm-lab-105", "slurm", "105_2")


def shard_metrics(placement: Placement = PLACEMENT, registry: CollectorRegistry | None = None) -> Metrics:
    """A finished run of every event type, as shard ``placement`` exports it."""
    metrics = Metrics(registry or CollectorRegistry(), hang_timeout_s=20, clock=lambda: 1300.0,
                      labels=placement.metric_labels(), run_info_labels=placement.run_info_labels())
    for event in [*every_event(1000.0), finish(1200.0)]:
        metrics.observe(event)
    return metrics


def exposition() -> str:
    registry = CollectorRegistry()
    shard_metrics(registry=registry)
    return generate_latest(registry).decode()


def test_every_series_carries_host_and_shard_and_run_info_the_run_group() -> None:
    text = exposition()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    assert len(samples) > 50
    for sample in samples:
        assert (sample.labels.get("host"), sample.labels.get("shard")) == ("hv4", "2"), sample
    [info] = [s for s in samples if s.name == "soak_run_info"]
    assert info.labels["run_group"] == "slurm-lab-105"
    assert (info.labels["shards"], info.labels["attempt"]) == ("3", "1")
    assert any(s.name == "soak_vm_info" for s in samples)
    assert not any("run_group" in s.labels for s in samples if s.name != "soak_run_info")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (scripts/bootstrap)")
def test_the_labelled_exposition_passes_promtool() -> None:
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition(),
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_sharded_runs_group_their_push_by_shard_not_host() -> None:
    totals = shard_metrics().totals()
    assert default_grouping(totals, shard=2) == {"instance": "shard-2", "profile": "smoke", "shard": "2"}
    assert set(default_grouping(totals)) == {"instance", "profile"}  # unsharded: as before


@pytest.mark.skipif(PUSHGATEWAY is None, reason="prometheus-pushgateway is not installed")
def test_shards_pushing_from_one_host_do_not_overwrite_each_other(tmp_path: Path) -> None:
    with pushgateway(tmp_path) as address:
        for index in range(3):
            placement = Placement(Shard(index, 3), 0, "same-host", "g1")
            metrics = shard_metrics(placement)
            totals = metrics.totals()
            push_final(totals, f"http://{address}", grouping=default_grouping(totals, shard=index),
                       labels=metrics.labels, run_info_labels=metrics.run_info_labels)
        # A later run of shard 1 on another host replaces shard 1's group, and only it.
        again = shard_metrics(Placement(Shard(1, 3), 0, "other-host", "g2"))
        push_final(again.totals(), f"http://{address}", grouping=default_grouping(again.totals(), shard=1),
                   labels=again.labels, run_info_labels=again.run_info_labels)
        body = http_get(f"http://{address}/metrics")
    infos = [s for f in text_string_to_metric_families(body) for s in f.samples if s.name == "soak_run_info"]
    groups = {s.labels["shard"]: (s.labels["instance"], s.labels["host"], s.labels["run_group"]) for s in infos}
    assert groups == {"0": ("shard-0", "same-host", "g1"), "1": ("shard-1", "other-host", "g2"),
                      "2": ("shard-2", "same-host", "g1")}
    assert len(infos) == 3


def test_the_file_sd_example_lists_targets_without_soak_s_own_labels() -> None:
    config = yaml.safe_load((REPO / "grafana" / "prometheus" / "scrape-example.yml").read_text())
    [soak] = [job for job in config["scrape_configs"] if job["job_name"] == "soak"]
    [file_sd] = soak["file_sd_configs"]
    files = [p for pattern in file_sd["files"]
             for p in (REPO / "grafana" / "prometheus").glob(pattern)]
    assert files, "the example's file_sd pattern matches no example file"
    for path in files:
        for group in yaml.safe_load(path.read_text()):
            assert group["targets"] and all(":" in t for t in group["targets"])
            assert not {"host", "shard", "instance", "job"} & set(group.get("labels", {}))
