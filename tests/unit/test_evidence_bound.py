"""Evidence is bounded per signature and survives a disk that refuses part of it; summary files too."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rich.console import Console

from soak import events as ev
from soak.detect.verdict import Verdict
from soak.faults.driver import FaultDriver
from soak.guest import recording
from soak.guest.recording import Evidence, FailureRecorder
from soak.kinds import Kind
from soak.profile import ImageSettings, VmSpec
from soak.render import render_summary
from soak.rundir import RunDir
from soak.session import write_summary_files
from soak.summary import summarize
from soak.vm.consolestore import ConsoleStore

SPEC = VmSpec(name="g-0", group="g", index=0, vcpus=1, memory_mib=256, machine="pc", image=ImageSettings())


def recorder(run_dir: RunDir, events: list[ev.Event], **kwargs: object) -> FailureRecorder:
    faults = FaultDriver(SPEC.name, SPEC.faults, index_in_group=0, seed=1, emit=events.append, memory_s=60)
    return FailureRecorder(SPEC, run_dir, seed=1, faults=faults, soak_command=lambda _s: "soak run p.toml",
                           emit=events.append, **kwargs)  # type: ignore[arg-type]


async def test_repeats_past_the_bound_are_counted_not_stored(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path)
    run_dir.create()
    events: list[ev.Event] = []
    rec = recorder(run_dir, events, evidence_per_signature=2)
    warning = Verdict(Kind.KERNEL_WARNING, "WARNING in foo")
    for _ in range(5):
        await rec.record(1, ["qemu"], warning, Evidence("console", report_text="WARNING: ..."))
    await rec.record(1, ["qemu"], Verdict(Kind.KERNEL_OOPS, "BUG: oops in bar"), Evidence("console"))
    failures = [e for e in events if isinstance(e, ev.Failure)]
    assert [f.occurrence for f in failures] == [1, 2, 3, 4, 5, 1]
    assert [bool(f.evidence) for f in failures] == [True, True, False, False, False, True]
    assert "repeat 3 of this signature" in failures[2].evidence_note
    assert len(list((tmp_path / "vms" / "g-0" / "failures").iterdir())) == 3
    summary = summarize([*failures])
    assert [(g.title, g.count, g.without_evidence) for g in summary.failures] == [
        ("WARNING in foo", 5, 3), ("BUG: oops in bar", 1, 0)]
    assert summary.to_json()["failures"][0]["without_evidence"] == 3


async def test_console_evidence_comes_from_around_the_first_sign(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path)
    run_dir.create()
    events: list[ev.Event] = []
    store = ConsoleStore("g-0", run_dir.vm_dir("g-0"), limit_bytes=4 << 20)
    store.open_boot(1)
    store.write(b"Kernel panic - not syncing: here\n")
    seen = time.monotonic()
    for _ in range(64):
        store.write(b"flood " * 1000 + b"\n")
    rec = recorder(run_dir, events, console=store)
    failure = await rec.record(1, ["qemu"], Verdict(Kind.KERNEL_PANIC, "kernel panic: here"),
                               Evidence("console", first_seen=seen))
    await store.close()
    tail = (tmp_path / failure.evidence / "console-tail.log").read_bytes()
    assert b"Kernel panic - not syncing: here" in tail


class PreparedFolder(RunDir):
    """A run directory whose next failure folder already holds a directory named report.txt."""

    __slots__ = ()

    def new_failure_dir(self, vm: str, kind: str) -> Path:
        return self.root / "vms" / vm / "failures" / "001-kernel-warning"


async def test_evidence_the_disk_refuses_is_noted_and_the_rest_kept(tmp_path: Path) -> None:
    run_dir = PreparedFolder(tmp_path)
    run_dir.create()
    events: list[ev.Event] = []
    refused: list[str] = []
    rec = recorder(run_dir, events, on_write_error=lambda what, exc: refused.append(what))
    folder = run_dir.new_failure_dir("g-0", "kernel-warning")
    (folder / "report.txt").mkdir(parents=True)  # this file cannot be written
    (folder / "report.txt" / "x").touch()
    failure = await rec.record(1, ["qemu"], Verdict(Kind.KERNEL_WARNING, "WARNING in foo"),
                               Evidence("console", report_text="WARNING: ..."))
    assert failure.evidence and "report.txt" in failure.evidence_note
    assert (folder / "failure.json").exists() and (folder / "reproduce.sh").exists()
    assert refused == ["the evidence of g-0"]


def test_summary_files_are_written_each_on_its_own(tmp_path: Path) -> None:
    summary = summarize([ev.RunFinished(t=1.0, reason="deadline", verdict="clean", failures=0, infra_problems=0)])
    (tmp_path / "summary.json").mkdir()  # cannot be replaced by a file
    (tmp_path / "summary.json" / "x").touch()
    problems = write_summary_files(summary, tmp_path)
    assert len(problems) == 1 and "summary.json" in problems[0] and "soak summary" in problems[0]
    assert "Verdict" in (tmp_path / "summary.txt").read_text()
    assert not list(tmp_path.glob(".*partial"))
    render_summary(summary, Console(file=None, quiet=True))  # the printed summary needs neither file


async def test_endless_new_titles_cost_a_bounded_count_of_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = RunDir(tmp_path)
    run_dir.create()
    events: list[ev.Event] = []
    rec = recorder(run_dir, events, evidence_per_signature=1)
    recording_limit = 20
    monkeypatch.setattr(recording, "MAX_SIGNATURES", recording_limit)
    for n in range(100):  # a corrupted guest: every warning names another function
        await rec.record(1, ["qemu"], Verdict(Kind.KERNEL_WARNING, f"WARNING in fn_{n}"), Evidence("console"))
    failures = [e for e in events if isinstance(e, ev.Failure)]
    assert [f.title for f in failures] == [f"WARNING in fn_{n}" for n in range(100)]  # the journal keeps every title
    assert len(rec.occurrences) == recording_limit + 1
    assert len(list((tmp_path / "vms" / "g-0" / "failures").iterdir())) == recording_limit + 1
    assert failures[-1].occurrence == 100 - recording_limit and not failures[-1].evidence
    assert f"more than {recording_limit} signatures" in failures[-1].evidence_note
