"""Live migration as a fault, on fake machines: the VM moves to a new QEMU and goes on being watched."""

from __future__ import annotations

import asyncio
import gc
import signal
import weakref
from pathlib import Path

from soak import events as ev
from soak.machine.fake import Exit, FakeLauncher, GuestScript, Panic
from soak.profile import VmSpec
from soak.supervisor import Supervisor

from .virtual import fake_profile, run_fleet

MIGRATE_AT_20 = """
    [restart]
    policy = "never"
    [[group]]
    name = "m"
    [group.load]
    stressors = ["cpu"]
    pattern = "steady"
    period = "10s"
"""


def test_a_migrated_guest_goes_on_in_the_new_qemu(tmp_path: Path) -> None:
    profile = fake_profile(MIGRATE_AT_20 + """
        [[group.fault]]
        type = "migrate"
        every = "60s"
        start = "20s"
        jitter = 0.0
    """, duration="4m")
    run = run_fleet(profile, FakeLauncher(), tmp_path)
    assert run.titles() == []
    assert not run.probe.of(ev.InfraProblem)
    migrated = run.probe.of(ev.Migrated)
    assert len(migrated) >= 3 and all(m.ok and m.mode == "live" for m in migrated)
    machines = run.launcher.launched
    assert len(machines) == len(migrated) + 1  # the boot's machine, then one per migration
    assert [m.pid for m in migrated] == [m.pid for m in machines[1:]]
    assert all(m.returncode == 0 for m in machines)  # each source quit after the switch, the last one at the end
    assert machines[0].qmp is not None and "quit" in machines[0].qmp.commands
    (stopped,) = run.probe.of(ev.VmStopped)
    assert stopped.reason == "deadline" and stopped.boot == 1  # one boot, however many QEMUs ran it
    late = [b for b in run.probe.of(ev.Heartbeat) if b.lateness_s > 1.5]
    assert late == []  # heartbeats went on across every switch
    loads_after = [w for w in run.probe.of(ev.WorkloadMetrics) if w.t > run.probe.of(ev.Migrated)[-1].t]
    assert loads_after  # the load kept running on the latest QEMU


def test_a_failed_migration_is_a_finding_and_the_source_keeps_the_guest(tmp_path: Path) -> None:
    profile = fake_profile(MIGRATE_AT_20 + """
        [[group.fault]]
        type = "migrate"
        at = ["20s"]
        mode = "paused"
    """, duration="2m")
    error = "Unable to write to socket: Connection reset by peer (fd 12)"
    run = run_fleet(profile, FakeLauncher(GuestScript(migration_error=error)), tmp_path)
    assert run.titles() == [("migration-failure", "migration failed: Unable to write to socket: "
                                                  "Connection reset by peer (fd N)")]
    failure = run.failures()[0]
    assert failure.faults == ["migrate#1"] and not failure.expected and error in failure.message
    source, dest = run.launcher.launched
    assert dest.returncode == -signal.SIGKILL  # the destination was put down at once
    assert source.qmp is not None and source.qmp.commands.count("cont") == 1  # paused first, then given back
    assert [s.reason for s in run.probe.of(ev.VmStopped)] == ["deadline"]  # the guest lived on


def test_a_mismatched_destination_is_the_expected_migration_failure(tmp_path: Path) -> None:
    profile = fake_profile(MIGRATE_AT_20 + """
        [[group.fault]]
        type = "migrate"
        at = ["20s"]
        mismatch = "memory"
    """, duration="1m")
    run = run_fleet(profile, FakeLauncher(), tmp_path)
    (failure,) = run.failures()
    assert failure.kind.value == "migration-failure" and failure.expected
    assert failure.title == "migration failed: destination QEMU ended (exit code 1)"
    assert "Length mismatch" in failure.message


def test_a_guest_that_crashes_after_migration_is_linked_to_it(tmp_path: Path) -> None:
    profile = fake_profile(MIGRATE_AT_20 + """
        [[group.fault]]
        type = "migrate"
        at = ["20s"]
    """, duration="2m")

    launcher = FakeLauncher()
    run = run_fleet(profile, launcher, tmp_path, during=_crash_the_destination(launcher))
    (failure,) = run.failures()
    assert failure.kind.value == "kernel-panic" and failure.faults == ["migrate#1"]
    assert len(launcher.launched) == 2


def _crash_the_destination(launcher: FakeLauncher):  # type: ignore[no-untyped-def]
    import asyncio

    async def crash(_supervisor: object) -> None:
        while len(launcher.launched) < 2 or launcher.launched[1].incoming:
            await asyncio.sleep(0.5)
        await asyncio.sleep(5)
        launcher.launched[1].act(Panic("sysrq triggered crash"))

    return crash


def test_a_source_that_dies_during_migration_is_its_crash_alone_and_no_qemu_survives(tmp_path: Path) -> None:
    profile = fake_profile(MIGRATE_AT_20 + """
        [[group.fault]]
        type = "migrate"
        at = ["20s"]
    """, duration="1m")

    def script(spec: VmSpec, boot: int) -> GuestScript:
        return GuestScript(migration_s=10.0, steps=[(25.0, Exit(-signal.SIGSEGV))])

    run = run_fleet(profile, FakeLauncher(script), tmp_path)
    assert run.titles() == [("qemu-crash", "QEMU killed by SIGSEGV")]
    assert not run.probe.of(ev.InfraProblem)
    assert all(m.returncode is not None for m in run.launcher.launched)


def test_back_to_back_migrations_never_hide_a_hung_guest(tmp_path: Path) -> None:
    from soak.machine.fake import Hang

    profile = fake_profile(MIGRATE_AT_20 + """
        [[group.fault]]
        type = "migrate"
        every = "8s"
        start = "20s"
        jitter = 0.0
    """, duration="3m", hang_timeout="15s")
    run = run_fleet(profile, FakeLauncher(GuestScript(migration_s=2.0, steps=[(30.0, Hang(busy=True))])), tmp_path)
    assert [k for k, _ in run.titles()] == ["guest-hang"]
    hang = run.failures()[0]
    assert hang.t - run.probe.of(ev.VmReady)[0].t < 30 + 15 + 8 + 5  # the windows moved the deadline, never reset it


def test_a_run_that_stops_during_a_migration_leaves_no_qemu_and_no_finding(tmp_path: Path) -> None:
    profile = fake_profile(MIGRATE_AT_20 + """
        [[group.fault]]
        type = "migrate"
        at = ["20s"]
    """, duration="40s")  # the deadline falls in the middle of the migration
    run = run_fleet(profile, FakeLauncher(GuestScript(migration_s=30.0)), tmp_path)
    assert run.titles() == [] and not run.probe.of(ev.InfraProblem)
    assert all(m.returncode is not None for m in run.launcher.launched)
    assert run.ended_at < 40 + 2 + 10


def test_a_boot_migrated_for_hours_keeps_only_its_live_machines(tmp_path: Path) -> None:
    profile = fake_profile(MIGRATE_AT_20 + """
        [[group.fault]]
        type = "migrate"
        every = "5s"
        start = "20s"
        jitter = 0.0
    """, duration="30m")
    kept: list[tuple[int, int, int]] = []
    launcher = FakeLauncher()
    dead_alive: list[int] = []

    async def look(supervisor: Supervisor) -> None:
        await asyncio.sleep(29 * 60)
        run = supervisor.runners[0]._current
        assert run is not None
        kept.append((len(run._adopted), len(run._watches), len(run.console._readers)))
        dead = [weakref.ref(m) for m in launcher.launched if m.returncode is not None]
        launcher.launched[:] = [m for m in launcher.launched if m.returncode is None]  # the test's own list
        gc.collect()
        dead_alive.append(sum(ref() is not None for ref in dead))

    result = run_fleet(profile, launcher, tmp_path, during=look)
    migrations = [m for m in result.probe.of(ev.Migrated) if m.ok]
    assert len(migrations) > 300 and result.titles() == []
    (stopped,) = result.probe.of(ev.VmStopped)
    assert stopped.boot == 1  # all of them in one boot
    adopted, watches, readers = kept[0]
    assert adopted <= 2 and watches <= 2 and readers <= 2  # the machine, and at most the one being replaced
    assert dead_alive[0] <= 1  # of the hundreds of QEMUs it left, at most the last one is still held
