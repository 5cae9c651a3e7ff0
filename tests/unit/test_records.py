"""Journal records are validated on read: hostile records are skipped and counted, never crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from soak import events as ev
from soak.journal import read_journal
from soak.kinds import Kind
from soak.summary import load_summary
from soak.typedjson import FieldError, build

VM = {"name": "a-0", "group": "a", "vcpus": 2, "memory_mib": 256, "machine": "pc", "image": "i"}
STARTED = {"type": "run-started", "t": 100.0, "run_id": "r", "profile": "p", "profile_path": "p.toml", "seed": 1,
           "accel": "tcg", "accel_reason": "", "version": "0", "duration_s": 60, "command": ["soak"], "vms": [VM]}
FAILURE = {"type": "failure", "t": 110.0, "vm": "a-0", "kind": "kernel-panic", "title": "kernel panic: x", "boot": 1,
           "detected_by": "console"}


def record_error(record: dict[str, Any]) -> str:
    with pytest.raises(ev.RecordError) as caught:
        ev.from_record(record)
    return str(caught.value)


def test_a_good_record_is_rebuilt_and_unknown_keys_are_ignored() -> None:
    event = ev.from_record(STARTED | {"from_a_newer_soak": [1, 2]})
    assert isinstance(event, ev.RunStarted)
    assert event.vms[0] == ev.VmInfo(name="a-0", group="a", vcpus=2, memory_mib=256, machine="pc", image="i")
    assert event.duration_s == 60.0 and isinstance(event.duration_s, float)  # an int is a fine float
    assert event.qemu_version == ""  # a field added later takes its default in an old journal


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed": "1"}, "seed: expected an integer, got '1'"),
        ({"seed": True}, "seed: expected an integer, got True"),
        ({"seed": 1.5}, "seed: expected an integer, got 1.5"),
        ({"seed": 2**64}, "seed: 18446744073709551616 does not fit in 64 bits"),
        ({"duration_s": "60s"}, "duration_s: expected a number, got '60s'"),
        ({"duration_s": float("nan")}, "duration_s: expected a finite number"),
        ({"duration_s": float("inf")}, "duration_s: expected a finite number"),
        ({"t": None}, "t: expected a number, got None"),
        ({"command": "soak run"}, "command: expected a list, got 'soak run'"),
        ({"command": ["soak", 3]}, "command[1]: expected a string, got 3"),
        ({"vms": {"a-0": VM}}, "vms: expected a list"),
        ({"vms": ["a-0"]}, "vms[0]: expected an object, got 'a-0'"),
        ({"vms": [VM | {"vcpus": "2"}]}, "vms[0].vcpus: expected an integer, got '2'"),
        ({"vms": [{k: v for k, v in VM.items() if k != "group"}]}, "vms[0].group: missing"),
        ({"vms": [VM | {"expect": "oops"}]}, "vms[0].expect: expected a list"),
    ],
)
def test_wrong_fields_name_the_field(change: dict[str, Any], message: str) -> None:
    assert message in record_error(STARTED | change)


def test_missing_fields_and_wrong_enums_and_unions() -> None:
    assert "run_id: missing" in record_error({k: v for k, v in STARTED.items() if k != "run_id"})
    assert "kind: 'kernel-panik' is not one of" in record_error(FAILURE | {"kind": "kernel-panik"})
    assert "kind:" in record_error(FAILURE | {"kind": ["kernel-panic"]})
    assert "latency_s:" in record_error(FAILURE | {"latency_s": "fast"})
    assert ev.from_record(FAILURE | {"latency_s": None}) == ev.from_record(FAILURE)
    failure = ev.from_record(FAILURE | {"latency_s": 2})
    assert isinstance(failure, ev.Failure) and failure.kind is Kind.KERNEL_PANIC and failure.latency_s == 2.0
    assert "unknown event type" in record_error({"type": ["run-started"]})
    assert "unknown event type" in record_error({"t": 1})


def test_every_event_field_has_a_supported_annotation() -> None:
    """A field added to an event with a type typedjson cannot check fails here, not at read time."""
    records = [ev.to_record(e) for e in _every_event()]
    assert {r["type"] for r in records} == set(ev.EVENT_TYPES), "add the new event type to _every_event"
    for record in records:
        assert ev.from_record(json.loads(json.dumps(record))) is not None
        for name in record:
            if name != "type":  # a wrong value is a RecordError, never a TypeError
                record_error(record | {name: object()})


def test_build_refuses_what_is_not_an_object() -> None:
    with pytest.raises(FieldError, match="expected an object"):
        build(ev.VmInfo, ["a-0"])


HOSTILE_VALUES: list[object] = ["x", None, True, [{"a": 1}], -1, 2**70, 1e300]


def test_no_hostile_field_value_crashes_the_summary(tmp_path: Path) -> None:
    """Every field of every record of a small run, replaced by every hostile value: the summary
    never crashes; records that no longer fit are skipped and counted."""
    records = [ev.to_record(e) for e in _every_event()]
    outcomes = {0: 0, 1: 0}
    for index, record in enumerate(records):
        for name in record:
            if name == "type":
                continue
            for value in HOSTILE_VALUES:
                hostile = [*records[:index], record | {name: value}, *records[index + 1 :]]
                path = tmp_path / "journal.jsonl"
                path.write_text("".join(json.dumps(r) + "\n" for r in hostile))
                summary = load_summary(path)  # must not raise
                data = summary.to_json()
                json.dumps(data, allow_nan=False)  # and must stay strict JSON
                outcomes[summary.skipped_records] += 1
    assert outcomes[1] > 400 and outcomes[0] > 50, outcomes  # most are refused; some fit (0, -1, ...)


def test_unparseable_lines_are_skipped_not_raised(tmp_path: Path) -> None:
    good = json.dumps(ev.to_record(ev.VmRetired(t=120.0, vm="a-0", reason="x")))
    lines = [
        json.dumps(STARTED),
        "[" * 100_000,  # nests deeper than the parser's recursion
        "1" * 5000,  # an integer longer than Python converts
        '"just a string"',
        json.dumps(STARTED | {"vms": [VM | {"vcpus": "2"}]}),
        good,
    ]
    path = tmp_path / "journal.jsonl"
    path.write_text("\n".join(lines) + "\n" + good[:20])
    contents = read_journal(path)
    assert len(contents.events) == 2
    assert contents.skipped == 4
    assert contents.torn_tail
    summary = load_summary(path)
    assert summary.skipped_records == 4 and summary.torn_tail
    assert summary.to_json()["journal"] == {"torn_tail": True, "skipped_records": 4, "dropped_samples": 0}


def _every_event() -> list[ev.Event]:
    info = ev.VmInfo(name="a-0", group="a", vcpus=2, memory_mib=256, machine="pc", image="i", expect=["oom"],
                     expect_within_s=30)
    return [
        ev.RunStarted(t=100.0, run_id="r", profile="p", profile_path="p.toml", seed=1, accel="tcg",
                      accel_reason="", version="0", duration_s=60, command=["soak"], vms=[info]),
        ev.VmStarting(t=101.0, vm="a-0", boot=1, pid=5, argv=["qemu"]),
        ev.VmReady(t=103.0, vm="a-0", boot=1, boot_s=2.0, kernel="6.1.0"),
        ev.Heartbeat(t=104.0, vm="a-0", seq=1, uptime_s=1, load1=0.1, mem_free_kib=1, mem_available_kib=2,
                     gap_s=1, lateness_s=0.0),
        ev.HeartbeatLate(t=130.0, vm="a-0", age_s=21.0),
        ev.ProcessSample(t=104.0, vm="a-0", pid=5, cpu_s=1.0, rss_bytes=10, threads=3, fds=9),
        ev.WorkloadMetrics(t=105.0, vm="a-0", stressor="cpu", bogo_ops=10, bogo_ops_per_s=1.0, seconds=10),
        ev.DeviceIo(t=105.5, vm="a-0", device="disk0", seconds=2.5, read_bytes_per_s=3e7, write_bytes_per_s=2e7,
                    iops=120.0, drops=1, nic_dropped=0),
        ev.FaultInjected(t=106.0, vm="a-0", fault="pause", seq=1, duration_s=1.0),
        ev.Failure(t=107.0, vm="a-0", kind=Kind.OOM, title="oom", boot=1, detected_by="console", latency_s=0.1,
                   faults=["pause#1"], evidence="vms/a-0/failures/001-oom"),
        ev.VmStopped(t=108.0, vm="a-0", boot=1, reason="failure", exit_code=None, signal="SIGKILL", uptime_s=5,
                     heartbeats=4),
        ev.VmRestarting(t=108.0, vm="a-0", boot=2, after_s=1.0),
        ev.VmRetired(t=109.0, vm="a-0", reason="max restarts"),
        ev.InfraProblem(t=109.0, vm="a-0", problem="qmp", message="no answer"),
        ev.ConsoleDropped(t=109.5, vm="a-0", boot=1, dropped_bytes=4096, kept_bytes=1024, limit_bytes=2048),
        ev.Observation(t=109.6, vm="a-0", topic="console-flood", message="64 KiB/s", value=65536.0),
        ev.JournalDropped(t=109.7, dropped=3),
        ev.Migrated(t=109.8, vm="a-0", seq=2, mode="live", ok=True, total_s=0.5, downtime_s=0.02,
                    transferred_bytes=1 << 20, dirty_pages_rate=10.0, pid=6),
        ev.RunFinished(t=160.0, reason="deadline", verdict="failures", failures=1, infra_problems=1),
    ]
