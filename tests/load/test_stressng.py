"""stress-ng output in, metrics and failures out: on real output of stress-ng 0.15.06."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from soak.kinds import Kind
from soak.load import (
    LoadSettings,
    RunOutcome,
    StressMetric,
    StressProblem,
    interpret_exit,
    parse_line,
    plan_runs,
    workload_verdict,
)

DATA = Path(__file__).parent / "data"


@dataclass
class Sample:
    name: str
    rc: int
    stopped: bool
    title: str | None
    lines: list[str]


def load_sample(path: Path) -> Sample:
    header, _, body = path.read_text().partition("\n\n")
    fields = dict(line.split(": ", 1) for line in header.splitlines())
    title = None if fields["TITLE"] == "none" else fields["TITLE"]
    return Sample(path.stem, int(fields["RC"]), fields["STOPPED"] == "yes", title, body.splitlines())


SAMPLES = [load_sample(p) for p in sorted(DATA.glob("*.txt"))]


def judge(sample: Sample) -> tuple[RunOutcome, list[StressMetric]]:
    outcome = RunOutcome()
    metrics = [m for line in sample.lines if isinstance(m := outcome.feed(line), StressMetric)]
    return outcome, metrics


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_real_samples_give_their_titles(sample: Sample) -> None:
    outcome, _ = judge(sample)
    verdict = outcome.verdict(sample.rc, stopped=sample.stopped)
    assert (verdict.title if verdict else None) == sample.title
    if verdict is not None:
        assert verdict.kind is Kind.WORKLOAD_FAILURE
        assert not verdict.terminal  # the guest lives on; the runner starts the next run
        assert verdict.message  # the evidence lines


def test_a_clean_run_reports_every_stressor() -> None:
    sample = next(s for s in SAMPLES if s.name == "clean")
    outcome, metrics = judge(sample)
    assert [m.stressor for m in metrics] == [
        "cpu", "vm", "hdd", "timer", "clock", "switch", "futex", "tlb-shootdown", "membarrier"]
    assert outcome.problems == []
    for m in metrics:
        assert m.real_s > 0 and m.bogo_ops >= 0 and m.bogo_ops_per_s_real >= 0


def test_verification_failures_are_verify_problems() -> None:
    for name, stressor in (("vm-verify", "vm"), ("hdd-verify", "hdd")):
        outcome, _ = judge(next(s for s in SAMPLES if s.name == name))
        kinds = {p.kind for p in outcome.problems}
        assert "verify" in kinds
        assert all(p.stressor == stressor for p in outcome.problems if p.kind == "verify")


def test_a_stopped_run_keeps_a_verification_failure() -> None:
    sample = next(s for s in SAMPLES if s.name == "vm-verify")
    outcome, _ = judge(sample)
    verdict = outcome.verdict(143, stopped=True)
    assert verdict is not None and verdict.title == "stress-ng vm verification failed"


def test_oom_kills_are_notes_not_failures() -> None:
    for name in ("cpu-sigkill", "vm-sigkill-restart"):
        outcome, _ = judge(next(s for s in SAMPLES if s.name == name))
        assert [p.kind for p in outcome.notes] == ["oom-killed"] * len(outcome.notes) and outcome.notes


def test_an_oom_kill_does_not_excuse_a_segfault() -> None:
    outcome = RunOutcome()
    outcome.feed("stress-ng: debug: [7] process [9] (vm) was killed by the OOM killer")
    outcome.feed("stress-ng: debug: [7] process [8] (cpu) terminated on signal: 11 (Segmentation fault)")
    verdict = outcome.verdict(2)
    assert verdict is not None and verdict.title == "stress-ng cpu killed by SIGSEGV"


def test_the_exit_code_names_the_stressor_its_lines_named() -> None:
    outcome = RunOutcome()
    outcome.feed("stress-ng: fail:  [7] cpu instance 0 corrupted bogo-ops counter, 12 vs 0")
    verdict = outcome.verdict(2)
    assert verdict is not None and verdict.title == "stress-ng cpu metrics corrupted"
    assert RunOutcome().verdict(6) == workload_verdict(StressProblem(
        "stressor-failed", "", "exit 6: a stressor exited unexpectedly, no metrics", exit_code=6))


def test_a_bad_option_is_an_error_note() -> None:
    outcome, _ = judge(next(s for s in SAMPLES if s.name == "bad-option"))
    assert outcome.verdict(1) is None
    problem = interpret_exit(1)
    assert problem is not None and problem.kind == "error" and not problem.is_failure


def test_outcome_memory_is_bounded() -> None:
    outcome = RunOutcome()
    for i in range(10_000):
        outcome.feed(f"stress-ng: fail:  [7] hdd: incorrect data found {i} times")
    assert len(outcome.problems) == 8 and outcome.dropped == 10_000 - 8
    verdict = outcome.verdict(2)
    assert verdict is not None and "9992 more" in verdict.message


# Lines stress-ng 0.15.06 prints but that we cannot provoke from outside: taken
# from its format strings (`strings /usr/bin/stress-ng`), with numbers filled in.
@pytest.mark.parametrize("line, kind, stressor", [
    ("stress-ng: fail:  [7] cpu: prime error detected, number of primes has been miscalculated", "verify", "cpu"),
    ("stress-ng: fail:  [7] cpu: sqrt error detected on sqrt(3423)", "verify", "cpu"),
    ("stress-ng: fail:  [7] cpu: calculation of ln(2) took more iterations than expected", "verify", "cpu"),
    ("stress-ng: fail:  [7] cpu: cpu loop 0..16383 sum was 3 and did not match the expected value of 9", "verify", "cpu"),
    ("stress-ng: fail:  [7] modulo X: detected 3 memory errors", "verify", "vm"),
    ("stress-ng: fail:  [7] walking one (data): detected 1 memory error", "verify", "vm"),
    ("stress-ng: fail:  [7] mmap: mmap'd region of 4096 bytes does not contain expected data", "verify", "mmap"),
    ("stress-ng: fail:  [7] hdd: write failed, errno=28 (No space left on device)", "stressor-failed", "hdd"),
    ("stress-ng: fail:  [7] futex: futex wait failed: errno=22 (Invalid argument)", "stressor-failed", "futex"),
    ("stress-ng: fail:  [7] metrics-check: stressor metrics corrupted, data is compromised", "other", ""),
    ("stress-ng: error: [7] process [8] (hdd) terminated with an error, exit status=2 (stressor failed)",
     "stressor-failed", "hdd"),
    ("stress-ng: debug: [7] process [8] (stress-ng-cpu) aborted via exit() which was not expected",
     "stressor-failed", "cpu"),
    ("stress-ng: warn:  [7] process [8] (vm) aborted early, out of system resources", "skipped", "vm"),
    ("stress-ng: debug: [7] vm: assuming killed by OOM killer, restarting again (instance 0)", "oom-killed", "vm"),
    ("stress-ng: debug: [7] vm: child died: signal 7 'SIGBUS' (instance 0)", "stressor-failed", "vm"),
])
def test_problem_lines(line: str, kind: str, stressor: str) -> None:
    problem = parse_line(line)
    assert isinstance(problem, StressProblem)
    assert (problem.kind, problem.stressor) == (kind, stressor)
    assert problem.text == line


@pytest.mark.parametrize("line", [
    "stress-ng: metrc: [93] stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s",
    "stress-ng: metrc: [93]                           (secs)    (secs)    (secs)   (real time) (usr+sys time)",
    "stress-ng: metrc: [93] miscellaneous metrics:",
    "stress-ng: metrc: [93] hdd                 9025.49 MB/sec read rate (geometic mean of 1 instances)",
    "stress-ng: info:  [93] successful run completed in 10.09s",
    "stress-ng: info:  [93] dispatching hogs: 1 cpu, 1 vm",
    "stress-ng: warn:  [93] futex: WARNING: finished prematurely after just 0.53s",
    "stress-ng: debug: [93] process [94] terminated",
    "stress-ng: debug: [93] process [94] (cpu) terminated on signal: 14 (Alarm clock)",
    "stress-ng: debug: [93] timer: 1542504 timer overruns (instance 0)",
    "info: 5 failures reached, aborting stress process",
    "random output from something else",
    "",
])
def test_chatter_is_nothing(line: str) -> None:
    assert parse_line(line) is None


def test_metric_lines() -> None:
    assert parse_line("stress-ng: metrc: [93] vm                38722     10.03      6.24      3.78"
                      "      3860.53        3865.94") == StressMetric("vm", 38722, 10.03, 6.24, 3.78, 3860.53, 3865.94)
    # the name column is 13 wide: a long name and a 10-digit count touch
    glued = parse_line("stress-ng: metrc: [93] tlb-shootdown1234567890     60.00     59.00      1.00"
                       "  20576131.50    20576131.50")
    assert isinstance(glued, StressMetric) and (glued.stressor, glued.bogo_ops) == ("tlb-shootdown", 1234567890)
    sci = parse_line("stress-ng: metrc: [93] cpu               534 1.006e+01 9.920e+00 1.300e-01  5.30900e+01"
                     "    5.31300e+01")
    assert isinstance(sci, StressMetric) and sci.real_s == 10.06


@pytest.mark.parametrize("rc, kind", [
    (0, None), (1, "error"), (2, "stressor-failed"), (3, "skipped"), (4, "skipped"),
    (5, "stressor-failed"), (6, "stressor-failed"), (7, "other"), (99, "other"),
    (137, "oom-killed"), (139, "stressor-failed"), (142, None),
])
def test_exit_codes(rc: int, kind: str | None) -> None:
    problem = interpret_exit(rc)
    assert (problem.kind if problem else None) == kind
    assert interpret_exit(rc, stopped=True) is None


def test_titles_are_stable() -> None:
    def title(problem: StressProblem) -> str:
        return workload_verdict(problem).title

    assert title(StressProblem("verify", "vm", "x")) == "stress-ng vm verification failed"
    assert title(StressProblem("stressor-failed", "cpu", "x", "SIGSEGV")) == \
        "stress-ng cpu killed by SIGSEGV"
    assert title(StressProblem("stressor-failed", "cpu", "x", exit_code=2)) == \
        "stress-ng cpu failed (exit 2)"
    assert title(StressProblem("stressor-failed", "", "x", exit_code=2)) == "stress-ng failed (exit 2)"
    assert title(StressProblem("stressor-failed", "", "x", "SIGSEGV", 139)) == \
        "stress-ng killed by SIGSEGV (exit 139)"
    assert title(StressProblem("other", "", "x", exit_code=7)) == "stress-ng failed (exit 7)"
    # an odd name never makes a new title per occurrence
    assert title(StressProblem("verify", "moving inversion 0x7f00", "x")) == \
        "stress-ng verification failed"
    with pytest.raises(ValueError):
        workload_verdict(StressProblem("skipped", "vm", "x"))


@pytest.mark.skipif(shutil.which("stress-ng") is None, reason="stress-ng is not installed")
def test_live_stress_ng_run_from_the_plan() -> None:
    settings = LoadSettings(stressors=["cpu", "vm", "io", "timer"], period="5s")
    run = next(plan_runs(settings, vcpus=1, memory_mib=256, seed=1, vm_index=0))
    argv = run.argv.replace("--timeout 5s", "--timeout 2s")  # the plan's own argv, shorter
    done = subprocess.run(["sh", "-c", argv], capture_output=True, text=True, timeout=60, cwd="/tmp")
    outcome = RunOutcome()
    lines = (done.stdout + done.stderr).splitlines()
    metrics = [m for line in lines if isinstance(m := outcome.feed(line), StressMetric)]
    assert done.returncode == 0, lines[-10:]
    assert [m.stressor for m in metrics] == list(run.stressors)
    assert all(m.real_s > 0 for m in metrics)
    assert outcome.verdict(done.returncode) is None
