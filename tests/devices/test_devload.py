"""The device loads' line protocol, their driver's figures and findings, and the device faults' QMP
sequences (fast: a scripted agent and monitor; the real guests are in test_guests.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

import pytest

from soak import events as ev
from soak.detect.verdict import Verdict
from soak.errors import QMPError
from soak.faults.devices import DiskTarget, balloon, disk_error, link_down
from soak.faults.settings import FaultSettings
from soak.kinds import Kind
from soak.load import devload
from soak.load.devload import DeviceLoadDriver, Pass, Problem, device_jobs, parse_line


def test_lines_of_the_guest_script() -> None:
    device, item = parse_line("SOAKIO disk soak-disk1 pass=3 bytes=8388608 write_cs=150 read_cs=50 ops=64 "
                              "mismatches=0") or ("", None)
    assert device == "disk1"
    assert item == Pass(read_bytes=8388608, read_s=0.5, write_bytes=8388608, write_s=1.5, busy_s=2.0, ops=64)
    _, net = parse_line("SOAKNET net pass=2 bytes=2097152 cs=40 rx_dropped=3 tx_dropped=1") or ("", None)
    assert net == Pass(read_bytes=1048576, read_s=0.4, write_bytes=1048576, write_s=0.4, busy_s=0.4, ops=1,
                       nic_dropped=4)
    assert parse_line("stress-ng: info: [1] dispatching hogs") is None

    _, error = parse_line("SOAKIO-ERROR disk soak-disk0 op=write chunk=3 pass=9 dd: error writing '/dev/vda': "
                          "Input/output error") or ("", None)
    assert isinstance(error, Problem) and error.verdict() == Verdict(
        Kind.IO_ERROR, "disk write failed: Input/output error", terminal=False, message=error.text)
    _, mismatch = parse_line('SOAKIO-MISMATCH disk soak-disk0 pass=7 chunk=9 offset=2359296 header="soak" '
                             "/tmp/x/exp /tmp/x/got differ: char 4097, line 2") or ("", None)
    assert isinstance(mismatch, Problem) and mismatch.verdict() is not None
    assert mismatch.verdict() == Verdict(Kind.WORKLOAD_FAILURE, "disk verify failed: data read back differs",
                                         terminal=False, message=mismatch.text)
    _, net_bad = parse_line("SOAKNET-MISMATCH net pass=4 got=1048576 - /tmp/x/in differ: char 5") or ("", None)
    assert isinstance(net_bad, Problem) and net_bad.verdict() is not None
    assert net_bad.verdict().title == "network verify failed: echoed data differs"  # type: ignore[union-attr]
    _, drop = parse_line("SOAKNET-DROP net pass=5 got=0 want=1048576 nc: can't connect") or ("", None)
    assert isinstance(drop, Problem) and drop.verdict() is None  # counted, not a failure
    _, rng = parse_line("SOAKRNG-FAIL rng read 0 of 4096 bytes from /dev/hwrng in 20s") or ("", None)
    assert isinstance(rng, Problem) and rng.verdict() is not None
    assert rng.verdict().kind is Kind.IO_ERROR  # type: ignore[union-attr]


def test_jobs_of_a_vm() -> None:
    jobs = device_jobs(disks=[(0, 128, 5.0), (1, 64, 2.5)], net_target="10.11.0.2", rng=True)
    assert [j.device for j in jobs] == ["disk0", "disk1", "net", "rng"]
    assert jobs[1].argv == "sh /lib/soak/devload.sh disk soak-disk1 64 2.5"
    assert jobs[2].argv == "sh /lib/soak/devload.sh net 10.11.0.2 7 1024 2"


class Agent:
    def __init__(self) -> None:
        self.started: list[str] = []

    async def start_job(self, cmd: str, timeout: float = 10.0) -> int:
        self.started.append(cmd)
        return len(self.started)

    async def stop_job(self, job: int, timeout: float = 10.0) -> None:
        pass


async def test_the_driver_reports_once_a_minute_and_a_finding_once_per_window(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(devload.clock, "now", lambda: now[0])
    events: list[ev.Event] = []
    found: list[Verdict] = []
    tasks: list[asyncio.Task[None]] = []

    async def record(verdict: Verdict, line: str) -> None:
        found.append(verdict)

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        tasks.append(asyncio.ensure_future(coro))

    driver = DeviceLoadDriver("d-0", device_jobs(disks=[(0, 32, 1.0)], net_target=None, rng=False),
                              emit=events.append, record=record, spawn=spawn)
    agent = Agent()
    run = asyncio.ensure_future(driver.run(agent))
    await asyncio.sleep(0)
    assert agent.started == ["sh /lib/soak/devload.sh disk soak-disk0 32 1"] and driver.owns(1)
    line = "SOAKIO disk soak-disk0 pass={} bytes=8388608 write_cs=100 read_cs=100 ops=64"
    driver.on_output(1, line.format(1))  # the first pass is reported at once
    now[0] += 10
    driver.on_output(1, line.format(2))  # then at most once a minute, summed
    now[0] += 55
    driver.on_output(1, line.format(3))
    reports = [e for e in events if isinstance(e, ev.DeviceIo)]
    assert [(r.device, r.seconds, r.read_bytes_per_s, r.iops) for r in reports] == [
        ("disk0", 2.0, 8388608.0, 32.0), ("disk0", 4.0, 8388608.0, 32.0)]
    error = "SOAKIO-ERROR disk soak-disk0 op=read chunk=1 pass={} dd: error reading '/dev/vda': Input/output error"
    for n in range(4, 8):
        driver.on_output(1, error.format(n))
        now[0] += 5
    await asyncio.gather(*tasks)
    assert [v.title for v in found] == ["disk read failed: Input/output error"] and driver.suppressed == 3
    driver.on_exit(1, 137)
    assert any(isinstance(e, ev.InfraProblem) and "disk0 load ended (exit 137)" in e.message for e in events)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)


class Monitor:
    """Answers QMP commands from a script; remembers every command."""

    def __init__(self, fail: Mapping[str, str] | None = None) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.fail = dict(fail or {})

    async def execute(self, command: str, arguments: Mapping[str, object] | None = None, *,
                      timeout: float | None = None) -> Any:
        self.sent.append((command, dict(arguments or {})))
        if command in self.fail:
            raise QMPError(self.fail.pop(command))
        if command == "query-balloon":
            return {"actual": self.sent[-2][1].get("value", 0)}
        return {}

    async def hmp(self, command_line: str, *, timeout: float | None = None) -> str:
        return ""

    async def status(self, *, timeout: float | None = None) -> str:
        return "running"

    async def close(self) -> None:
        pass


class Target:
    memory_mib = 256
    disks = (DiskTarget(0, Path("/r/disk0.qcow2"), 8 << 20, (True, False)),)


async def test_disk_error_slips_blkdebug_in_and_out_even_when_cut_short() -> None:
    qmp = Monitor()
    settings = FaultSettings(type="disk-error", at=["1s"], duration=0.1)
    detail, _ = await disk_error(settings, qmp, Target(), 3)
    assert "EIO" in detail
    commands = [(c, a.get("node-name") or a["options"][0]["file"]) for c, a in qmp.sent]
    assert commands == [("blockdev-add", "soak-disk0-err3"), ("blockdev-reopen", "soak-disk0-err3"),
                        ("blockdev-reopen", "soak-disk0-file"), ("blockdev-del", "soak-disk0-err3")]
    reopen = qmp.sent[1][1]["options"][0]
    assert reopen == {"driver": "qcow2", "node-name": "soak-disk0", "file": "soak-disk0-err3",
                      "cache": {"direct": True, "no-flush": False}, "discard": "unmap"}

    cut = Monitor()
    task = asyncio.ensure_future(disk_error(FaultSettings(type="disk-error", at=["1s"], duration=60), cut,
                                            Target(), 4))
    await asyncio.sleep(0.05)
    task.cancel()  # the run stops mid-window: the disk is given back its file all the same
    await asyncio.gather(task, return_exceptions=True)
    assert [c for c, _ in cut.sent] == ["blockdev-add", "blockdev-reopen", "blockdev-reopen", "blockdev-del"]

    refused = Monitor(fail={"blockdev-reopen": "Permission conflict"})
    with pytest.raises(QMPError):
        await disk_error(settings, refused, Target(), 5)
    assert [c for c, _ in refused.sent] == ["blockdev-add", "blockdev-reopen", "blockdev-del"]


async def test_balloon_and_link_down_undo_themselves() -> None:
    qmp = Monitor()
    await balloon(FaultSettings(type="balloon", at=["1s"], duration=0.1, target=0.25), qmp, Target(), 1)
    assert [(c, a.get("value")) for c, a in qmp.sent if c == "balloon"] == [("balloon", 64 << 20),
                                                                           ("balloon", 256 << 20)]
    link = Monitor()
    await link_down(FaultSettings(type="link-down", at=["1s"], duration=0.1), link, Target(), 1)
    assert link.sent == [("set_link", {"name": "soak-nic0", "up": False}), ("set_link", {"name": "soak-nic0",
                                                                                         "up": True})]


class Boot(Target):
    """A ready boot as the fault driver sees it."""

    def __init__(self) -> None:
        self.qmp = Monitor()
        self.agent = None
        self.qmp_timeout = 1.0
        self.alive = True
        self.held: list[str] = []

    def send_signal(self, sig: int) -> None:
        pass

    def suspend_watch(self) -> None:
        self.held.append("suspend")

    def resume_watch(self) -> None:
        self.held.append("resume")

    def expect_reboot(self) -> None:
        pass

    async def ends_within(self, timeout: float) -> bool:
        return False

    async def migrate(self, settings: FaultSettings, seq: int) -> str:
        return ""


async def test_an_oom_in_a_balloon_window_is_linked_to_it_and_the_guest_stays_watched() -> None:
    from soak import clock
    from soak.faults.driver import FaultDriver

    events: list[ev.Event] = []
    balloon_fault = FaultSettings(type="balloon", at=["1s"], duration=0.2, target=0.5)
    full = FaultSettings(type="disk-full", at=["2s"], duration=0.1)
    driver = FaultDriver("d-0", [balloon_fault, full], index_in_group=0, seed=1, emit=events.append,
                         memory_s=120)
    boot = Boot()
    await driver._apply(balloon_fault, boot)
    assert boot.held == []  # the guest runs through a balloon: a hang in the window is found
    assert driver.preceding(clock.now()) == ["balloon#1"] and not driver.intended(Kind.OOM, clock.now())
    boot.disks = ()  # type: ignore[assignment]
    await driver._apply(full, boot)  # no tmpfs disk: the fault cannot apply, and says so
    assert boot.held == ["suspend", "resume"]  # QEMU may pause the VM on a full disk: the watch is held
    assert any(isinstance(e, ev.InfraProblem) and "disk-full#2" in e.message for e in events)
