"""Folding journals: one `RunModel` per journal, streamed (constant memory however long the run).

Several journals (the shards of one run on several hosts, the attempts of a
shard) are loaded each into its own model; ``soak.runmodel.merge`` and
`verdict.combined_facts` combine them. A model never mixes two journals, so VM
names that repeat across attempts cannot collide.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from soak.events import Event
from soak.journal import JournalReading
from soak.runmodel.model import RunModel


def replay(events: Iterable[Event], *, detail: bool = False) -> RunModel:
    """A fresh model with every event folded in (a journal's, or a test's hand-written list)."""
    model = RunModel(detail=detail)
    for event in events:
        model.apply(event)
    return model


@dataclass
class LoadedRun:
    """One journal, folded."""

    journal: Path
    model: RunModel
    torn_tail: bool = False
    """The journal's last line was cut short (soak was killed while writing it)."""
    skipped_records: int = 0
    """Records that were unreadable or failed validation, skipped (see ``soak.journal``)."""


def load_run(journal: Path, *, detail: bool = False) -> LoadedRun:
    """Fold the journal at ``journal`` (finished, running or crashed run).

    :raise FileNotFoundError: no journal there.
    """
    reading = JournalReading(journal)
    model = replay(reading.events(), detail=detail)
    return LoadedRun(journal, model, reading.torn_tail, reading.skipped)


def load_runs(journals: Iterable[Path], *, detail: bool = False) -> list[LoadedRun]:
    """Fold several journals, each into its own model, in the order given.

    :raise FileNotFoundError: one of them is missing.
    """
    return [load_run(journal, detail=detail) for journal in journals]
