"""The runner's and the supervisor's logic on fake machines and a virtual clock.

Each test plays a scripted guest (`soak.machine.fake`) through the real
supervisor, runners, watchers and watchdog, and checks what was journaled.
Real QEMU proves QEMU's behaviour elsewhere (tests/integration); here the
point is every branch of soak's own decisions, fast and deterministic.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from soak import events as ev
from soak.machine.fake import (
    Event,
    Exit,
    FakeLauncher,
    Freeze,
    GuestScript,
    Hang,
    Panic,
    Postmortem,
    Print,
    Reboot,
    Stop,
)
from soak.profile import VmSpec
from soak.supervisor import Supervisor
from tests.classify.test_formats import CASES

from .virtual import fake_profile, run_fleet

ONE_VM = """
    [[group]]
    name = "a"
"""


def test_clean_fleet_runs_to_its_deadline_and_powers_off(tmp_path: Path) -> None:
    profile = fake_profile("""
        [[group]]
        name = "a"
        count = 3
        vcpus = [1, 2, 4]
    """, duration="10m")
    run = run_fleet(profile, FakeLauncher(), tmp_path)
    assert run.reason == "deadline"
    assert run.titles() == []
    assert [e.vm for e in run.probe.of(ev.VmReady)] == ["a-0", "a-1", "a-2"]
    stopped = run.probe.of(ev.VmStopped)
    assert {(s.vm, s.reason, s.exit_code) for s in stopped} == {(f"a-{i}", "deadline", 0) for i in range(3)}
    assert all(s.heartbeats >= 590 for s in stopped)
    assert all(m.qmp is not None and "quit" not in m.qmp.commands for m in run.launcher.launched)  # poweroff did it
    assert 600 <= run.ended_at < 600 + 5


def test_qemu_crash_restarts_until_the_policy_gives_up(tmp_path: Path) -> None:
    profile = fake_profile(ONE_VM + """
        [restart]
        policy = "on-failure"
        max_restarts = 2
        backoff = "3s"
    """)
    launcher = FakeLauncher(GuestScript(steps=[(20.0, Exit(-signal.SIGSEGV))]))
    run = run_fleet(profile, launcher, tmp_path)
    assert run.titles() == [("qemu-crash", "QEMU killed by SIGSEGV")] * 3
    assert [r.boot for r in run.probe.of(ev.VmRestarting)] == [2, 3]
    (retired,) = run.probe.of(ev.VmRetired)
    assert retired.reason == "restart policy: 2 restarts used"
    assert len(launcher.launched) == 3
    assert run.ended_at < 100  # its only VM retired: the run is over before its deadline
    evidence = tmp_path / "run" / run.failures()[0].evidence
    assert {"console-tail.log", "qemu-argv.txt", "reproduce.sh", "failure.json"} <= {p.name for p in evidence.iterdir()}


def test_policy_never_retires_after_the_first_failure(tmp_path: Path) -> None:
    profile = fake_profile(ONE_VM + '[restart]\npolicy = "never"\n')
    run = run_fleet(profile, FakeLauncher(GuestScript(steps=[(5.0, Exit(-signal.SIGKILL))])), tmp_path)
    assert run.titles() == [("qemu-crash", "QEMU killed by SIGKILL")]
    assert [r.reason for r in run.probe.of(ev.VmRetired)] == ["restart policy: never"]


def test_stop_ladder_falls_back_to_qmp_quit_then_sigkill(tmp_path: Path) -> None:
    profile = fake_profile("""
        [[group]]
        name = "a"
        count = 2
    """, duration="1m")

    def script(spec: VmSpec, boot: int) -> GuestScript:
        if spec.name == "a-0":
            return GuestScript(poweroff_works=False)  # the guest ignores the agent: QMP quit does it
        return GuestScript(poweroff_works=False, steps=[(59.0, Freeze())])  # QEMU hangs: only SIGKILL works

    run = run_fleet(profile, FakeLauncher(script), tmp_path)
    first, second = run.launcher.launched
    assert first.qmp is not None and "quit" in first.qmp.commands and first.returncode == 0
    assert second.signals[-1] == signal.SIGKILL and second.returncode == -signal.SIGKILL
    assert run.titles() == []  # the stop of a frozen QEMU at the deadline is not a finding
    assert run.ended_at < 60 + 2 * 5 + 1  # two ladder steps of shutdown_timeout, then the kill


@pytest.mark.parametrize(("action", "title"), [
    (Hang(busy=True), ("guest-hang", "guest hang: no heartbeat, vCPUs busy")),
    (Hang(busy=False), ("guest-hang", "guest hang: no heartbeat, vCPUs idle")),
    (Freeze(), ("qemu-hang", "QEMU hang: QMP not answering")),
])
def test_lost_heartbeats_are_diagnosed_before_the_kill(tmp_path: Path, action: object, title: tuple[str, str]) -> None:
    profile = fake_profile(ONE_VM + '[restart]\npolicy = "never"\n', hang_timeout="10s")
    run = run_fleet(profile, FakeLauncher(GuestScript(steps=[(30.0, action)])), tmp_path)  # type: ignore[list-item]
    assert run.titles() == [title]
    assert len(run.probe.of(ev.HeartbeatLate)) == 1
    failure = run.failures()[0]
    assert failure.detected_by == "heartbeat"
    assert failure.latency_s is not None and failure.latency_s < 5
    files = {p.name for p in (tmp_path / "run" / failure.evidence).iterdir()}
    assert "threads.txt" in files
    assert ("registers.txt" in files) == (title[0] == "guest-hang")  # a hung QEMU cannot give registers


def test_a_starved_host_is_not_a_guest_hang(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("soak.hostload.host_overloaded", lambda: True)
    profile = fake_profile(ONE_VM, duration="2m")
    run = run_fleet(profile, FakeLauncher(GuestScript(steps=[(30.0, Hang(busy=False, starved=True))])), tmp_path)
    assert run.titles() == []
    problems = run.probe.of(ev.InfraProblem)
    assert problems and all(p.problem == "host-starved" for p in problems)


def test_unexpected_pause_is_reported(tmp_path: Path) -> None:
    profile = fake_profile(ONE_VM + '[restart]\npolicy = "never"\n')
    run = run_fleet(profile, FakeLauncher(GuestScript(steps=[(15.0, Stop("internal-error"))])), tmp_path)
    assert run.titles() == [("unexpected-pause", "VM stopped: hypervisor internal error")]
    assert run.failures()[0].detected_by == "qmp"


def test_a_panic_is_one_failure_named_by_the_console(tmp_path: Path) -> None:
    profile = fake_profile(ONE_VM + '[restart]\npolicy = "never"\n')
    run = run_fleet(profile, FakeLauncher(GuestScript(steps=[(15.0, Panic("sysrq triggered crash"))])), tmp_path)
    assert run.titles() == [("kernel-panic", "kernel panic: sysrq triggered crash")]
    evidence = tmp_path / "run" / run.failures()[0].evidence
    assert "fake registers" in (evidence / "registers.txt").read_text()
    assert "Kernel panic" in (evidence / "report.txt").read_text()


def test_a_warning_is_recorded_and_the_boot_goes_on(tmp_path: Path) -> None:
    warning = tuple(CASES["warning"][0].splitlines())
    profile = fake_profile(ONE_VM, duration="1m")
    run = run_fleet(profile, FakeLauncher(GuestScript(steps=[(12.0, Print(warning))])), tmp_path)
    assert run.titles() == [("kernel-warning", "WARNING in fi_write")]
    failure = run.failures()[0]
    assert failure.latency_s is not None and failure.latency_s <= 1.0  # settled by its end marker, not the grace
    assert len(run.launcher.launched) == 1
    assert [s.reason for s in run.probe.of(ev.VmStopped)] == ["deadline"]


def test_qemu_that_refuses_its_configuration_is_an_infra_problem_not_a_guest_bug(tmp_path: Path) -> None:
    profile = fake_profile(ONE_VM)
    stderr = "qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory\n"
    run = run_fleet(profile, FakeLauncher(GuestScript(hello_after=None, steps=[(0.1, Exit(1))], stderr=stderr)),
                    tmp_path)
    assert run.titles() == []
    (problem,) = run.probe.of(ev.InfraProblem)
    assert problem.problem == "launch" and "cannot set up guest memory" in problem.message
    (retired,) = run.probe.of(ev.VmRetired)
    assert retired.reason.startswith("QEMU cannot start this VM")
    assert len(run.launcher.launched) == 1  # no restart loop


def test_qemu_crash_is_titled_by_its_last_words_with_its_backtrace(tmp_path: Path) -> None:
    profile = fake_profile(ONE_VM + '[restart]\npolicy = "never"\n')
    stderr = "qemu-system-x86_64: ../hw/core/cpu-common.c:167: cpu_reset: Assertion `cpu != NULL' failed.\n"
    post = Postmortem(files={"qemu-backtrace.txt": "#0 abort ()\n"}, note="core deleted after reading")
    run = run_fleet(profile, FakeLauncher(GuestScript(steps=[(20.0, Exit(-signal.SIGABRT))], stderr=stderr,
                                                      postmortem=post)), tmp_path)
    (failure,) = run.failures()
    assert failure.title.startswith("QEMU assertion") and "cpu_reset" in failure.title
    assert "core deleted after reading" in failure.message
    assert (tmp_path / "run" / failure.evidence / "qemu-backtrace.txt").read_text() == "#0 abort ()\n"


def test_qemu_killed_by_the_hosts_oom_killer_is_host_trouble(tmp_path: Path) -> None:
    profile = fake_profile(ONE_VM + """
        [restart]
        policy = "on-failure"
        max_restarts = 1
    """)

    def script(spec: VmSpec, boot: int) -> GuestScript:
        if boot == 1:
            oom = Postmortem(host_oom="Out of memory: Killed process 4242 (qemu-system-x86)")
            return GuestScript(steps=[(20.0, Exit(-signal.SIGKILL))], postmortem=oom)
        return GuestScript()

    run = run_fleet(profile, FakeLauncher(script), tmp_path)
    assert run.titles() == []
    (problem,) = run.probe.of(ev.InfraProblem)
    assert problem.problem == "host-oom" and "Killed process 4242" in problem.message
    assert len(run.launcher.launched) == 2  # the host's trouble may pass: the VM boots again


def test_a_launcher_error_retires_the_vm(tmp_path: Path) -> None:
    profile = fake_profile(ONE_VM)
    run = run_fleet(profile, FakeLauncher(GuestScript(launch_error="cannot run qemu-img")), tmp_path)
    assert [p.problem for p in run.probe.of(ev.InfraProblem)] == ["launch"]
    assert len(run.probe.of(ev.VmRetired)) == 1 and run.titles() == []


def test_a_guest_that_never_says_hello_is_a_boot_timeout(tmp_path: Path) -> None:
    profile = fake_profile(ONE_VM + '[restart]\npolicy = "never"\n')
    run = run_fleet(profile, FakeLauncher(GuestScript(hello_after=None,
                                                      steps=[(1.0, Print(("Linux version 6.1",)))])), tmp_path)
    assert [k for k, _ in run.titles()] == ["boot-timeout"]
    (starting,) = run.probe.of(ev.VmStarting)
    assert run.failures()[0].t - starting.t == pytest.approx(30.0, abs=0.1)


def test_a_guest_that_reboots_itself_is_a_guest_reset(tmp_path: Path) -> None:
    profile = fake_profile(ONE_VM + '[restart]\npolicy = "never"\n')
    run = run_fleet(profile, FakeLauncher(GuestScript(steps=[(20.0, Reboot())])), tmp_path)
    assert run.titles() == [("guest-reset", "guest reset itself")]


def test_a_guest_poweroff_is_a_guest_shutdown(tmp_path: Path) -> None:
    profile = fake_profile(ONE_VM + '[restart]\npolicy = "never"\n')
    steps = [(20.0, Event("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"})), (20.1, Exit(0))]
    run = run_fleet(profile, FakeLauncher(GuestScript(steps=steps)), tmp_path)
    assert run.titles() == [("guest-shutdown", "guest powered off")]


def test_survived_faults_are_not_failures(tmp_path: Path) -> None:
    profile = fake_profile("""
        [[group]]
        name = "a"
        [group.load]
        stressors = ["cpu"]
        pattern = "steady"
        period = "20s"
        [[group.fault]]
        type = "pause"
        at = ["20s"]
        duration = "30s"
        [[group.fault]]
        type = "reset"
        at = ["100s"]
        [[group.fault]]
        type = "nmi"
        at = ["150s"]
    """, duration="4m", hang_timeout="10s")
    run = run_fleet(profile, FakeLauncher(), tmp_path)
    assert run.titles() == []
    assert [f.fault for f in run.probe.of(ev.FaultInjected)] == ["pause", "reset", "nmi"]
    (machine,) = run.launcher.launched
    assert machine.qmp is not None
    applied = [c for c in machine.qmp.commands if c in ("stop", "cont", "system_reset", "inject-nmi")]
    assert applied == ["stop", "cont", "system_reset", "inject-nmi"]
    assert run.probe.of(ev.WorkloadMetrics)  # the load ran, and ran again after the reset
    assert not run.probe.of(ev.InfraProblem)


def test_a_fault_that_fails_because_qemu_died_is_part_of_that_crash(tmp_path: Path) -> None:
    profile = fake_profile(ONE_VM + """
        [restart]
        policy = "never"
        [[group.fault]]
        type = "pause"
        at = ["10s"]
        duration = "20s"
    """)
    run = run_fleet(profile, FakeLauncher(GuestScript(steps=[(25.0, Exit(-signal.SIGABRT))])), tmp_path)
    assert run.titles() == [("qemu-crash", "QEMU killed by SIGABRT")]
    assert run.failures()[0].faults == ["pause#1"]
    assert not run.probe.of(ev.InfraProblem)  # the pause's failed `cont` is the crash, not a second problem


def test_a_bug_in_one_runner_retires_its_vm_and_the_fleet_goes_on(tmp_path: Path) -> None:
    profile = fake_profile("""
        [[group]]
        name = "a"
        count = 2
    """, duration="1m")

    def script(spec: VmSpec, boot: int) -> GuestScript:
        if spec.name == "a-1":
            raise RuntimeError("a bug in soak")
        return GuestScript()

    run = run_fleet(profile, FakeLauncher(script), tmp_path)
    (problem,) = run.probe.of(ev.InfraProblem)
    assert problem.problem == "soak-bug" and problem.vm == "a-1" and "a bug in soak" in problem.message
    assert [r.vm for r in run.probe.of(ev.VmRetired)] == ["a-1"]
    assert [s.reason for s in run.probe.of(ev.VmStopped, "a-0")] == ["deadline"]


def test_a_second_signal_kills_every_guest_at_once(tmp_path: Path) -> None:
    profile = fake_profile("""
        [[group]]
        name = "a"
        count = 3
    """)
    launcher = FakeLauncher()

    async def interrupt(supervisor: Supervisor) -> None:
        await asyncio.sleep(30)
        for machine in launcher.launched:
            machine.script = GuestScript(poweroff_works=False)  # the gentle stop would take a while
        supervisor.request_stop("signal")
        await asyncio.sleep(0.5)
        next(t for t in asyncio.all_tasks() if t.get_name() == "supervise").cancel()

    run = run_fleet(profile, launcher, tmp_path, during=interrupt)
    assert run.reason == "cancelled"
    assert all(m.returncode == -signal.SIGKILL for m in launcher.launched)
    assert run.ended_at < 31 + 1


def test_faults_declared_to_fail_give_expected_failures(tmp_path: Path) -> None:
    profile = fake_profile("""
        [restart]
        policy = "never"
        [[group]]
        name = "s"
        fault = [{ type = "sigstop", at = ["20s"], duration = "60s", expect = "fail" }]
        [[group]]
        name = "k"
        fault = [{ type = "kill", at = ["20s"] }]
    """, hang_timeout="10s")
    run = run_fleet(profile, FakeLauncher(), tmp_path)
    assert run.titles("s-0") == [("qemu-hang", "QEMU hang: QMP not answering (process stopped)")]
    assert run.titles("k-0") == [("qemu-crash", "QEMU killed by SIGKILL")]
    assert all(f.expected for f in run.failures())
    assert sorted(f.faults[0] for f in run.failures()) == ["kill#1", "sigstop#1"]


def test_the_same_signal_twice_at_once_is_one_request_to_stop_gently(tmp_path: Path) -> None:
    import os

    profile = fake_profile("""
        [[group]]
        name = "a"
        count = 2
    """)
    launcher = FakeLauncher()

    async def scancel(supervisor: Supervisor) -> None:
        await asyncio.sleep(30)
        os.kill(os.getpid(), signal.SIGTERM)  # Slurm's TERM to soak, and its batch script's forwarded one
        os.kill(os.getpid(), signal.SIGTERM)

    run = run_fleet(profile, launcher, tmp_path, during=scancel)
    assert run.reason == "signal"  # stopped in order, not cancelled
    assert [s.reason for s in run.probe.of(ev.VmStopped)] == ["signal", "signal"]
    assert all(m.returncode == 0 for m in launcher.launched)  # powered off, not killed


def test_a_full_disk_stops_the_whole_run_gently_once(tmp_path: Path) -> None:
    from soak.diskio import DiskAlarm

    profile = fake_profile("""
        [[group]]
        name = "a"
        count = 3
    """)

    async def fill_the_disk(supervisor: Supervisor) -> None:
        await asyncio.sleep(30)
        alarm = DiskAlarm(supervisor.recorder.emit, supervisor.request_stop)
        alarm.trip("disk-full", "the journal: No space left on device")
        alarm.trip("disk-full", "the console of a-1: No space left on device")  # said once, stopped once

    launcher = FakeLauncher()
    run = run_fleet(profile, launcher, tmp_path, during=fill_the_disk)
    assert run.reason == "disk-full"
    assert [(p.problem, p.vm) for p in run.probe.of(ev.InfraProblem)] == [("disk-full", None)]
    assert [s.reason for s in run.probe.of(ev.VmStopped)] == ["disk-full"] * 3
    assert all(m.returncode == 0 for m in launcher.launched)  # powered off in order, nothing killed
    assert run.titles() == []


@pytest.mark.parametrize("starved", [None, "host CPU pressure 97% over the last minute"])
def test_a_soft_lockup_on_a_starved_host_is_the_hosts_not_the_guests(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, starved: str | None) -> None:
    monkeypatch.setattr("soak.hostload.host_starved_lately", lambda: starved)
    lockup = tuple(CASES["soft-lockup"][0].splitlines())
    profile = fake_profile(ONE_VM, duration="1m")
    run = run_fleet(profile, FakeLauncher(GuestScript(steps=[(20.0, Print(lockup))])), tmp_path)
    if starved is None:
        assert [kind for kind, _ in run.titles()] == ["soft-lockup"]
        assert not run.probe.of(ev.InfraProblem)
    else:
        assert run.titles() == []
        (problem,) = run.probe.of(ev.InfraProblem)
        assert problem.problem == "host-starved" and "soft lockup" in problem.message and starved in problem.message


def test_a_soft_lockup_after_a_guest_failure_is_the_guests_however_starved_the_host(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The self-test's injected lockups go on reporting while its 16 guests starve a 2-core host:
    once a boot has a guest failure, what follows comes from it."""
    monkeypatch.setattr("soak.hostload.host_starved_lately", lambda: "host CPU pressure 97% over the last minute")
    warning = tuple(CASES["warning"][0].splitlines())
    lockup = tuple(CASES["soft-lockup"][0].splitlines())
    profile = fake_profile(ONE_VM, duration="1m")
    run = run_fleet(profile, FakeLauncher(GuestScript(steps=[(10.0, Print(warning)), (20.0, Print(lockup))])),
                    tmp_path)
    assert [kind for kind, _ in run.titles()] == ["kernel-warning", "soft-lockup"]
    assert not run.probe.of(ev.InfraProblem)


def test_a_vm_faulted_for_hours_remembers_only_its_recent_faults(tmp_path: Path) -> None:
    profile = fake_profile(ONE_VM + """
        [[group.fault]]
        type = "nmi"
        every = "5s"
        start = "10s"
        jitter = 0.0
    """, duration="30m", hang_timeout="10s")
    remembered: list[int] = []

    async def look(supervisor: Supervisor) -> None:
        await asyncio.sleep(29 * 60)
        remembered.append(supervisor.runners[0].vm.faults.remembered)

    run = run_fleet(profile, FakeLauncher(), tmp_path, during=look)
    assert len(run.probe.of(ev.FaultInjected)) > 300 and run.titles() == []
    memory_s = 120.0  # max(120 s, 3 x hang_timeout): what a failure looks back on
    assert remembered[0] <= memory_s / 5 + 1
