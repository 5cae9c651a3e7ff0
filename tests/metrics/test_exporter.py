"""The /metrics endpoint and the final push, over real sockets and a real Pushgateway."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from soak.errors import MetricsError
from soak.exporter import SelfCollector, parse_listen, push_final, serve_metrics, totals_registry
from soak.metrics import Metrics

from .scenario import every_event, finish
from .servers import PROMTOOL, PUSHGATEWAY, free_port, http_get, pushgateway


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    """A finished run of every event type, on ``registry``."""
    metrics = Metrics(registry, hang_timeout_s=20, clock=lambda: 1300.0)
    for event in [*every_event(1000.0), finish(1200.0)]:
        metrics.observe(event)
    return metrics


def test_port_zero_picks_a_free_port_and_serves_the_exposition(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    with serve_metrics(registry, "127.0.0.1:0") as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(server.url, timeout=5) as response:
            body = response.read().decode()
            assert response.headers["Content-Type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(body)}
    assert {"soak_vms", "soak_failures", "soak_vm_qemu_rss_bytes"} <= names


def test_close_frees_the_port_and_is_idempotent(registry: CollectorRegistry) -> None:
    server = serve_metrics(registry, "127.0.0.1:0")
    server.close()
    server.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", server.port))  # would raise EADDRINUSE if still served


def test_an_address_in_use_is_a_one_line_error_naming_it(registry: CollectorRegistry) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(MetricsError) as err:
            serve_metrics(registry, address)
    message = str(err.value)
    assert address in message and "in use" in message and "\n" not in message


@pytest.mark.parametrize(
    "listen", ["9464", "localhost", "127.0.0.1:", ":9464", "127.0.0.1:http", "127.0.0.1:70000"]
)
def test_a_malformed_address_is_an_error(listen: str) -> None:
    with pytest.raises(MetricsError, match="not host:port"):
        parse_listen(listen)


def test_an_unresolvable_host_is_an_error(registry: CollectorRegistry) -> None:
    with pytest.raises(MetricsError, match=r"no-such-host\.invalid:0"):
        serve_metrics(registry, "no-such-host.invalid:0")


def test_ipv6_addresses_are_bracketed(metrics: Metrics, registry: CollectorRegistry) -> None:
    assert parse_listen("[::1]:9464") == ("::1", 9464)
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = serve_metrics(registry, "[::1]:0")
    except MetricsError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with server:
        assert server.url == f"http://[::1]:{server.port}/metrics"
        assert "soak_vms" in http_get(server.url)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (scripts/bootstrap)")
def test_the_exposition_passes_promtool_check_metrics(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    with serve_metrics(registry, "127.0.0.1:0") as server:
        body = http_get(server.url)
    check = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_pushed_registry_holds_exactly_the_totals(metrics: Metrics) -> None:
    totals = metrics.totals()
    samples = _samples(totals_registry(totals))
    assert _as_totals_json(samples) == totals.to_json()
    assert not any("vm" in labels for _, labels, _ in samples)  # nothing per VM is pushed


@pytest.mark.skipif(PUSHGATEWAY is None, reason="prometheus-pushgateway is not installed")
def test_push_final_keeps_runs_of_other_profiles_and_replaces_its_own(
    metrics: Metrics, tmp_path: Path
) -> None:
    totals = metrics.totals()
    with pushgateway(tmp_path) as address:
        url = f"http://{address}"
        push_final(totals, url, grouping={"instance": "hostA", "profile": "smoke"})
        push_final(totals, url, grouping={"instance": "hostA", "profile": "nightly"})
        push_final(
            replace(totals, boots=99), url, grouping={"instance": "hostA", "profile": "smoke"}
        )
        body = http_get(f"{url}/metrics")
    boots = {
        s.labels["profile"]: s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
        if s.name == "soak_boots_total"
    }
    assert boots == {"smoke": 99, "nightly": totals.boots}
    pushed = [
        s
        for f in text_string_to_metric_families(body)
        for s in f.samples
        if s.name == "push_time_seconds"
    ]
    assert {s.labels["job"] for s in pushed} == {"soak_final"}


def test_push_to_a_closed_port_is_an_error_naming_the_url(metrics: Metrics) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MetricsError, match=f"cannot push final metrics to {url}"):
        push_final(metrics.totals(), url, grouping={"instance": "x", "profile": "y"}, timeout_s=2)


def test_push_to_a_bad_url_is_an_error(metrics: Metrics) -> None:
    with pytest.raises(MetricsError):
        push_final(metrics.totals(), "ftp://nowhere", timeout_s=1)


def _samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for f in registry.collect() for s in f.samples]


def _as_totals_json(samples: list[tuple[str, dict[str, str], float]]) -> dict[str, object]:
    """Read the totals back from pushed samples: the metric name of each JSON field."""
    by_name: dict[str, list[tuple[dict[str, str], float]]] = {}
    for name, labels, value in samples:
        by_name.setdefault(name, []).append((labels, value))
    ((info, _),) = by_name["soak_run_info"]

    def labelled(name: str, label: str) -> dict[str, int]:
        return {labels[label]: int(value) for labels, value in by_name.get(name, [])}

    return {
        "run_id": info["run_id"],
        "profile": info["profile"],
        "seed": int(info["seed"]),
        "accel": info["accel"],
        "version": info["version"],
        "start_timestamp_s": by_name["soak_run_start_timestamp_seconds"][0][1],
        "elapsed_s": by_name["soak_run_elapsed_seconds"][0][1],
        "vm_seconds": by_name["soak_run_vm_seconds_total"][0][1],
        "boots": int(by_name["soak_boots_total"][0][1]),
        "vms": labelled("soak_vms", "state"),
        "failures": labelled("soak_failures_total", "kind"),
        "expected_failures": labelled("soak_expected_failures_total", "kind"),
        "infra_problems": labelled("soak_infra_problems_total", "problem"),
        "faults_injected": labelled("soak_faults_injected_total", "fault"),
    }


def test_soaks_own_process_is_exported_with_the_identity_labels() -> None:
    registry = CollectorRegistry()
    registry.register(SelfCollector({"host": "lab-1", "shard": "2"}))
    samples = {s.name: s for f in text_string_to_metric_families(generate_latest(registry).decode())
               for s in f.samples}
    rss = samples["soak_process_resident_memory_bytes"]
    assert rss.value > 1 << 20 and rss.labels == {"host": "lab-1", "shard": "2"}
    assert "soak_process_open_fds" in samples
