"""The PromQL soak ships (dashboard panels, alert rules), found and prepared for checking.

`POSSIBLY_EMPTY` is the one list of expressions allowed to return no data
against a live run, each with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RULES = GRAFANA / "prometheus" / "rules" / "soak-alerts.yml"
RULES_TEST = GRAFANA / "prometheus" / "rules" / "soak-alerts.test.yml"
SCRAPE_EXAMPLE = GRAFANA / "prometheus" / "scrape-example.yml"

EXTERNAL_METRICS = frozenset({"up", "push_time_seconds"})
"""Series Prometheus (``up``) and the Pushgateway (``push_time_seconds``) add, not soak."""

_CLEAN = "empty while the run has none of these (a clean run)"
_NO_FAULTS = "empty when the profile injects no faults"
_NO_PUSH = "empty until a scheduled run pushed its final figures to a scraped Pushgateway"
_NO_DEVICES = "empty unless the profile gives its VMs disks or a network (the played run does)"
_CONDITION = "an alert condition: empty unless the alert is firing"
POSSIBLY_EMPTY: dict[str, str] = {
    "soak-overview / Failures by kind / A": _CLEAN,
    "soak-overview / Faults injected / A": _NO_FAULTS,
    "soak-failures / Failures by kind / A": _CLEAN,
    "soak-failures / Failures over time / A": _CLEAN,
    "soak-failures / Failures by VM / A": _CLEAN,
    "soak-failures / Expected failures / A": _CLEAN,
    "soak-failures / Faults injected / A": _NO_FAULTS,
    "soak-failures / Infrastructure problems / A": "empty while soak's machinery has no problem",
    "soak-failures / Last push of each scheduled run / A": _NO_PUSH,
    "soak-failures / Failures in the last pushed run / A": _NO_PUSH,
    "soak-vm / Workload throughput / A": "empty until the guest reports stress-ng figures",
    "soak-vm / Verified device traffic / A": _NO_DEVICES,
    "soak-vm / Device requests and network drops / A": _NO_DEVICES,
    "soak-vm / Device requests and network drops / B": _NO_DEVICES,
    "soak-run-group / Failures by shard / A": _CLEAN,
    "soak-run-group / Shards pushed / A": _NO_PUSH,
    "soak-run-group / Failures in pushed shards / A": _NO_PUSH,
    "alert SoakFailure": _CONDITION,
    "alert SoakVMHeartbeatMissing": _CONDITION,
    "alert SoakQemuRSSGrowing": _CONDITION,
    "alert SoakSelfMemoryHigh": _CONDITION,
    "alert SoakRunNotReporting": _CONDITION,
    "alert SoakScheduledRunNotPushed": _CONDITION,
    "alert SoakScheduledRunFailed": _CONDITION,
}

BUILTIN_VARIABLES = frozenset({"__rate_interval", "__interval", "__range", "__interval_ms"})
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "Inf", "NaN"}
)


def load_dashboard(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    """``("uid / panel title / refId", expr)`` for every target of every dashboard."""
    for path in DASHBOARDS:
        dashboard = load_dashboard(path)
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                yield f"{dashboard['uid']} / {panel['title']} / {target['refId']}", target["expr"]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def rule_exprs() -> Iterator[tuple[str, str]]:
    for rule in alert_rules():
        name = f"alert {rule['alert']}" if "alert" in rule else f"record {rule['record']}"
        yield name, rule["expr"]


def all_exprs() -> list[tuple[str, str]]:
    return [*dashboard_exprs(), *rule_exprs()]


def substitute(expr: str, *, rate_interval: str = "30s") -> str:
    """Grafana's variables replaced the way a query of "All" would see them."""
    expr = expr.replace("$__rate_interval", rate_interval).replace("$__interval", "1s")
    return _VARIABLE.sub(".*", expr)


def variables(text: str) -> set[str]:
    return set(_VARIABLE.findall(text))


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (a small scanner, enough for our PromQL)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group() in _KEYWORDS:
            continue
        names.add(match.group())
    return names
