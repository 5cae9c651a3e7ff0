"""Structural checks of the Grafana dashboards and provisioning (no Grafana can run here).

Checked: the JSON model Grafana 10.4/11 loads without migration, unique ids
and titles, a grid without overlaps, the datasource variable everywhere,
variables defined and chained, every metric a soak exposition has, and the
PromQL parsed by promtool.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from soak.exporter import SelfCollector
from soak.metrics import Metrics

from .promql import (
    BUILTIN_VARIABLES,
    DASHBOARDS,
    EXTERNAL_METRICS,
    GRAFANA,
    POSSIBLY_EMPTY,
    all_exprs,
    load_dashboard,
    metric_names,
    panels,
    substitute,
    variables,
)
from .scenario import every_event
from .servers import PROMTOOL

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
"""Grafana 10.4 to 11.3 write 39; later versions migrate it forward on load."""
UNFILTERED = {
    "soak-failures / Last push of each scheduled run / A",
    "soak-failures / Failures in the last pushed run / A",
    "soak-run-group / Shards pushed / A",
    "soak-run-group / Failures in pushed shards / A",
}
"""Panels about scheduled runs on the Pushgateway, whatever the job and instance picked."""
RUN_GROUP = "soak-run-group"
"""The dashboard of one sharded run across hosts: filtered by run group, not by instance."""

DASHBOARD_IDS = [path.stem for path in DASHBOARDS]


@pytest.fixture(params=DASHBOARDS, ids=DASHBOARD_IDS)
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load_dashboard(request.param)


def soak_exposition_names() -> set[str]:
    """Every sample name a run with every event type exposes."""
    registry = CollectorRegistry()
    registry.register(SelfCollector({}))  # soak run exposes its own process too
    metrics = Metrics(registry, hang_timeout_s=20, clock=lambda: 1100.0)
    for event in every_event(1000.0):
        metrics.observe(event)
    text = generate_latest(registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_the_four_dashboards_are_there_with_unique_uids() -> None:
    uids = [load_dashboard(path)["uid"] for path in DASHBOARDS]
    assert sorted(uids) == ["soak-failures", "soak-overview", "soak-run-group", "soak-vm"]


def test_the_model_is_one_grafana_loads_without_migration(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] == SCHEMA_VERSION
    assert dashboard.get("id") is None  # a provisioned dashboard gets its id from Grafana
    assert "__inputs" not in dashboard  # only the UI import flow fills those in
    assert 0 < len(dashboard["uid"]) <= 40
    assert dashboard["title"].startswith("Soak / ")
    assert "soak" in dashboard["tags"]
    for key in ("time", "templating", "annotations", "panels", "refresh"):
        assert key in dashboard, key


def test_panel_ids_and_titles_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(dashboard)]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in panels(dashboard) if p["type"] != "row"]
    assert len(titles) == len(set(titles)), "titles name the panels in test reports and alerts"


def test_panels_sit_on_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert pos["w"] >= 1 and pos["h"] >= 1 and pos["x"] >= 0 and pos["y"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, f"{panel['title']} is wider than the 24-column grid"
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_panel_and_query_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    templating = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert templating["datasource"]["type"] == "datasource"
    assert templating["datasource"]["query"] == "prometheus"
    for variable in templating.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_variables_are_defined_before_use_and_chained(dashboard: dict[str, Any]) -> None:
    defined: set[str] = set(BUILTIN_VARIABLES)
    for variable in dashboard["templating"]["list"]:
        query = variable.get("definition", "")
        assert variables(query) <= defined, f"{variable['name']} uses {variables(query) - defined}"
        defined.add(variable["name"])
    chain = {v["name"]: v.get("definition", "") for v in dashboard["templating"]["list"]}
    assert "$job" in chain["profile"]
    if dashboard["uid"] == RUN_GROUP:
        assert "$profile" in chain["run_group"]
    else:  # job -> profile -> host -> shard -> instance (-> vm)
        assert "$profile" in chain["host"] and "$host" in chain["shard"] and "$shard" in chain["instance"]
    if "vm" in chain:
        assert "$instance" in chain["vm"]
    for panel in panels(dashboard):
        used = variables(panel["title"])
        for target in panel.get("targets", []):
            used |= variables(target["expr"]) | variables(target.get("legendFormat", ""))
        assert used <= defined, f"{panel['title']} uses undefined {used - defined}"


def test_every_query_is_filtered_by_the_picked_job_host_shard_and_instance(
    dashboard: dict[str, Any],
) -> None:
    selectors = ['host=~"$host"', 'shard=~"$shard"', 'instance=~"$instance"']
    if dashboard["uid"] == RUN_GROUP:
        selectors = ['run_group=~"$run_group"']
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            key = f"{dashboard['uid']} / {panel['title']} / {target['refId']}"
            if key in UNFILTERED:  # every job; the run group view still keeps to its run group
                wanted = selectors if dashboard["uid"] == RUN_GROUP else []
            else:
                wanted = ['job=~"$job"', *selectors]
            for selector in wanted:
                assert selector in target["expr"], f"{key} lacks {selector}"


def test_panels_say_what_they_show(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        if panel["type"] != "row":
            assert len(panel.get("description", "")) > 20, panel["title"]
            assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]


def test_every_metric_referenced_is_one_soak_exposes() -> None:
    exposed = soak_exposition_names() | EXTERNAL_METRICS
    for key, expr in all_exprs():
        unknown = metric_names(expr) - exposed
        assert not unknown, f"{key} uses {unknown}, which soak does not expose"
        assert metric_names(expr), f"{key}: no metric found in {expr!r}"


def test_possibly_empty_names_only_existing_expressions() -> None:
    keys = {key for key, _ in all_exprs()}
    assert set(POSSIBLY_EMPTY) <= keys, set(POSSIBLY_EMPTY) - keys
    assert len(keys) == len(all_exprs()), "expression keys must be unique"


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (scripts/bootstrap)")
def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:expr_{i}:check", "expr": substitute(expr, rate_interval="5m")}
        for i, (_, expr) in enumerate(all_exprs())
    ]
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_provisioning_points_grafana_at_prometheus_and_the_dashboards() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yaml").read_text())
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["uid"] and source["url"].startswith("http")
    assert source["jsonData"]["timeInterval"]  # $__rate_interval depends on it
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/soak.yaml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
