"""Prometheus metrics of a run, fed only by the run events (see ``soak.events``).

- `Metrics`: the observer; register it with the run's `Recorder`.
- `RunTotals`: the final figures, pushed to a Pushgateway and kept in the summary JSON.
- ``soak.exporter``: serving ``/metrics`` and the final push.
"""

from soak.metrics.model import RunModel, RunTotals, VmState, totals_from_events
from soak.metrics.observer import Metrics

__all__ = ["Metrics", "RunModel", "RunTotals", "VmState", "totals_from_events"]
