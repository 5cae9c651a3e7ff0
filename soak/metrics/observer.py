"""`Metrics`: the run's Prometheus view, an observer of the run events.

`observe` folds each event into its own `soak.runmodel.RunModel` (a few
attribute writes, no I/O); a collector registered on the injected registry
renders the model's views (``soak.metrics.views``) when Prometheus scrapes. Scrapes come from the HTTP server's thread, so one lock
guards the model: `observe` holds it for microseconds, a scrape only while it
copies the model (see bench/metrics.py for both with 100 VMs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from soak.events import Event
from soak.metrics.families import live_families, run_families, with_identity
from soak.metrics.views import RunTotals, Snapshot, run_totals, snapshot
from soak.runmodel import RunModel

log = logging.getLogger(__name__)


class Metrics:
    """Feeds a `RunModel` from events and exposes it on ``registry`` (an `Observer`)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        hang_timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
        labels: Mapping[str, str] | None = None,
        run_info_labels: Mapping[str, str] | None = None,
    ) -> None:
        """:param hang_timeout_s: the profile's ``watch.hang_timeout``, exported for alerts.
        :param clock: wall-clock seconds, the time base of event ``t`` fields.
        :param labels: on every series: the shard's ``host`` and ``shard`` (`with_identity`).
        :param run_info_labels: on ``soak_run_info`` only: ``run_group``, ``shards``, ``attempt``.
        """
        self.labels = dict(labels or {})
        self.run_info_labels = dict(run_info_labels or {})
        self.model = RunModel()
        self.hang_timeout_s = hang_timeout_s
        self.clock = clock
        self.lock = threading.Lock()
        self.errors = 0
        self._failed_types: set[str] = set()
        registry.register(_LiveCollector(self))

    def observe(self, event: Event) -> None:
        """Fold one event in. Never raises: a metrics bug must not disturb the run."""
        try:
            with self.lock:
                self.model.apply(event)
        except Exception:
            self.errors += 1
            if event.type not in self._failed_types:  # once per type: no log flood at 100 Hz
                self._failed_types.add(event.type)
                log.exception("metrics could not take %s event %r", event.type, event)

    def totals(self) -> RunTotals:
        """The run's totals now (final once `RunFinished` was observed)."""
        with self.lock:
            return run_totals(self.model, self.clock())


class _LiveCollector(Collector):
    """Renders the model at scrape time; registered once per `Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._vm_seconds_floor = 0.0

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        with m.lock:
            now = m.clock()
            totals = run_totals(m.model, now)
            # A VM's live seconds are counted to the scrape time, its closed seconds to its
            # stop event's time, which can be a little earlier: never let the counter go back.
            self._vm_seconds_floor = max(self._vm_seconds_floor, totals.vm_seconds)
            copy = snapshot(m.model)
            errors = m.errors
        # Rendering happens outside the lock: observe() on the event loop waits only for the copy.
        yield from with_identity(self._render(totals, copy, now, errors), m.labels, m.run_info_labels)

    def _render(self, totals: RunTotals, copy: Snapshot, now: float, errors: int) -> Iterator[Metric]:
        yield from run_families(_with_vm_seconds(totals, self._vm_seconds_floor))
        yield from live_families(copy, now, hang_timeout_s=self._metrics.hang_timeout_s)
        yield CounterMetricFamily(
            "soak_metrics_observe_errors",
            "Events the metrics failed to take (a soak bug; see the log).",
            value=errors,
        )


def _with_vm_seconds(totals: RunTotals, vm_seconds: float) -> RunTotals:
    return totals if totals.vm_seconds == vm_seconds else replace(totals, vm_seconds=vm_seconds)
