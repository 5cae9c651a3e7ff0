"""`soak report`: one self-contained HTML file of a run, with plots, for a browser, an e-mail or CI.

Usage::

    path = write_report(run_dir)                          # RUN/report.html
    path = write_report(run_dir, Path("out/x.html"), statuses={(kind, title): "new", ...})
    html = build_report(load_run(journal, detail=True), run_dir)   # the text, nothing written

The report is a view of the run model (``soak.runmodel``, folded with
``detail=True``): the run's facts, failures by signature with their history
status and evidence, the fleet timeline (``timeline``), heartbeat lateness,
throughput per stressor and the QEMU process per VM (``plots``, drawn by our
own SVG renderer ``svg``), the VMs and soak's own problems (``sections``).
It holds no script and loads nothing (``page``): everything is inline, and run
text is escaped by construction (``markup``). Its size is bounded whatever the
run's length: each series has at most 256 points, each timeline row a few
hundred marks, each evidence excerpt 8 KiB (README, "soak report").
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from soak.errors import InfraError, UsageError
from soak.journal import JOURNAL_NAME
from soak.report.evidence import link_prefix
from soak.report.page import document
from soak.runmodel import LoadedRun, load_run

REPORT_NAME = "report.html"

Statuses = Mapping[tuple[str, str], str]
"""(kind, title) -> history status of the signature (``new``, ``known``, ``regressed``, ``flaky``)."""


def build_report(loaded: LoadedRun, run_dir: Path, *, output: Path | None = None,
                 statuses: Statuses | None = None, generated: float | None = None) -> str:
    """The report's HTML; evidence links are relative to ``output`` (default: inside ``run_dir``)."""
    prefix = link_prefix(run_dir, output if output is not None else run_dir / REPORT_NAME)
    return document(loaded, run_dir, prefix=prefix, statuses=statuses, generated=generated)


def load_for_report(run_dir: Path) -> LoadedRun:
    """The run at ``run_dir`` (a run directory or its journal), folded with detail.

    :raise UsageError: no journal there.
    """
    journal = run_dir / JOURNAL_NAME if run_dir.is_dir() else run_dir
    try:
        return load_run(journal, detail=True)
    except (FileNotFoundError, NotADirectoryError):
        raise UsageError(f"{run_dir}: no {JOURNAL_NAME} here: is it a soak run directory?") from None
    except IsADirectoryError:
        raise UsageError(f"{journal}: is a directory, not a journal") from None


def write_report(run_dir: Path, output: Path | None = None, *, statuses: Statuses | None = None,
                 loaded: LoadedRun | None = None) -> Path:
    """Write the run's report (atomically: a reader never sees half a file) and return its path.

    :param loaded: the run already folded by `load_for_report` (else it is folded here).
    :raise UsageError: no journal, or the output's folder is missing or not writable (exit 2).
    :raise InfraError: the disk is full or failed while writing (exit 3).
    """
    if loaded is None:
        loaded = load_for_report(run_dir)
    root = run_dir if run_dir.is_dir() else run_dir.parent
    target = output if output is not None else root / REPORT_NAME
    text = build_report(loaded, root, output=target, statuses=statuses)
    _write_atomically(target, text)
    return target


def _write_atomically(target: Path, text: str) -> None:
    try:
        fd, temporary = tempfile.mkstemp(prefix=".report-", suffix=".tmp", dir=target.parent)
    except (FileNotFoundError, NotADirectoryError):
        raise UsageError(f"{target}: its folder {target.parent} does not exist") from None
    except PermissionError:
        raise UsageError(f"{target}: cannot write in {target.parent} (permission denied)") from None
    except OSError as exc:
        raise InfraError(f"{target}: cannot write the report: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, IsADirectoryError):
            raise UsageError(f"{target}: is a directory") from None
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            raise InfraError(f"{target}: cannot write the report: {exc.strerror}") from exc
        raise


__all__ = ["REPORT_NAME", "Statuses", "build_report", "load_for_report", "write_report"]
