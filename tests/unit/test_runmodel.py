"""The one fold: every view (summary, totals, live view, RunFinished's verdict, history facts) agrees."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from soak import events as ev
from soak.kinds import Kind
from soak.live import LiveView
from soak.metrics import run_totals
from soak.runmodel import (
    RunModel,
    VmShape,
    VmState,
    combined_facts,
    load_run,
    merged_signatures,
    merged_vm_seconds,
    replay,
    run_facts,
    run_finished,
    verdict_facts,
)
from soak.runmodel.failures import MAX_SIGNATURES, OVERFLOW_TITLE
from soak.runmodel.model import MAX_KEPT_PROBLEMS
from soak.summary import summarize, summary_of

REAL_JOURNAL = Path(__file__).parent / "data" / "real-run-journal.jsonl"
"""A real 100 s run of ``data/real-run-profile.toml``: 2 guests under stress-ng, a-0 paused
3 s at 10 s, a-1's QEMU killed at 35 s (an expected qemu-crash) and restarted."""


def vm(name: str, vcpus: int = 1, *, expect: list[str] | None = None) -> ev.VmInfo:
    return ev.VmInfo(name=name, group=name.split("-")[0], vcpus=vcpus, memory_mib=256, machine="pc",
                     image="img", expect=expect or [], expect_within_s=30)


def started(*vms: ev.VmInfo, t: float = 0.0, run_id: str = "r1") -> ev.RunStarted:
    return ev.RunStarted(t=t, run_id=run_id, profile="p", profile_path="p.toml", seed=7, accel="tcg",
                         accel_reason="", version="0", duration_s=100, command=[], vms=list(vms),
                         qemu_version="7.2.0")


def failure(t: float, name: str, title: str = "WARNING in foo", kind: Kind = Kind.KERNEL_WARNING,
            *, expected: bool = False, evidence: str = "") -> ev.Failure:
    return ev.Failure(t=t, vm=name, kind=kind, title=title, boot=1, detected_by="console", expected=expected,
                      evidence=evidence or f"vms/{name}/failures/{t:g}")


def test_a_real_journal_gives_every_view() -> None:
    loaded = load_run(REAL_JOURNAL, detail=True)
    model = loaded.model
    assert not loaded.torn_tail and loaded.skipped_records == 0
    assert model.finished is not None and model.finished.reason == "deadline"

    summary = summary_of(model)
    assert summary.verdict == model.finished.verdict == "clean"  # recorded live, rebuilt here
    assert {name: (v.boots, v.state) for name, v in summary.vms.items()} == {
        "a-0": (1, "stopped"), "a-1": (2, "stopped")}
    [crash] = summary.failures
    assert (crash.kind, crash.title, crash.count, crash.expected) == ("qemu-crash", "QEMU killed by SIGKILL", 1, 1)
    assert crash.evidence == crash.last_evidence == "vms/a-1/failures/001-qemu-crash"
    assert summary.faults == {"pause": 1, "kill": 1}
    assert summary.vms["a-0"].heartbeats == 84 and summary.vms["a-1"].heartbeats == 31 + 45
    assert set(summary.vms["a-1"].bogo_ops_per_s) == {"cpu"}

    totals = run_totals(model)
    assert totals.vm_seconds == pytest.approx(summary.vm_hours * 3600)
    assert summary.metrics == totals.to_json()
    assert totals.boots == 3 and totals.expected_failures["qemu-crash"] == 1

    facts = run_facts(model)
    assert (facts.run_id, facts.profile, facts.seed, facts.accel) == ("f39a76bb0c50", "fold", 3, "tcg")
    assert facts.verdict == "clean" and facts.finish_reason == "deadline"
    assert facts.vm_hours == pytest.approx(summary.vm_hours)
    [signature] = facts.signatures
    assert signature.shapes == (VmShape(2, 320, "pc", "default:6.1.0-57-cloud-amd64", "6.1.0-57-cloud-amd64"),)

    assert model.detail is not None
    spans = list(model.detail.vms["a-1"].boots)
    assert [(s.boot, s.reason) for s in spans] == [(1, "failure"), (2, "deadline")]
    assert all(s.ready is not None and s.stop is not None and s.start < s.ready < s.stop for s in spans)
    [pause] = model.detail.vms["a-0"].faults
    assert pause.fault == "pause" and pause.end - pause.start == 3.0
    samples = model.detail.samples
    assert set(samples.bogo_ops_per_s) == {("cpu", 1), ("cpu", 2)}
    assert sorted(samples.boot_s) == [1, 2] and len(samples.boot_s[2]) == 2


SELFTEST_VM = vm("x-0", expect=["oom"])
VERDICT_CASES: dict[str, tuple[list[ev.Event], str]] = {
    "clean": ([started(vm("g-0"))], "clean"),
    "failure": ([started(vm("g-0")), failure(5.0, "g-0")], "failures"),
    "expected failure": ([started(vm("g-0")), failure(5.0, "g-0", expected=True)], "clean"),
    "soak problem": ([started(vm("g-0")), ev.InfraProblem(t=5.0, vm="g-0", problem="launch", message="no memory")],
                     "infra-error"),
    # the live tally said "clean" here: a self-test whose declared failure never came
    "missed expectation": ([started(SELFTEST_VM), ev.VmReady(t=5.0, vm="x-0", boot=1, boot_s=4.0)], "failures"),
    "met expectation": ([started(SELFTEST_VM), ev.VmReady(t=5.0, vm="x-0", boot=1, boot_s=4.0),
                         failure(9.0, "x-0", "oom", Kind.OOM, expected=True)], "clean"),
}


@pytest.mark.parametrize("case", sorted(VERDICT_CASES))
@pytest.mark.parametrize("reason", ["deadline", "signal", "error"])
def test_the_recorded_verdict_is_the_summary_verdict(case: str, reason: str) -> None:
    events, verdict = VERDICT_CASES[case]
    live = replay(events)
    finished = run_finished(live, reason, t=100.0)
    summary = summarize([*events, finished])
    assert summary.verdict == finished.verdict == ("infra-error" if reason == "error" else verdict)
    assert finished.failures == summary.to_json()["totals"]["failures"]
    assert finished.infra_problems == summary.to_json()["totals"]["infra_problems"]


def test_summary_totals_and_metrics_share_one_clock() -> None:
    events: list[ev.Event] = [
        started(vm("g-0"), vm("g-1")),
        ev.VmStarting(t=1.0, vm="g-0", boot=1, pid=1, argv=[]),
        ev.VmReady(t=5.0, vm="g-0", boot=1, boot_s=4.0),
        ev.VmStarting(t=1.0, vm="g-1", boot=1, pid=2, argv=[]),
        ev.VmReady(t=10.0, vm="g-1", boot=1, boot_s=9.0),
        ev.VmStopped(t=30.0, vm="g-1", boot=1, reason="failure", exit_code=1, uptime_s=19.0),
    ]
    model = replay(events)
    summary = summary_of(model, now=65.0)
    assert summary.vms["g-0"].uptime_s == 60.0 and summary.vms["g-1"].uptime_s == 20.0
    assert summary.vm_hours * 3600 == run_totals(model, 65.0).vm_seconds == 80.0
    assert summary.duration_s == 65.0 and summary.metrics["elapsed_s"] == 65.0
    assert summary.vms["g-1"].state == "down" and model.vms["g-1"].state is VmState.STOPPED


def test_unknown_event_types_are_ignored_but_move_the_clock() -> None:
    model = replay([started(vm("g-0")), ev.Event(t=42.0)])
    assert model.last_t == 42.0 and model.elapsed() == 42.0


def test_signatures_and_soak_problems_are_bounded() -> None:
    model = RunModel()
    model.apply(started(vm("g-0")))
    for i in range(MAX_SIGNATURES + 500):
        model.apply(failure(float(i), "g-0", f"WARNING in f{i}"))
        model.apply(ev.InfraProblem(t=float(i), problem="qmp", message=f"m{i}"))
    groups = model.failure_groups()
    assert len(groups) == MAX_SIGNATURES + 1
    overflow = next(g for g in groups if g.title == OVERFLOW_TITLE)
    assert overflow.count == 500 and overflow.kind == "kernel-warning"
    assert sum(g.count for g in groups) == model.unexpected_failures == MAX_SIGNATURES + 500
    assert len(model.problems) == MAX_KEPT_PROBLEMS and model.infra_total == MAX_SIGNATURES + 500
    summary = summary_of(model)
    assert summary.to_json()["totals"]["infra_problems"] == MAX_SIGNATURES + 500


def test_several_journals_merge_without_a_second_fold() -> None:
    shard_a = replay([
        started(vm("a-0"), run_id="s0"),
        failure(10.0, "a-0", evidence="vms/a-0/failures/001"),
        ev.RunFinished(t=100.0, reason="deadline", verdict="failures", failures=1, infra_problems=0),
    ])
    shard_b = replay([
        started(vm("b-0"), run_id="s1"),
        ev.VmStarting(t=1.0, vm="b-0", boot=1, pid=1, argv=[]),
        ev.VmReady(t=2.0, vm="b-0", boot=1, boot_s=1.0),
        failure(5.0, "b-0", evidence="vms/b-0/failures/001"),
        failure(50.0, "b-0", evidence="vms/b-0/failures/002"),
        failure(60.0, "b-0", "kernel panic: bar", Kind.KERNEL_PANIC),
        ev.InfraProblem(t=5.0, problem="qmp", message="no answer"),
    ])
    runs = {"host-a": shard_a, "host-b": shard_b}
    warn, panic = merged_signatures(runs)
    assert (warn.group.title, warn.group.count, warn.group.vms, warn.runs) == (
        "WARNING in foo", 3, ["a-0", "b-0"], ["host-a", "host-b"])
    assert (warn.group.first_seen, warn.evidence_run, warn.group.evidence) == (5.0, "host-b", "vms/b-0/failures/001")
    assert (warn.group.last_seen, warn.last_evidence_run) == (50.0, "host-b")
    assert panic.runs == ["host-b"]
    assert merged_vm_seconds(runs, now=70.0) == 0.0 + 68.0  # shard a finished; b measured to now
    facts = combined_facts(runs.values())
    assert facts.unexpected_failures == 4 and facts.infra_problems == 1 and facts.verdict == "failures"
    assert verdict_facts(shard_a) + verdict_facts(shard_b) == facts
    assert shard_a.signatures.groups[("kernel-warning", "WARNING in foo")].count == 1  # inputs untouched


def test_run_facts_of_a_journal_without_its_start() -> None:
    facts = run_facts(replay([failure(5.0, "g-0")]))
    assert facts.started is None and facts.seed is None and facts.ended == 5.0
    assert facts.signatures[0].shapes == ()  # the VM's shape is unknown
    assert facts.verdict == "failures"


def test_the_live_view_shows_the_model_and_logs_notable_events() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    model = RunModel()
    view = LiveView(console, model, interactive=False)
    events: list[ev.Event] = [
        started(vm("g-0", 2), vm("g-1")),
        ev.VmStarting(t=1.0, vm="g-0", boot=1, pid=1, argv=[]),
        ev.VmReady(t=3.0, vm="g-0", boot=1, boot_s=2.0),
        ev.Heartbeat(t=4.0, vm="g-0", seq=1, uptime_s=1, load1=0, mem_free_kib=1, mem_available_kib=1, gap_s=1,
                     lateness_s=0),
        failure(5.0, "g-1", "kernel panic: [bold]x", Kind.KERNEL_PANIC),
        ev.VmStopped(t=6.0, vm="g-1", boot=1, reason="failure", exit_code=None),
    ]
    for event in events:
        model.apply(event)
        view.observe(event)
    logged = out.getvalue()
    assert "g-0: ready in 2.0s (boot 1)" in logged and "g-1: FAILURE kernel-panic: kernel panic: [bold]x" in logged
    assert "heartbeat" not in logged  # not notable

    out.seek(0)
    out.truncate()
    console.print(view.render(now=10.0))
    table = out.getvalue()
    assert "soak p · seed 7 · tcg · 10s elapsed, 1m30s left" in table
    row0 = next(line for line in table.splitlines() if "g-0" in line)
    assert "running" in row0 and "6.0s ago" in row0
    row1 = next(line for line in table.splitlines() if "g-1" in line)
    assert "down" in row1 and "kernel-panic: kernel panic: [bold]x" in row1  # console text is not markup


def test_the_run_model_sits_below_its_views() -> None:
    """Imports point downward: the fold knows nothing of the summary, metrics, live view or rich."""
    import subprocess
    import sys

    code = "import soak.runmodel, sys; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    above = [m for m in loaded if m.startswith(("soak.summary", "soak.metrics", "soak.live", "soak.render",
                                                 "soak.session", "prometheus_client", "rich"))]
    assert not above, above
