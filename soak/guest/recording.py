"""Recording a failure: its evidence folder first, then its journal record.

The folder holds everything a person needs to triage the failure without the
run: the console tail, QEMU's stderr and argv, a script that boots the VM
alone, the report the classifier extracted, diagnostics (registers, threads).
Whether a failure is *expected* (a fault's intended outcome, or declared by a
self-test) is decided here, once, for every detector.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from soak import clock
from soak import events as ev
from soak.detect.verdict import Verdict
from soak.faults.driver import FaultDriver
from soak.profile import VmSpec
from soak.rundir import RunDir, write_evidence
from soak.vm import evidence
from soak.vm.argv import shell_command
from soak.vm.console import read_tail

CONSOLE_TAIL_BYTES = 64 * 1024
STDERR_TAIL_BYTES = 16 * 1024


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
                 soak_command: Callable[[VmSpec], str], emit: Callable[[ev.Event], None]) -> None:
        self.spec = spec
        self.run_dir = run_dir
        self.seed = seed
        self.faults = faults
        self.soak_command = soak_command
        self.emit = emit
        self.lock = asyncio.Lock()

    async def record(self, boot: int, argv: list[str], verdict: Verdict, evidence_: Evidence) -> ev.Failure:
        async with self.lock:
            folder = self.run_dir.new_failure_dir(self.spec.name, verdict.kind.value)
            files: dict[str, str | bytes] = {
                "console-tail.log": read_tail(self.run_dir.console_log(self.spec.name), CONSOLE_TAIL_BYTES),
                "qemu-stderr.log": read_tail(self.run_dir.stderr_log(self.spec.name), STDERR_TAIL_BYTES),
                "qemu-argv.txt": shell_command(argv) + "\n",
                "reproduce.sh": evidence.reproduce_script(argv, self.spec.name, self.soak_command(self.spec)),
            }
            if evidence_.report_text:
                files["report.txt"] = evidence_.report_text
            files.update(evidence_.files or {})
            now = clock.now()
            latency = now - evidence_.first_seen if evidence_.first_seen is not None else None
            failure = ev.Failure(
                vm=self.spec.name, kind=verdict.kind, title=verdict.title, boot=boot,
                detected_by=evidence_.detected_by,
                latency_s=round(latency, 3) if latency is not None else None,
                corrupted=evidence_.corrupted, evidence=self.run_dir.relative(folder),
                message=verdict.message, faults=self.faults.preceding(now),
                expected=verdict.kind.value in self.spec.allowed_kinds or self.faults.intended(verdict.kind, now),
            )
            write_evidence(folder, files, {
                **ev.to_record(failure),
                "seed": self.seed,
                "vcpus": self.spec.vcpus,
                "memory_mib": self.spec.memory_mib,
                "reproduce": self.soak_command(self.spec),
            })
            self.emit(failure)
            return failure
