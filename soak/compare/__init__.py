"""`soak compare`: performance parity of two runs of one profile (QEMU A vs B, kernel A vs B, TCG vs KVM).

Usage::

    result = compare_runs(load_compared(path_a), load_compared(path_b), Settings())
    result.verdict         # "regressed" | "improved" | "parity" | "inconclusive"
    result.exit_code       # 1 when a row is slower beyond the threshold, else 0
    result.rows            # Row per metric and key, each with ratio B/A, interval, verdict
    result.only_a / only_b # failure signatures one side has and the other does not
    result.to_json()

Both runs are folded with ``detail=True`` (``soak.runmodel``) and their
per-run samples compared (``rows``) with a seeded bootstrap (``bootstrap``);
``render`` prints the table. Runs of different profiles are refused unless
forced: their shapes and loads need not match.

Samples are pooled per key, as if independent: a VM that is slow for a
reason of its own (a busy host core) weighs on its key through all its
samples. The minimum effect (5% by default) is the guard against that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soak.compare.rows import FASTER, FEW, SLOWER, Row, Settings, compare_rows
from soak.errors import UsageError
from soak.journal import JOURNAL_NAME
from soak.runmodel import LoadedRun, load_run

REGRESSED, IMPROVED, PARITY, INCONCLUSIVE = "regressed", "improved", "parity", "inconclusive"


@dataclass(frozen=True, slots=True)
class RunLabel:
    """Which run a side is, as the table heads it."""

    path: str
    run_id: str
    profile: str
    accel: str
    qemu_version: str
    version: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "run_id": self.run_id, "profile": self.profile, "accel": self.accel,
                "qemu_version": self.qemu_version, "version": self.version}


@dataclass(frozen=True, slots=True)
class OneSided:
    """A failure signature found in one run only."""

    kind: str
    title: str
    count: int
    expected: int

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title, "count": self.count, "expected": self.expected}


@dataclass(frozen=True, slots=True)
class Comparison:
    a: RunLabel
    b: RunLabel
    settings: Settings
    rows: list[Row]
    only_a: list[OneSided]
    only_b: list[OneSided]

    @property
    def verdict(self) -> str:
        verdicts = {row.verdict for row in self.rows}
        if SLOWER in verdicts:
            return REGRESSED
        if FASTER in verdicts:
            return IMPROVED
        return PARITY if verdicts - {FEW} else INCONCLUSIVE

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict == REGRESSED else 0

    def to_json(self) -> dict[str, Any]:
        s = self.settings
        return {
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "settings": {"confidence": s.confidence, "min_effect": s.min_effect, "min_samples": s.min_samples,
                         "resamples": s.resamples, "seed": s.seed},
            "rows": [row.to_json() for row in self.rows],
            "only_a": [f.to_json() for f in self.only_a],
            "only_b": [f.to_json() for f in self.only_b],
        }


def load_compared(path: Path) -> LoadedRun:
    """A run directory (or its journal) folded with detail.

    :raise UsageError: no journal there.
    """
    journal = path / JOURNAL_NAME if path.is_dir() else path
    try:
        return load_run(journal, detail=True)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise UsageError(f"{path}: no {JOURNAL_NAME} here: is it a soak run directory?") from None


def compare_runs(a: LoadedRun, b: LoadedRun, settings: Settings | None = None, *,
                 force: bool = False) -> Comparison:
    """Run B against run A.

    :raise UsageError: the runs are of different profiles (unless ``force``), or a journal
        has no run-started record to tell its profile.
    """
    settings = settings or Settings()
    label_a, label_b = _label(a), _label(b)
    if not force:
        for label in (label_a, label_b):
            if not label.profile:
                raise UsageError(f"{label.path}: no run-started record, so its profile is unknown "
                                 "(--force to compare anyway)")
        if label_a.profile != label_b.profile:
            raise UsageError(f"runs of different profiles ({label_a.profile!r} and {label_b.profile!r}): "
                             "compare needs two runs of one profile (--force to compare anyway)")
    detail_a, detail_b = a.model.detail, b.model.detail
    if detail_a is None or detail_b is None:
        raise ValueError("compare needs models folded with detail=True")
    rows = compare_rows(detail_a.samples, detail_b.samples, settings)
    keys_a = {key: g for key, g in a.model.signatures.groups.items() if g.count}
    keys_b = {key: g for key, g in b.model.signatures.groups.items() if g.count}
    only_a = [OneSided(g.kind, g.title, g.count, g.expected) for key, g in keys_a.items() if key not in keys_b]
    only_b = [OneSided(g.kind, g.title, g.count, g.expected) for key, g in keys_b.items() if key not in keys_a]
    return Comparison(label_a, label_b, settings, rows, only_a, only_b)


def _label(loaded: LoadedRun) -> RunLabel:
    run = loaded.model.run
    path = str(loaded.journal.parent)
    if run is None:
        return RunLabel(path, "", "", "", "", "")
    return RunLabel(path, run.run_id, run.profile, run.accel, run.qemu_version, run.version)


__all__ = ["Comparison", "OneSided", "Row", "RunLabel", "Settings", "compare_runs", "load_compared"]
