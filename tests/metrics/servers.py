"""Real Prometheus and Pushgateway processes on loopback, for the integration tests.

Each runs in a temporary directory (config, TSDB, log) and is always
terminated and waited for: a Prometheus left behind keeps its port and, if
not waited for, lingers as a zombie.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

PROMETHEUS = shutil.which("prometheus")
PUSHGATEWAY = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
PROMTOOL = shutil.which("promtool")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


def wait_until(what: str, check: Any, timeout_s: float = 30.0, every_s: float = 0.1) -> Any:
    """Poll ``check()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            last = check()
            if last:
                return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what} (last: {last!r})")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


class Prometheus:
    """A Prometheus scraping ``targets`` every second; `query` runs PromQL on it."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result vector of an instant query; raises with Prometheus's error on bad PromQL."""
        q = urllib.parse.urlencode({"query": expr})
        try:
            body = http_get(f"{self.url}/api/v1/query?{q}")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{expr!r}: {exc.read().decode()}") from exc
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def wait_up(self, job: str, timeout_s: float = 30.0) -> None:
        """Until a scrape of ``job`` succeeded (the first one comes 5-6 s after start)."""
        wait_until(
            f"up{{job={job!r}}} == 1 ({self.log.read_text()[-2000:]})",
            lambda: any(r["value"][1] == "1" for r in self.query(f'up{{job="{job}"}}')),
            timeout_s,
        )


@contextlib.contextmanager
def prometheus(
    tmp: Path,
    jobs: dict[str, list[str]],
    *,
    rule_files: tuple[Path, ...] = (),
    honor: tuple[str, ...] = (),
    scrape_configs: tuple[dict[str, Any], ...] = (),
) -> Iterator[Prometheus]:
    """Start Prometheus with one static job per ``jobs`` entry (``honor``: honor_labels),
    plus ``scrape_configs`` as they are (e.g. ``file_sd_configs`` jobs)."""
    assert PROMETHEUS, "prometheus is not installed"
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": job,
                "honor_labels": job in honor,
                "static_configs": [{"targets": targets}],
            }
            for job, targets in jobs.items()
        ]
        + list(scrape_configs),
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = tmp / "prometheus.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        server = Prometheus(f"http://127.0.0.1:{port}", log)
        wait_until("Prometheus ready", lambda: http_get(f"{server.url}/-/ready"), 15)
        yield server
    finally:
        _stop(process)


@contextlib.contextmanager
def pushgateway(tmp: Path) -> Iterator[str]:
    """Start a Pushgateway; yields its ``host:port``."""
    assert PUSHGATEWAY, "prometheus-pushgateway is not installed"
    address = f"127.0.0.1:{free_port()}"
    with open(tmp / "pushgateway.log", "wb") as log_file:
        process = subprocess.Popen(
            [
                PUSHGATEWAY,
                f"--web.listen-address={address}",
                # Debian's build persists to /var/lib/prometheus/pushgateway.data by default,
                # which would carry groups from one test (or one developer) to the next.
                f"--persistence.file={tmp / 'pushgateway.data'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        wait_until("Pushgateway ready", lambda: http_get(f"http://{address}/-/ready"), 15)
        yield address
    finally:
        _stop(process)
