"""Prometheus metrics of a run, rendered from the run model (see ``soak.runmodel``).

- `Metrics`: the observer; register it with the run's `Recorder`.
- `RunTotals`: the final figures, pushed to a Pushgateway and kept in the summary JSON.
- ``soak.exporter``: serving ``/metrics`` and the final push.
"""

from soak.metrics.observer import Metrics
from soak.metrics.views import RunTotals, run_totals, totals_from_events

__all__ = ["Metrics", "RunTotals", "run_totals", "totals_from_events"]
