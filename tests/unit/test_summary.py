"""Summaries are folded from events alone: grouping by signature, VM totals, verdicts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from soak import events as ev
from soak.kinds import Kind
from soak.render import junit_xml
from soak.summary import summarize

VMS = [ev.VmInfo(name=f"g-{i}", group="g", vcpus=2**i, memory_mib=256, machine="pc", image="i") for i in range(3)]


def started(t: float = 0.0) -> ev.RunStarted:
    return ev.RunStarted(t=t, run_id="r1", profile="p", profile_path="p.toml", seed=7, accel="tcg", accel_reason="",
                         version="0", duration_s=100, command=[], vms=VMS)


def failure(t: float, vm: str, title: str, kind: Kind = Kind.KERNEL_WARNING, expected: bool = False) -> ev.Failure:
    return ev.Failure(t=t, vm=vm, kind=kind, title=title, boot=1, detected_by="console", evidence=f"vms/{vm}/f",
                      expected=expected)


def test_groups_repeats_by_title() -> None:
    events: list[ev.Event] = [started()]
    for i, vm in enumerate(["g-0", "g-1", "g-0", "g-2"]):
        events.append(failure(10.0 + i, vm, "WARNING in foo"))
    events.append(failure(20.0, "g-1", "kernel panic: bar", Kind.KERNEL_PANIC))
    events.append(ev.RunFinished(t=100.0, reason="deadline", verdict="failures", failures=5, infra_problems=0))
    s = summarize(events)
    assert [(g.title, g.count) for g in s.failures] == [("WARNING in foo", 4), ("kernel panic: bar", 1)]
    warn = s.failures[0]
    assert warn.vms == ["g-0", "g-1", "g-2"]
    assert (warn.first_seen, warn.last_seen) == (10.0, 13.0)
    assert warn.evidence == "vms/g-0/f"
    assert s.verdict == "failures" and s.exit_code == 1
    data = s.to_json()
    assert {"vms", "failures", "verdict"} <= set(data)
    assert data["vms"][0] | {"failures": 2} == data["vms"][0]
    assert set(data["failures"][0]) >= {"kind", "title", "count", "vms", "first_seen", "last_seen", "evidence"}


def test_uptime_boots_heartbeats_and_running_vms() -> None:
    events: list[ev.Event] = [
        started(),
        ev.VmStarting(t=1.0, vm="g-0", boot=1, pid=10, argv=[]),
        ev.VmReady(t=5.0, vm="g-0", boot=1, boot_s=4.0),
        ev.VmStopped(t=50.0, vm="g-0", boot=1, reason="failure", exit_code=-9, uptime_s=45.0, heartbeats=44),
        ev.VmStarting(t=52.0, vm="g-0", boot=2, pid=11, argv=[]),
        ev.VmReady(t=56.0, vm="g-0", boot=2, boot_s=4.0),
        ev.Heartbeat(t=60.0, vm="g-0", seq=4, uptime_s=4, load1=0, mem_free_kib=0, mem_available_kib=0, gap_s=1,
                     lateness_s=0),
    ]
    s = summarize(events, now=66.0)  # soak died or is still running: no RunFinished
    vm = s.vms["g-0"]
    assert vm.boots == 2
    assert vm.uptime_s == 55.0
    assert vm.heartbeats == 48
    assert s.finish_reason is None
    assert s.verdict == "clean"
    assert round(s.vm_hours * 3600) == 55


def test_expected_failures_do_not_fail_the_run() -> None:
    s = summarize([started(), failure(5.0, "g-0", "QEMU killed by SIGKILL", Kind.QEMU_CRASH, expected=True)])
    assert s.verdict == "clean"
    assert s.failures[0].expected == 1


def test_infra_problems_are_kept_apart() -> None:
    s = summarize([started(), ev.InfraProblem(vm="g-1", problem="launch", message="no memory")])
    assert s.verdict == "infra-error" and s.exit_code == 3
    assert s.to_json()["totals"]["failures"] == 0


def test_junit() -> None:
    s = summarize([started(), failure(5.0, "g-1", "WARNING in foo")])
    suite = ET.fromstring(junit_xml(s))
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"g-0", "g-1", "g-2"}
    assert cases["g-1"].find("failure") is not None
    assert cases["g-1"].find("failure").get("message") == "WARNING in foo"  # type: ignore[union-attr]
    assert cases["g-0"].find("failure") is None


def test_expectations_met_missed_and_late() -> None:
    vms = [
        ev.VmInfo(name="ok-0", group="ok", vcpus=1, memory_mib=256, machine="pc", image="i",
                  expect=["kernel-oops|kernel-panic"], expect_within_s=60),
        ev.VmInfo(name="late-0", group="late", vcpus=1, memory_mib=256, machine="pc", image="i",
                  expect=["hung-task"], expect_within_s=30),
        ev.VmInfo(name="none-0", group="none", vcpus=1, memory_mib=256, machine="pc", image="i",
                  expect=["qemu-crash"], expect_within_s=30),
    ]
    start = ev.RunStarted(t=0, run_id="r", profile="selftest", profile_path="p", seed=1, accel="tcg",
                          accel_reason="", version="0", duration_s=100, command=[], vms=vms)
    events: list[ev.Event] = [
        start,
        ev.FaultInjected(t=10.0, vm="ok-0", fault="oops", seq=1, expect="fail"),
        failure(12.5, "ok-0", "BUG: unable to handle kernel NULL pointer dereference in fi_write", Kind.KERNEL_OOPS,
                expected=True),
        ev.FaultInjected(t=10.0, vm="late-0", fault="hung", seq=1, expect="fail"),
        failure(70.0, "late-0", "INFO: task hung in fi_write", Kind.HUNG_TASK, expected=True),
        ev.VmReady(t=5.0, vm="none-0", boot=1, boot_s=4.0),
    ]
    s = summarize(events)
    by_vm = {e.vm: e for e in s.expectations}
    assert by_vm["ok-0"].met and by_vm["ok-0"].after_s == 2.5
    assert not by_vm["late-0"].met and by_vm["late-0"].after_s == 60.0
    assert not by_vm["none-0"].met and by_vm["none-0"].detected == ""
    assert s.unexpected_failures == 0
    assert s.verdict == "failures"  # two expectations missed
    assert [e["met"] for e in s.to_json()["expectations"]] == [True, False, False]


def test_junit_counts_only_vms_that_failed_unexpectedly() -> None:
    s = summarize([started(), failure(5.0, "g-0", "QEMU killed by SIGKILL", Kind.QEMU_CRASH, expected=True),
                   failure(6.0, "g-1", "WARNING in foo")])
    suite = ET.fromstring(junit_xml(s))
    assert suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["g-0"].find("failure") is None and cases["g-1"].find("failure") is not None
    data = s.to_json()
    assert [(v["failures"], v["expected_failures"]) for v in data["vms"]] == [(1, 1), (1, 0), (0, 0)]


def test_states_read_as_people_say_them() -> None:
    s = summarize([
        started(),
        ev.VmStarting(t=1.0, vm="g-0", boot=1, pid=10, argv=[]),
        ev.VmReady(t=5.0, vm="g-0", boot=1, boot_s=4.0),
        ev.VmStopped(t=9.0, vm="g-0", boot=1, reason="failure", exit_code=-9),
        ev.VmStarting(t=1.0, vm="g-1", boot=1, pid=11, argv=[]),
        ev.VmReady(t=5.0, vm="g-1", boot=1, boot_s=4.0),
        ev.VmStopped(t=99.0, vm="g-1", boot=1, reason="deadline", exit_code=0),
        ev.RunFinished(t=100.0, reason="deadline", verdict="clean", failures=0, infra_problems=0),
    ])
    assert {name: vm.state for name, vm in s.vms.items()} == {"g-0": "down", "g-1": "stopped", "g-2": "pending"}
