"""One VM as the run model knows it: its state machine, and what its events left behind.

VM states, as events move a VM between them::

    pending --VmStarting--> booting --VmReady--> running <--Heartbeat-- unresponsive
                               ^                    |   --HeartbeatLate-->  |
                               |                    v                       v
                          VmStarting <-- restarting <--VmRestarting-- stopped <--VmStopped
    any --VmRetired--> retired (left the run: its per-VM metric series are dropped)

A stopped VM whose stop was not the run's own end (``deadline``, ``signal``) is
*down*; that word is only shown (`VmRecord.shown_state`), never a state of its
own, so the metrics keep the seven states above.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from soak.events import DeviceIo, Failure, Heartbeat, ProcessSample, VmInfo


class VmState(StrEnum):
    """Where a VM is in its life; label values of ``soak_vms`` and ``soak_vm_state``."""

    PENDING = "pending"
    BOOTING = "booting"
    RUNNING = "running"
    UNRESPONSIVE = "unresponsive"
    STOPPED = "stopped"
    RESTARTING = "restarting"
    RETIRED = "retired"


LIVE = frozenset({VmState.BOOTING, VmState.RUNNING, VmState.UNRESPONSIVE})
"""States in which a QEMU process exists, so its samples and the guest's figures mean something."""
HEARTBEAT_STATES = frozenset({VmState.RUNNING, VmState.UNRESPONSIVE})
"""States in which heartbeats are expected, so their age is exported."""
FAILED_STOP = "failure"
"""The `VmStopped.reason` of a boot that a failure ended; every other reason is the run's own stop
(its deadline, a signal, a full disk ...)."""


@dataclass(slots=True)
class Rate:
    """A running mean: stress-ng bogo-ops/s of one stressor over all its runs on a VM."""

    total: float = 0.0
    runs: int = 0

    @property
    def mean(self) -> float:
        return self.total / self.runs if self.runs else 0.0


@dataclass(slots=True)
class DeviceTotals:
    """A device's verified traffic over the whole run: time-weighted means, not means of means."""

    read_bytes: float = 0.0
    write_bytes: float = 0.0
    seconds: float = 0.0
    ops: float = 0.0
    drops: int = 0

    def add(self, e: DeviceIo) -> None:
        self.read_bytes += e.read_bytes_per_s * e.seconds
        self.write_bytes += e.write_bytes_per_s * e.seconds
        self.ops += e.iops * e.seconds
        self.seconds += e.seconds
        self.drops += e.drops

    def rate(self, total: float) -> float:
        return total / self.seconds if self.seconds else 0.0


@dataclass(slots=True)
class VmRecord:
    """Everything the run model keeps about one VM (all bounded: no per-event lists)."""

    name: str
    info: VmInfo | None = None
    """Its shape from `RunStarted`; None for a VM the journal names but never declared."""
    state: VmState = VmState.PENDING
    stop_reason: str = ""
    """`VmStopped.reason` of the last stop ("" before any)."""
    boots: int = 0
    failures: int = 0
    """Unexpected failures (the ones that fail the run)."""
    expected_failures: int = 0
    last_failure: Failure | None = None
    kernel: str = ""
    """The guest kernel release its agent reported at the last ready ("" if none said)."""
    up_since: float | None = None
    """When the current boot became ready (start of the VM-seconds being counted)."""
    uptime_closed_s: float = 0.0
    """Uptime of the boots that ended (ready to stop, by event times)."""
    heartbeats_closed: int = 0
    """Heartbeats of the boots that ended, as their `VmStopped` counted them."""
    boot_heartbeats: int = 0
    """Highest heartbeat sequence number seen in the current boot."""
    last_beat: float | None = None
    """Last heartbeat of this boot, or its ready time: the base of the heartbeat age."""
    guest: Heartbeat | None = None
    process: ProcessSample | None = None
    workload: dict[str, float] = field(default_factory=dict)
    """Stressor -> bogo-ops per second, as last reported in this boot."""
    throughput: dict[str, Rate] = field(default_factory=dict)
    """Stressor -> mean bogo-ops per second over every run of it on this VM, all boots."""
    devices: dict[str, DeviceTotals] = field(default_factory=dict)
    """Device (``disk0``, ``net``, ``rng``) -> its verified traffic over all boots."""
    device_io: dict[str, DeviceIo] = field(default_factory=dict)
    """Device -> its last report in this boot."""
    first_ready: float | None = None
    first_fault: float | None = None
    faults: int = 0
    migrations: int = 0
    """Completed live migrations: the guest now runs in a later QEMU process than its boot's."""
    console_dropped_bytes: int = 0
    """Console bytes its store did not keep within ``console_limit`` (the classifier saw them all)."""
    boot_time: Rate = field(default_factory=Rate)
    """Seconds from QEMU's start to ready (`VmReady.boot_s`), over its boots."""
    boot_max_s: float = 0.0

    @property
    def group(self) -> str:
        return self.info.group if self.info else "unknown"

    @property
    def heartbeats(self) -> int:
        return self.heartbeats_closed + self.boot_heartbeats

    @property
    def shown_state(self) -> str:
        """The state as people read it: ``down`` for a VM stopped by anything but the run's end."""
        if self.state is VmState.STOPPED and self.stop_reason == FAILED_STOP:
            return "down"
        return self.state.value

    def uptime_s(self, end: float) -> float:
        """Guest uptime over all boots, the current one counted to ``end``."""
        live = max(0.0, end - self.up_since) if self.up_since is not None else 0.0
        return self.uptime_closed_s + live

    def close_uptime(self, t: float) -> None:
        if self.up_since is not None:
            self.uptime_closed_s += max(0.0, t - self.up_since)
            self.up_since = None

    def forget_boot(self) -> None:
        """The QEMU process is gone: its figures no longer describe anything."""
        self.last_beat = None
        self.guest = None
        self.process = None
        self.workload.clear()
        self.device_io.clear()

    def copy(self) -> VmRecord:
        """A copy that later events cannot change (for a scrape rendered outside the lock)."""
        throughput = {k: Rate(r.total, r.runs) for k, r in self.throughput.items()}
        devices = {k: replace(d) for k, d in self.devices.items()}
        return replace(self, workload=dict(self.workload), throughput=throughput, devices=devices,
                       device_io=dict(self.device_io))
