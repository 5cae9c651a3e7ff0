"""The verified device loads of one boot: disks, network and RNG, judged line by line.

Each device of a VM gets one endless agent job running ``/lib/soak/devload.sh``
(the guest side of the line protocol documented there). Its lines become:

- throughput: passes are summed per device and journaled as one `DeviceIo`
  event per device at most every `REPORT_S` (the first pass at once), so the
  journal stays bounded however fast the passes come;
- findings: data read back (or echoed back) that differs from what was
  written is a ``workload-failure`` (silent corruption, the worst a soak can
  miss); a failed read or write the guest saw is an ``io-error`` (a
  ``disk-error`` fault declares it as its outcome); a network that moves no
  verified byte for `stall_s` is a ``workload-failure`` too (a link that does not
  recover). A dropped transfer is counted, never a failure by itself: links go
  down on purpose and user-mode connections do not survive a migration.

Titles carry no numbers (chunk, pass, offsets stay in the message), so repeats
count under one signature.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from soak import clock
from soak import events as ev
from soak.detect.verdict import Verdict
from soak.devices.plan import ECHO_PORT
from soak.errors import AgentError
from soak.kinds import Kind
from soak.load.driver import JobAgent

log = logging.getLogger(__name__)

SCRIPT = "/lib/soak/devload.sh"
CHUNK_BYTES = 256 << 10
"""The guest script's O_DIRECT request size (``CHUNK`` in devload.sh)."""
NET_KIB = 1024
"""Bytes per verified network transfer (each echoed back: twice on the wire)."""
NET_IDLE_S = 2.0
RNG_BYTES = 4096
RNG_IDLE_S = 30.0
REPORT_S = 60.0
"""At most one `DeviceIo` per device this often: a long run's journal stays bounded."""
REPEAT_S = 60.0
"""A finding with the same title on the same device is recorded again only after this long: an
error window of many failed passes is one failure going on, not one per pass."""
STALL_S = 120.0
"""A network that moves no verified byte this long (beyond its link-down windows) did not recover."""
MAX_MESSAGE = 500

_PASS = re.compile(r"^SOAK(?P<what>IO|NET|RNG)(?:-(?P<problem>ERROR|MISMATCH|DROP|FAIL))? (?P<device>\S+)"
                   r"(?: (?P<rest>.*))?$")
_FIELD = re.compile(r"(\w+)=(\d+)")


@dataclass(frozen=True, slots=True)
class DeviceJob:
    """One device's load: the job's command line and the name its figures go under."""

    device: str
    """``disk0`` ..., ``net``, ``rng``."""
    argv: str


def device_jobs(*, disks: list[tuple[int, int, float]], net_target: str | None, rng: bool) -> list[DeviceJob]:
    """The loads of a VM: ``disks`` as (index, chunks per pass, idle seconds), the echo its network
    sends to (None: no network), and the RNG check."""
    jobs = [DeviceJob(f"disk{i}", shlex.join(["sh", SCRIPT, "disk", f"soak-disk{i}", str(chunks), f"{idle:g}"]))
            for i, chunks, idle in disks]
    if net_target is not None:
        jobs.append(DeviceJob("net", shlex.join(["sh", SCRIPT, "net", net_target, str(ECHO_PORT), str(NET_KIB),
                                                 f"{NET_IDLE_S:g}"])))
    if rng:
        jobs.append(DeviceJob("rng", shlex.join(["sh", SCRIPT, "rng", str(RNG_BYTES), f"{RNG_IDLE_S:g}"])))
    return jobs


@dataclass(frozen=True, slots=True)
class Pass:
    """One pass of a device load: bytes moved and the time they took."""

    read_bytes: int = 0
    read_s: float = 0.0
    write_bytes: int = 0
    write_s: float = 0.0
    busy_s: float = 0.0
    """The pass's whole time (a network pass reads and writes at once)."""
    ops: int = 0
    nic_dropped: int = 0
    """The guest NIC's own drop counters (rx + tx), since its boot."""


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    """``error``, ``mismatch``, ``drop`` or ``fail`` (as the line says)."""
    what: str
    """``IO``, ``NET``, ``RNG``."""
    text: str

    def verdict(self) -> Verdict | None:
        """The finding this problem is; None for a dropped transfer (counted, not a failure)."""
        message = self.text[:MAX_MESSAGE]
        if self.kind == "mismatch":
            title = "disk verify failed: data read back differs" if self.what == "IO" else \
                "network verify failed: echoed data differs"
            return Verdict(Kind.WORKLOAD_FAILURE, title, terminal=False, message=message)
        if self.kind == "error":
            op = re.search(r"\bop=(\w+)", self.text)
            return Verdict(Kind.IO_ERROR, f"disk {op[1] if op else 'I/O'} failed: {_errno_words(self.text)}",
                           terminal=False, message=message)
        if self.kind == "fail":
            return Verdict(Kind.IO_ERROR, "virtio-rng gave no entropy", terminal=False, message=message)
        return None


def _errno_words(text: str) -> str:
    """The error's own words (``Input/output error``), without paths or numbers."""
    words = text.rsplit(": ", 1)[-1] if ": " in text else "I/O error"
    return re.sub(r"[^A-Za-z /-]", "", words).strip()[:60] or "I/O error"


def parse_line(text: str) -> tuple[str, Pass | Problem] | None:
    """A line of devload.sh as (device, what it says), or None (not the protocol's)."""
    match = _PASS.match(text.strip())
    if match is None:
        return None
    what, rest = match["what"], match["rest"] or ""
    device = match["device"]
    if what == "IO":
        serial = rest.split(" ", 1)[0]
        device = serial.removeprefix("soak-")
    if match["problem"]:
        return device, Problem(match["problem"].lower(), what, text.strip())
    fields = {k: int(v) for k, v in _FIELD.findall(rest)}
    if what == "IO":
        read_s, write_s = fields.get("read_cs", 0) / 100, fields.get("write_cs", 0) / 100
        return device, Pass(read_bytes=fields.get("bytes", 0), read_s=read_s, write_bytes=fields.get("bytes", 0),
                            write_s=write_s, busy_s=read_s + write_s, ops=fields.get("ops", 0))
    seconds = fields.get("cs", 0) / 100
    if what == "NET":
        half = fields.get("bytes", 0) // 2
        return device, Pass(read_bytes=half, read_s=seconds, write_bytes=half, write_s=seconds, busy_s=seconds,
                            ops=1, nic_dropped=fields.get("rx_dropped", 0) + fields.get("tx_dropped", 0))
    return device, Pass(read_bytes=fields.get("bytes", 0), read_s=seconds, busy_s=seconds, ops=1)


@dataclass
class _Totals:
    """Passes of one device since its last `DeviceIo`."""

    read_bytes: int = 0
    read_s: float = 0.0
    write_bytes: int = 0
    write_s: float = 0.0
    busy_s: float = 0.0
    ops: int = 0
    drops: int = 0
    last_report: float | None = None
    nic_dropped: int = 0

    def add(self, p: Pass) -> None:
        self.read_bytes += p.read_bytes
        self.read_s += p.read_s
        self.write_bytes += p.write_bytes
        self.write_s += p.write_s
        self.busy_s += p.busy_s
        self.ops += p.ops
        self.nic_dropped = p.nic_dropped

    def event(self, vm: str, device: str) -> ev.DeviceIo:
        busy = self.busy_s
        return ev.DeviceIo(vm=vm, device=device, seconds=round(busy, 2),
                           read_bytes_per_s=round(self.read_bytes / self.read_s, 1) if self.read_s else 0.0,
                           write_bytes_per_s=round(self.write_bytes / self.write_s, 1) if self.write_s else 0.0,
                           iops=round(self.ops / busy, 2) if busy else 0.0, drops=self.drops,
                           nic_dropped=self.nic_dropped)


@dataclass
class _Device:
    job: DeviceJob
    totals: _Totals = field(default_factory=_Totals)
    last_ok: float = 0.0
    stalled: bool = False


class DeviceLoadDriver:
    """Runs a VM's device loads for one boot and turns their lines into events and findings."""

    def __init__(self, vm: str, jobs: list[DeviceJob], *, emit: Callable[[ev.Event], None],
                 record: Callable[[Verdict, str], Coroutine[Any, Any, None]],
                 spawn: Callable[[Coroutine[Any, Any, None]], object], stall_s: float = STALL_S) -> None:
        """:param spawn: runs a finding's record beside the boot (the boot's task group)."""
        self.vm = vm
        self.emit = emit
        self.record = record
        self.spawn = spawn
        self.stall_s = stall_s
        self._devices = {job.device: _Device(job) for job in jobs}
        self._jobs: dict[int, _Device] = {}
        self._recorded: dict[tuple[str, str], float] = {}
        self.suppressed = 0
        """Repeats of a finding within `REPEAT_S`, not recorded again."""

    async def run(self, agent: JobAgent) -> None:
        """Start every device's job, then watch the network for a stall until cancelled."""
        now = clock.now()
        for device in self._devices.values():
            try:
                self._jobs[await agent.start_job(device.job.argv)] = device
            except AgentError as exc:
                log.info("%s: cannot start the %s load: %s", self.vm, device.job.device, exc)
                return
            device.last_ok = now
        net = self._devices.get("net")
        try:
            while net is not None:
                await asyncio.sleep(max(1.0, net.last_ok + self.stall_s - clock.now()))
                if not net.stalled and clock.now() - net.last_ok >= self.stall_s:
                    net.stalled = True
                    await self.record(Verdict(
                        Kind.WORKLOAD_FAILURE, "network traffic did not recover", terminal=False,
                        message=f"no verified transfer for {self.stall_s:.0f}s "
                                f"({net.totals.drops} dropped since the last report)"), "")
        finally:
            for device in self._devices.values():
                self._report(device.job.device, device, force=True)

    def owns(self, job: int) -> bool:
        return job in self._jobs

    def on_output(self, job: int, text: str) -> None:
        device = self._jobs.get(job)
        parsed = parse_line(text) if device is not None else None
        if device is None or parsed is None:
            return
        _, item = parsed
        if isinstance(item, Pass):
            device.totals.add(item)
            device.last_ok = clock.now()
            device.stalled = False
            self._report(device.job.device, device)
            return
        if item.kind == "drop":
            device.totals.drops += 1
        verdict = item.verdict()
        if verdict is None:
            return
        key, now = (device.job.device, verdict.title), clock.now()
        if now - self._recorded.get(key, -REPEAT_S) < REPEAT_S:
            self.suppressed += 1
            return
        self._recorded[key] = now
        self.spawn(self.record(verdict, text))

    def on_exit(self, job: int, rc: int) -> None:
        device = self._jobs.pop(job, None)
        if device is not None:
            self.emit(ev.InfraProblem(vm=self.vm, problem="load",
                                      message=f"the {device.job.device} load ended (exit {rc}): {device.job.argv}"))

    def _report(self, name: str, device: _Device, *, force: bool = False) -> None:
        totals, now = device.totals, clock.now()
        if not totals.ops and not totals.drops:
            return
        if not force and totals.last_report is not None and now - totals.last_report < REPORT_S:
            return
        self.emit(totals.event(self.vm, name))
        device.totals = _Totals(last_report=now)
