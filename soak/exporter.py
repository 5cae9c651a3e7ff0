"""Serving ``/metrics`` while a run is live, and pushing its final figures when it ends.

The endpoint is prometheus_client's threaded HTTP server on an injected
registry. The push sends only the run totals (`RunTotals`), never per-VM
series: a Pushgateway keeps every group until it is deleted, so per-VM series
of past runs would linger there for ever.

Push grouping: ``job`` (default ``soak_final``, apart from the live scrape job
so dashboards never add a run's pushed totals to its scraped ones) plus
``instance`` = host name and ``profile`` = profile name. Each push replaces
its group (HTTP PUT), so the last run of a profile on a host is kept and runs
of other profiles or hosts are untouched. A shard of a sharded run pushes
under ``instance`` = ``shard-I`` and ``shard`` = ``I`` instead of its host:
shards never overwrite each other, and the groups stay one per shard of a
profile however the engine places shards on hosts from night to night (a key
with the host would leave a stale group for every host a shard ever ran on).
The host that ran it is a label of the pushed series (`with_identity`).
The gateway adds ``push_time_seconds`` to each group, which the
"has not pushed for too long" alert watches.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import ProcessCollector, push_to_gateway, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from soak.errors import MetricsError
from soak.metrics.families import run_families, with_identity
from soak.metrics.views import RunTotals

DEFAULT_LISTEN = "127.0.0.1:9464"
PUSH_JOB = "soak_final"


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) into its parts.

    :raise MetricsError: not of that form, or the port is not 0-65535.
    """
    host, sep, port_text = listen.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise MetricsError(
            f"metrics address {listen!r} is not host:port (e.g. 127.0.0.1:9464, port 0 = any)"
        )
    return host, int(port_text)


class SelfCollector(Collector):
    """soak's own process (``soak_process_resident_memory_bytes``, CPU, fds), labelled like every
    other series: its memory is bounded by design, and this is how a user sees it stay so."""

    def __init__(self, labels: Mapping[str, str]) -> None:
        self._process = ProcessCollector(namespace="soak", registry=None)
        self._labels = dict(labels)

    def collect(self) -> Iterable[Metric]:
        return with_identity(self._process.collect(), self._labels)


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint; `close` stops it (idempotent)."""

    host: str
    port: int
    """The actual port, also when port 0 was asked for."""
    _server: WSGIServer = field(repr=False)
    _thread: Thread = field(repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_metrics(registry: Collector, listen: str = DEFAULT_LISTEN) -> MetricsServer:
    """Serve ``registry`` at ``http://listen/metrics`` from a daemon thread.

    :raise MetricsError: bad address, address in use, or not allowed to bind.
    """
    host, port = parse_listen(listen)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:  # EADDRINUSE, EACCES, EADDRNOTAVAIL, gaierror for a bad host
        reason = exc.strerror or str(exc)
        raise MetricsError(f"cannot serve metrics on {listen}: {reason}") from exc
    return MetricsServer(host, server.server_port, server, thread)


def totals_registry(
    totals: RunTotals,
    labels: Mapping[str, str] | None = None,
    run_info_labels: Mapping[str, str] | None = None,
) -> CollectorRegistry:
    """A registry holding only the run totals, labelled like the live series: what is pushed."""
    registry = CollectorRegistry()
    registry.register(_TotalsCollector(totals, labels or {}, run_info_labels or {}))
    return registry


def default_grouping(totals: RunTotals, *, shard: int | None = None) -> dict[str, str]:
    """The grouping key that keeps runs of different hosts, profiles and shards apart.

    :param shard: the shard index of a sharded run (``None``: not sharded).
    """
    if shard is None:
        return {"instance": socket.gethostname(), "profile": totals.profile}
    return {"instance": f"shard-{shard}", "profile": totals.profile, "shard": str(shard)}


def push_final(
    totals: RunTotals,
    url: str,
    *,
    job: str = PUSH_JOB,
    grouping: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    run_info_labels: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> None:
    """Replace this run's group on the Pushgateway at ``url`` with its final totals.

    :param labels: on every pushed series (the live ones have them too: `Metrics.labels`).
    :raise MetricsError: the gateway cannot be reached in time or refuses the push.
    """
    key = dict(default_grouping(totals) if grouping is None else grouping)
    registry = totals_registry(totals, labels, run_info_labels)
    try:
        push_to_gateway(url, job=job, registry=registry, grouping_key=key, timeout=timeout_s)
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        raise MetricsError(f"cannot push final metrics to {url}: {exc}") from exc


class _TotalsCollector(Collector):
    def __init__(
        self, totals: RunTotals, labels: Mapping[str, str], run_info_labels: Mapping[str, str]
    ) -> None:
        self._totals = totals
        self._labels = labels
        self._run_info_labels = run_info_labels

    def collect(self) -> Iterable[Metric]:
        return with_identity(run_families(self._totals), self._labels, self._run_info_labels)
