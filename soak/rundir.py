"""The run directory: where a run leaves everything a person needs to triage it.

Layout::

    RUN/
      journal.jsonl               every event (soak.journal)
      profile.toml                the profile as run
      summary.json, summary.txt   written at the end (soak summary can rebuild them)
      .soak-reserve               disk space held for the end of a run that fills its disk
      vms/VM/console.log          the serial console, all boots, with boot markers; within
                                  run.console_limit with console.NNNN.log and console.head-B.log
                                  (soak.vm.segments)
      vms/VM/qemu-stderr.log      QEMU's own messages
      vms/VM/failures/NNN-KIND/   evidence of one failure (see write_evidence); the first
                                  run.evidence_per_signature of each signature per VM
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soak.diskio import make_reserve
from soak.errors import UsageError
from soak.journal import JOURNAL_NAME

RESERVE_BYTES = 1 << 20
"""The journal's last records and the summary after a full disk: a few KiB to some 100 KiB."""


def default_run_dir(profile_name: str, base: Path = Path("runs")) -> Path:
    """``runs/NAME-YYYYmmdd-HHMMSS``, unique within the second, always directly under ``base``.

    The profile validates its run name; this does not rely on it: a name with
    ``/``, ``..``, control characters or a leading dot is flattened to a safe one.
    """
    name = _safe_name(profile_name)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = base / f"{name}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = base / f"{name}-{stamp}-{n}"
    return path


def find_journals(paths: Iterable[Path]) -> list[Path]:
    """The journals of the run directories at or below ``paths``, each once, in path order.

    A journal file is itself; a run directory (it holds a journal) is not searched
    further; any other folder is searched below, without following symbolic links
    (a group of shards: ``runs/NAME-GROUP/shard-I-of-N-attempt-K/``).

    :raise UsageError: a path that does not exist, or has no journal at or below it.
    """
    found: dict[Path, Path] = {}
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or directory")
        journals = [path] if path.is_file() else _journals_below(path)
        if not journals:
            raise UsageError(f"{path}: no {JOURNAL_NAME} here or below: is it a soak run directory, "
                             "or a folder holding some?")
        for journal in journals:
            found.setdefault(journal.resolve(), journal)
    return list(found.values())


def _journals_below(folder: Path) -> list[Path]:
    journals = []
    for where, dirs, files in os.walk(folder, onerror=_unreadable):
        if JOURNAL_NAME in files:
            journals.append(Path(where) / JOURNAL_NAME)
            dirs.clear()  # a run directory's own folders (VMs, evidence) hold no journal
        dirs.sort()
    return journals


def _unreadable(exc: OSError) -> None:
    raise UsageError(f"{exc.filename}: cannot read this folder: {exc.strerror}")


def _safe_name(name: str) -> str:
    """One path component of letters, digits, ``.``, ``-`` and ``_``; never empty, never hidden."""
    flat = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).lstrip(".-")[:64]
    return flat or "run"


@dataclass(frozen=True, slots=True)
class RunDir:
    root: Path

    @property
    def journal(self) -> Path:
        return self.root / JOURNAL_NAME

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "vms").mkdir(exist_ok=True)

    def make_reserve(self, size: int = RESERVE_BYTES) -> Path | None:
        """Hold ``size`` bytes for the end of the run (see soak.diskio.DiskAlarm); None if impossible."""
        return make_reserve(self.root, size)

    def vm_dir(self, vm: str) -> Path:
        path = self.root / "vms" / vm
        path.mkdir(parents=True, exist_ok=True)
        return path

    def console_log(self, vm: str) -> Path:
        return self.vm_dir(vm) / "console.log"

    def stderr_log(self, vm: str) -> Path:
        return self.vm_dir(vm) / "qemu-stderr.log"

    def new_failure_dir(self, vm: str, kind: str) -> Path:
        """A fresh ``failures/NNN-KIND`` folder for one failure of ``vm``."""
        base = self.vm_dir(vm) / "failures"
        base.mkdir(exist_ok=True)
        n = len(list(base.iterdir())) + 1
        while True:
            path = base / f"{n:03d}-{_slug(kind)}"
            try:
                path.mkdir()
                return path
            except FileExistsError:
                n += 1

    def relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:40] or "failure"


def write_evidence(folder: Path, files: Mapping[str, str | bytes], facts: Mapping[str, Any]) -> dict[str, OSError]:
    """Write the files of one failure's evidence plus ``failure.json`` with its facts.

    Each file is written on its own, so a crash in the middle keeps what was
    written, and a file the disk refuses (full, read-only) does not stop the
    others: smaller ones may still fit. A file cut short is removed.

    :return: the error of each file not written, by name (empty when all were).
    """
    missing: dict[str, OSError] = {}
    documents: dict[str, str | bytes] = {**files, "failure.json": json.dumps(facts, indent=2, default=str) + "\n"}
    for name, content in documents.items():
        target = folder / name
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o755 if name.endswith(".sh") else 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        except OSError as exc:
            missing[name] = exc
            with contextlib.suppress(OSError):
                target.unlink(missing_ok=True)
    return missing
