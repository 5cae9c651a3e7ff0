"""The run directory: where a run leaves everything a person needs to triage it.

Layout::

    RUN/
      journal.jsonl               every event (soak.journal)
      profile.toml                the profile as run
      summary.json, summary.txt   written at the end (soak summary can rebuild them)
      vms/VM/console.log          the whole serial console, all boots, with boot markers
      vms/VM/qemu-stderr.log      QEMU's own messages
      vms/VM/failures/NNN-KIND/   evidence of one failure (see write_evidence)
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soak.journal import JOURNAL_NAME


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


def write_evidence(folder: Path, files: Mapping[str, str | bytes], facts: Mapping[str, Any]) -> None:
    """Write the files of one failure's evidence plus ``failure.json`` with its facts.

    Each file is written on its own, so a crash in the middle keeps what was written.
    """
    for name, content in files.items():
        target = folder / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
        if name.endswith(".sh"):
            target.chmod(0o755)
    (folder / "failure.json").write_text(json.dumps(facts, indent=2, default=str) + "\n")
