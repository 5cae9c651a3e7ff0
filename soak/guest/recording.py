"""Recording a failure: its evidence folder first, then its journal record.

The folder holds everything a person needs to triage the failure without the
run: the console tail, QEMU's stderr and argv, a script that boots the VM
alone, the report the classifier extracted, diagnostics (registers, threads).
Whether a failure is *expected* (a fault's intended outcome, or declared by a
self-test) is decided here, once, for every detector.

Evidence is bounded: the first ``evidence_per_signature`` failures of each
signature (kind + title) on a VM get a folder; later ones are journaled with
their occurrence number and no folder, so a bug that fires a thousand times
costs a counter, not a thousand folders. The signatures counted per VM are at
most `MAX_SIGNATURES`: past that (a corrupted guest can print an endless
variety of titles), new titles of a kind share one counter, so the folders of a
VM stay at most ``evidence_per_signature`` x (`MAX_SIGNATURES` + kinds); their
records keep their own titles. A disk that refuses a file (full,
read-only) costs that file only: the rest is written and the record says what
is missing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from soak import clock
from soak import events as ev
from soak.detect.verdict import Verdict
from soak.faults.driver import FaultDriver
from soak.profile import VmSpec
from soak.rundir import RunDir, write_evidence
from soak.vm import evidence
from soak.vm.argv import shell_command
from soak.vm.console import read_console_tail, read_tail
from soak.vm.consolestore import ConsoleStore

CONSOLE_TAIL_BYTES = 64 * 1024
CONSOLE_BEFORE_BYTES = 48 * 1024
CONSOLE_AFTER_BYTES = 64 * 1024
"""console-tail.log: what came before the failure's first sign and after it (its report)."""
STDERR_TAIL_BYTES = 16 * 1024
DEFAULT_EVIDENCE_PER_SIGNATURE = 3
MAX_SIGNATURES = 1000
"""Signatures counted per VM (as `soak.runmodel` keeps per run); then one counter per kind."""


@dataclass
class Evidence:
    """What a detector adds to a failure's record."""

    detected_by: str
    """console, heartbeat, qmp, process, workload, trend, boot, agent."""
    first_seen: float | None = None
    """Monotonic time of the failure's first sign (for the detection latency)."""
    corrupted: bool = False
    report_text: str = ""
    files: dict[str, str] | None = None


class FailureRecorder:
    """Writes the failures of one VM; one at a time, so folders and records keep their order."""

    def __init__(self, spec: VmSpec, run_dir: RunDir, *, seed: int, faults: FaultDriver,
                 soak_command: Callable[[VmSpec], str], emit: Callable[[ev.Event], None],
                 evidence_per_signature: int = DEFAULT_EVIDENCE_PER_SIGNATURE,
                 console: ConsoleStore | None = None,
                 on_write_error: Callable[[str, OSError], None] | None = None) -> None:
        """:param console: the VM's console store; without it the stored files' tail is read.
        :param on_write_error: ``(what, error)`` when the disk refuses evidence (the run's DiskAlarm).
        """
        self.spec = spec
        self.run_dir = run_dir
        self.seed = seed
        self.faults = faults
        self.soak_command = soak_command
        self.emit = emit
        self.evidence_per_signature = evidence_per_signature
        self.console = console
        self.on_write_error = on_write_error
        self.lock = asyncio.Lock()
        self.occurrences: dict[tuple[str, str], int] = {}
        """Failures seen per signature (kind, title) on this VM; past `MAX_SIGNATURES`, new
        titles count under (kind, "") together."""

    async def record(self, boot: int, argv: list[str], verdict: Verdict, evidence_: Evidence) -> ev.Failure:
        async with self.lock:
            signature = (verdict.kind.value, verdict.title)
            if signature not in self.occurrences and len(self.occurrences) >= MAX_SIGNATURES:
                signature = (verdict.kind.value, "")
            occurrence = self.occurrences[signature] = self.occurrences.get(signature, 0) + 1
            folder: Path | None = None
            note = ""
            if occurrence > self.evidence_per_signature and not signature[1]:
                note = (f"this VM has more than {MAX_SIGNATURES} signatures: evidence is kept for the first "
                        f"{self.evidence_per_signature} {signature[0]} failures past them")
            elif occurrence > self.evidence_per_signature:
                note = (f"repeat {occurrence} of this signature on this VM: evidence is kept for the first "
                        f"{self.evidence_per_signature} (run.evidence_per_signature)")
            else:
                try:
                    folder = self.run_dir.new_failure_dir(self.spec.name, verdict.kind.value)
                except OSError as exc:
                    note = f"no evidence folder: {exc.strerror or exc}"
                    self._write_failed(exc)
            now = clock.now()
            latency = now - evidence_.first_seen if evidence_.first_seen is not None else None
            failure = ev.Failure(
                vm=self.spec.name, kind=verdict.kind, title=verdict.title, boot=boot,
                detected_by=evidence_.detected_by,
                latency_s=round(latency, 3) if latency is not None else None,
                corrupted=evidence_.corrupted, evidence=self.run_dir.relative(folder) if folder else "",
                message=verdict.message, faults=self.faults.preceding(now),
                expected=verdict.kind.value in self.spec.allowed_kinds or self.faults.intended(verdict.kind, now),
                occurrence=occurrence, evidence_note=note,
            )
            if folder is not None:
                missing = write_evidence(folder, await self._files(argv, evidence_), {
                    **ev.to_record(failure),
                    "seed": self.seed,
                    "vcpus": self.spec.vcpus,
                    "memory_mib": self.spec.memory_mib,
                    "reproduce": self.soak_command(self.spec),
                })
                if missing:
                    reasons = "; ".join(f"{name} ({exc.strerror or exc})" for name, exc in missing.items())
                    failure = dataclasses.replace(failure, evidence_note=f"not written: {reasons}")
                    self._write_failed(next(iter(missing.values())))
            self.emit(failure)
            return failure

    async def _files(self, argv: list[str], evidence_: Evidence) -> dict[str, str | bytes]:
        files: dict[str, str | bytes] = {
            "console-tail.log": await self._console(evidence_.first_seen),
            "qemu-stderr.log": read_tail(self.run_dir.stderr_log(self.spec.name), STDERR_TAIL_BYTES),
            "qemu-argv.txt": shell_command(argv) + "\n",
            "reproduce.sh": evidence.reproduce_script(argv, self.spec.name, self.soak_command(self.spec)),
        }
        if evidence_.report_text:
            files["report.txt"] = evidence_.report_text
        files.update(evidence_.files or {})
        return files

    async def _console(self, first_seen: float | None) -> bytes:
        """Around the failure's first sign when known (under a flood the newest bytes are noise)."""
        if self.console is None:
            return read_console_tail(self.run_dir.vm_dir(self.spec.name), CONSOLE_TAIL_BYTES)
        if first_seen is None:
            return await self.console.tail(CONSOLE_TAIL_BYTES)
        return await self.console.around(first_seen, before=CONSOLE_BEFORE_BYTES, after=CONSOLE_AFTER_BYTES)

    def _write_failed(self, exc: OSError) -> None:
        if self.on_write_error is not None:
            self.on_write_error(f"the evidence of {self.spec.name}", exc)
