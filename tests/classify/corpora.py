"""Where the corpora live, and how their rows are read.

They are vendored in ``tests/data/corpora`` (a copy of the project's shared corpora, with
their README and licence notes), so a fresh clone runs these tests instead of skipping them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

CORPORA = Path(__file__).resolve().parents[1] / "data" / "corpora"
SYZKALLER_DEV = CORPORA / "syzkaller-linux" / "dev.jsonl"
GUEST_FAULTS = CORPORA / "guest-faults"


@dataclass(frozen=True)
class Row:
    id: str
    title: str | None
    alt: tuple[str, ...]
    type: str
    corrupted: bool
    log: str


def dev_rows() -> list[Row]:
    """The syzkaller dev rows, their expected-report tails cut off."""
    if not SYZKALLER_DEV.is_file():
        pytest.skip(f"syzkaller corpus not found at {SYZKALLER_DEV}")
    rows = []
    with SYZKALLER_DEV.open(encoding="utf-8") as file:
        for line in file:
            raw = json.loads(line)
            log = raw["log"]
            cut = log.find("\n\nREPORT:\n")
            rows.append(
                Row(
                    id=raw["id"],
                    title=raw["title"] or None,
                    alt=tuple(raw["alt"] or ()),
                    type=raw["type"] or "",
                    corrupted=bool(raw["corrupted"]),
                    log=log if cut == -1 else log[:cut],
                )
            )
    return rows


def guest_labels() -> dict[str, dict[str, object]]:
    labels = GUEST_FAULTS / "labels.json"
    if not labels.is_file():
        pytest.skip(f"guest-faults corpus not found at {GUEST_FAULTS}")
    data: dict[str, dict[str, object]] = json.loads(labels.read_text())
    return data
