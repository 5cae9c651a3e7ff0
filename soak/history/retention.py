"""Retention of run directories: clean runs go sooner, runs with failures later, running runs never.

Each direct subdirectory of a root that holds a ``journal.jsonl`` is a run.
Its age is the time since its journal was last written (a run writes it at
least once a minute per VM while going: heartbeat samples). Its verdict comes
from its ``summary.json``, which soak writes only once the run has finished:

    clean (finished, verdict clean)      deleted when older than ``keep_clean``
    anything else: failures, soak error,
      crashed or unreadable              deleted when older than ``keep_failed``
    possibly running                     never: no summary.json, and its journal
                                         was written within the last hour or its
                                         planned end (start + duration) is less
                                         than an hour ago

The history store keeps what it recorded of a deleted run; only the evidence
files go.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from soak.journal import JOURNAL_NAME

ACTIVE_S = 3600.0
"""A run whose journal was written this recently, or whose planned end is this near, may be going."""


@dataclass(frozen=True, slots=True)
class Retention:
    keep_clean_s: float
    keep_failed_s: float

    def __post_init__(self) -> None:
        if self.keep_clean_s < ACTIVE_S or self.keep_failed_s < ACTIVE_S:
            raise ValueError("keep run directories at least 1h")
        if self.keep_failed_s < self.keep_clean_s:
            raise ValueError("runs with failures must be kept at least as long as clean ones")


@dataclass(frozen=True, slots=True)
class RunDirFate:
    path: Path
    verdict: str
    """``clean``, ``failures``, ``infra-error``, or ``unfinished`` (no summary.json)."""
    age_s: float
    action: Literal["delete", "keep", "running"]

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "verdict": self.verdict, "age_s": round(self.age_s), "action": self.action}


def plan(root: Path, retention: Retention, now: float | None = None) -> list[RunDirFate]:
    """What `apply` would do to each run directory under ``root``, by name."""
    now = time.time() if now is None else now
    fates = []
    for path in sorted(root.iterdir()):
        journal = path / JOURNAL_NAME
        if path.is_symlink() or not path.is_dir() or not journal.is_file():
            continue
        age = max(0.0, now - journal.stat().st_mtime)
        verdict = _finished_verdict(path)
        if verdict is None:
            running = age < ACTIVE_S or _planned_end(journal) > now - ACTIVE_S
            fates.append(RunDirFate(path, "unfinished", age, "running" if running else
                                    "delete" if age > retention.keep_failed_s else "keep"))
            continue
        keep = retention.keep_clean_s if verdict == "clean" else retention.keep_failed_s
        fates.append(RunDirFate(path, verdict, age, "delete" if age > keep else "keep"))
    return fates


def apply(fates: list[RunDirFate]) -> list[tuple[Path, str]]:
    """Delete the directories marked so; returns those that could not be deleted and why."""
    problems = []
    for fate in fates:
        if fate.action != "delete":
            continue
        try:
            shutil.rmtree(fate.path)
        except OSError as exc:
            problems.append((fate.path, exc.strerror or str(exc)))
    return problems


def _finished_verdict(run_dir: Path) -> str | None:
    """The verdict of a finished run (its summary.json), or None: unfinished, or unreadable."""
    try:
        data = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not data.get("complete"):
        return None
    verdict = data.get("verdict")
    return verdict if isinstance(verdict, str) else "unreadable"


def _planned_end(journal: Path) -> float:
    """Start plus duration from the journal's first record (the run-started one); 0 if unreadable."""
    try:
        with open(journal, encoding="utf-8", errors="replace") as f:
            first: Any = json.loads(f.readline(1 << 20))
        return float(first["t"]) + float(first["duration_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
