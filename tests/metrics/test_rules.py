"""The alert rules and the scrape example: promtool's checks and unit tests, and what on-call reads."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from .promql import RULES, RULES_TEST, SCRAPE_EXAMPLE, alert_rules
from .servers import PROMTOOL

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (scripts/bootstrap installs prometheus)"
)

REQUIRED_ALERTS = {
    "SoakFailure",  # a failure of any kind
    "SoakVMHeartbeatMissing",  # a VM with no heartbeat past its timeout
    "SoakQemuRSSGrowing",  # QEMU RSS growing steadily
    "SoakRunNotReporting",  # a run that stopped reporting
    "SoakScheduledRunNotPushed",  # a scheduled run that has not pushed for too long
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, check=False)


@needs_promtool
def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_scrape_example_is_a_valid_config_with_its_rules() -> None:
    result = promtool("check", "config", str(SCRAPE_EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(SCRAPE_EXAMPLE.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert not jobs["soak"].get("honor_labels")
    assert jobs["pushgateway"]["honor_labels"] is True  # keeps the pushed job/instance labels


def test_the_required_alerts_exist() -> None:
    assert {rule["alert"] for rule in alert_rules()} >= REQUIRED_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_every_alert_tells_on_call_what_happened_and_what_to_do(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert "{{ $labels.instance }}" in annotations["summary"]  # which run
    assert len(annotations["summary"]) < 120, "a summary fits a phone's notification"
    assert len(annotations["description"]) > 200, "say what it means and what to check"


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for rule in alert_rules():
        name = rule["alert"]
        outcomes = [bool(c["exp_alerts"]) for c in cases if c["alertname"] == name]
        assert True in outcomes, f"{name} is never tested firing"
        assert False in outcomes, f"{name} is never tested not firing"
        for case in cases:
            for alert in case["exp_alerts"] if case["alertname"] == name else []:
                assert set(alert["exp_annotations"]) == {"summary", "description"}, name
