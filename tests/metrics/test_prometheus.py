"""A real Prometheus scrapes a live soak endpoint; every dashboard and alert query must answer.

Two live sources: a run played in real time by `LiveFeeder` (always), and a
real ``soak run`` of the smoke profile (with QEMU). Every expression of every
dashboard panel and alert rule is run against the scraped data and must
return samples, unless `POSSIBLY_EMPTY` says why it may not. Expressions are
taken with Grafana's "All" (``.*``) and ``$__rate_interval`` = 30 s.
"""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from soak.exporter import push_final, serve_metrics
from soak.journal import read_journal
from soak.metrics import Metrics, totals_from_events
from soak.recorder import Recorder

from .promql import POSSIBLY_EMPTY, REPO, RULES, all_exprs, rule_exprs, substitute
from .scenario import LiveFeeder
from .servers import (
    PROMETHEUS,
    PUSHGATEWAY,
    Prometheus,
    http_get,
    prometheus,
    pushgateway,
    wait_until,
)

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        PROMETHEUS is None or PUSHGATEWAY is None,
        reason="prometheus and prometheus-pushgateway are not installed (scripts/bootstrap)",
    ),
]

FIRING_IN_THE_PLAYED_RUN = {
    "alert SoakFailure": "big-0 oopses every 4 s",
    "alert SoakVMHeartbeatMissing": "big-1 never beats, past a 2 s hang timeout",
    "alert SoakQemuRSSGrowing": "small-0's QEMU grows 2 MiB/s",
    "alert SoakScheduledRunFailed": "the pushed figures hold a failure",
}
"""Alert conditions the played run is built to meet: proof the rules match real series."""


def run_every_query(prom: Prometheus) -> dict[str, list[object]]:
    results = {key: prom.query(substitute(expr)) for key, expr in all_exprs()}
    empty = sorted(
        key for key, result in results.items() if not result and key not in POSSIBLY_EMPTY
    )
    assert not empty, f"no data for: {empty}"
    return results


def wait_for_samples(prom: Prometheus, n: int) -> None:
    """Until ``n`` scrapes of the live run are in, so 30 s rates have points to work on."""
    wait_until(
        f"{n} scrapes",
        lambda: any(
            float(r["value"][1]) >= n
            for r in prom.query('count_over_time(soak_run_elapsed_seconds{job="soak"}[1m])')
        ),
        timeout_s=60,
    )


def test_every_query_answers_on_a_played_run(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, hang_timeout_s=2.0)
    feeder = LiveFeeder(Recorder([metrics]))
    server = serve_metrics(registry, "127.0.0.1:0")
    try:
        with pushgateway(tmp_path) as gateway:
            feeder.start()
            time.sleep(2.5)  # big-0's first oops is at 2 s: a scheduled run with a failure
            push_final(
                metrics.totals(),
                f"http://{gateway}",
                grouping={"instance": "nightly-host", "profile": "smoke"},
            )
            jobs = {"soak": [f"127.0.0.1:{server.port}"], "pushgateway": [gateway]}
            with prometheus(tmp_path, jobs, rule_files=(RULES,), honor=("pushgateway",)) as prom:
                prom.wait_up("soak")
                prom.wait_up("pushgateway")
                wait_for_samples(prom, 6)
                assert feeder.is_alive(), feeder.error

                results = run_every_query(prom)

                silent = sorted(k for k in FIRING_IN_THE_PLAYED_RUN if not results[k])
                assert not silent, f"alert conditions not met: {silent}"
                wait_until(
                    "SoakFailure firing in Prometheus",
                    lambda: prom.query('ALERTS{alertname="SoakFailure", alertstate="firing"}'),
                )
                server.close()  # soak dies before its deadline
                not_reporting = substitute(dict(rule_exprs())["alert SoakRunNotReporting"])
                wait_until("SoakRunNotReporting's condition", lambda: prom.query(not_reporting))
    finally:
        feeder.stop()
        server.close()
    assert feeder.error is None


def _soak_run_serves_metrics() -> bool:
    """Whether ``soak run`` is wired to serve /metrics yet (it prints ``metrics: URL``)."""
    sources = [REPO / "soak" / "cli" / "run.py", REPO / "soak" / "session.py"]
    return any(p.exists() and "serve_metrics" in p.read_text() for p in sources)


METRICS_LINE = re.compile(r"metrics: (http://(\S+?)/metrics)")


@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.skipif(
    not _soak_run_serves_metrics(), reason="soak run does not serve /metrics yet (issue 5 wiring)"
)
def test_every_query_answers_on_a_real_soak_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pushgateway(tmp_path) as gateway:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "soak",
                "run",
                "profiles/smoke.toml",
                "--duration",
                "60s",
                "--metrics-listen",
                "127.0.0.1:0",
                "--pushgateway",
                f"http://{gateway}",
                "--run-dir",
                str(run_dir),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines = _lines_of(process)
        try:
            target = _wait_for_metrics_line(lines, process)
            jobs = {"soak": [target], "pushgateway": [gateway]}
            with prometheus(tmp_path, jobs, rule_files=(RULES,), honor=("pushgateway",)) as prom:
                prom.wait_up("soak")
                wait_until(
                    "a running VM",
                    lambda: prom.query('sum(soak_vms{job="soak", state="running"}) > 0'),
                    timeout_s=120,
                )
                wait_for_samples(prom, 15)
                run_every_query(prom)
            assert process.wait(timeout=240) in (0, 1), _tail(lines)
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(60)
        pushed = text_string_to_metric_families(http_get(f"http://{gateway}/metrics"))
        pushed_boots = [s.value for f in pushed for s in f.samples if s.name == "soak_boots_total"]
    journal = read_journal(run_dir / "journal.jsonl")
    assert pushed_boots == [totals_from_events(journal.events).boots]


def _lines_of(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for_metrics_line(lines: queue.Queue[str | None], process: subprocess.Popen[str]) -> str:
    seen: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if match := METRICS_LINE.search(line):
            return match.group(2)
    raise AssertionError(
        f"soak run printed no 'metrics: URL' line (rc={process.poll()}):\n{''.join(seen)}"
    )


def _tail(lines: queue.Queue[str | None]) -> str:
    out: list[str] = []
    while not lines.empty():
        out.append(lines.get() or "")
    return "".join(out[-40:])
