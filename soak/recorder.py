"""Fan-out of run events to every observer (journal, metrics, live view).

The supervisor and its watchers call `Recorder.emit` once per event; observers
are synchronous and cheap (the journal only enqueues), so emitting never waits
on I/O and one slow observer cannot stall detection.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from soak.events import Event

log = logging.getLogger(__name__)


class Observer(Protocol):
    """Anything that wants to see every event of a run."""

    def observe(self, event: Event) -> None:
        """Take note of one event. Must not block and must not raise."""


class Recorder:
    """Delivers each event to each observer, in registration order."""

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self._observers: list[Observer] = list(observers)

    def add(self, observer: Observer) -> None:
        self._observers.append(observer)

    def emit(self, event: Event) -> None:
        for observer in self._observers:
            try:
                observer.observe(event)
            except Exception:  # an observer bug must not stop the run or other observers
                log.exception("observer %r failed on %s", observer, event.type)
