"""The events of a run: one vocabulary for the journal, the metrics and the summary.

Every observer (the JSONL journal, the Prometheus metrics, the live view) is fed
the same `Event` objects by the `Recorder`; none keeps a bookkeeping of its own.
Events are frozen dataclasses with a wall-clock time ``t`` (Unix seconds) and a
``type`` tag that names them in the journal. `to_record` / `from_record` turn
them into JSON objects and back, so `soak summary` reads exactly what the run
wrote.

High-rate events (`Heartbeat`, `ProcessSample`, `WorkloadMetrics`) are
delivered to every observer, but the journal persists them only sampled (see
``soak.journal``), so a multi-day run keeps a bounded journal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from soak import clock
from soak.kinds import Kind
from soak.typedjson import FieldError, build


def now() -> float:
    """Wall-clock time as recorded in events (see `soak.clock.wall`)."""
    return clock.wall()


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event; ``type`` is the journal tag of the subclass."""

    type: ClassVar[str] = "event"
    t: float = field(default_factory=now)


@dataclass(frozen=True, slots=True, kw_only=True)
class VmEvent(Event):
    """An event about one VM, named by its stable name (e.g. ``small-0``)."""

    vm: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VmInfo:
    """The static shape of one VM in the fleet."""

    name: str
    group: str
    vcpus: int
    memory_mib: int
    machine: str
    image: str
    arch: str = "x86_64"
    firmware: str = "bios"
    """``bios``, ``uefi`` or ``none`` (QEMU boots the kernel itself)."""
    expect: list[str] = field(default_factory=list)
    """Failure kinds this VM must produce (``a|b``: either), e.g. in a self-test."""
    tolerate: list[str] = field(default_factory=list)
    expect_within_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Event):
    type: ClassVar[str] = "run-started"
    run_id: str
    profile: str
    profile_path: str
    seed: int
    accel: str
    accel_reason: str
    version: str
    duration_s: float
    command: list[str]
    vms: list[VmInfo]
    qemu_version: str = ""
    """``qemu-system-* --version``'s number, e.g. ``7.2.0`` ("" if unknown)."""
    # Where this run sits among the shards of one run (soak.shard); the defaults
    # describe an unsharded run and let journals written before sharding read.
    host: str = ""
    """The host (Slurm node, Kubernetes node) that ran this shard."""
    shard: int = 0
    shards: int = 1
    fleet_size: int = 0
    """VMs in the whole fleet, all shards together (0: not recorded, then ``len(vms)``)."""
    profile_hash: str = ""
    """`soak.shard.profile_hash`: equal for shards of the same profile content."""
    run_group: str = ""
    """Shared by the shards of one run; ``""``: the run stands alone (its group is its run_id)."""
    attempt: int = 0
    """0 first, then one more per requeue or retry of the same shard."""
    engine: str = ""
    """``slurm``, ``kubernetes`` or ``""`` (started by hand)."""
    engine_job: str = ""
    """The engine's name of this attempt: a Slurm ``JOBID_TASKID``, a pod name."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VmStarting(VmEvent):
    """QEMU was spawned for a new boot of the VM."""

    type: ClassVar[str] = "vm-starting"
    boot: int
    pid: int
    argv: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class VmReady(VmEvent):
    """The guest agent said hello: the guest is up and can be loaded."""

    type: ClassVar[str] = "vm-ready"
    boot: int
    boot_s: float
    kernel: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(VmEvent):
    type: ClassVar[str] = "heartbeat"
    seq: int
    uptime_s: float
    load1: float
    mem_free_kib: int
    mem_available_kib: int
    gap_s: float
    """Host-observed time since the previous heartbeat (0 for the first)."""
    lateness_s: float
    """How much later than the interval this heartbeat came (never negative)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatLate(VmEvent):
    """No heartbeat for longer than the hang timeout: a hang is being diagnosed."""

    type: ClassVar[str] = "heartbeat-late"
    age_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessSample(VmEvent):
    """A sample of the QEMU process, as the host sees it."""

    type: ClassVar[str] = "process-sample"
    pid: int
    cpu_s: float
    rss_bytes: int
    threads: int
    fds: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadMetrics(VmEvent):
    """stress-ng's own throughput figures for one stressor, as the guest reported them."""

    type: ClassVar[str] = "workload-metrics"
    stressor: str
    bogo_ops: float
    bogo_ops_per_s: float
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceIo(VmEvent):
    """Verified traffic through one device of a VM since its previous `DeviceIo` (at most one a
    minute per device): every byte counted here was read back or echoed back and compared."""

    type: ClassVar[str] = "device-io"
    device: str
    """``disk0`` ..., ``net``, ``rng``."""
    seconds: float
    """The time the passes took (the load idles between them)."""
    read_bytes_per_s: float
    write_bytes_per_s: float
    iops: float
    """Requests per second while busy: 256 KiB O_DIRECT requests on a disk, transfers on a network."""
    drops: int = 0
    """Network transfers that did not complete (a link down, a peer rebooting): counted, not failures."""
    nic_dropped: int = 0
    """The guest NIC's own dropped-packet counters (rx + tx) since its boot."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultInjected(VmEvent):
    """A host-side fault was applied to the VM (the window is [t, t + duration_s])."""

    type: ClassVar[str] = "fault"
    fault: str
    seq: int
    duration_s: float = 0.0
    expect: str = "survive"
    """``survive``: the guest must live through it; ``fail``: a failure is the intended outcome."""
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Migrated(VmEvent):
    """A live migration of the VM to a new QEMU process ended (the fault ``migrate#seq``).

    On success the guest runs on in process ``pid``; a failure is also a `Failure` of kind
    ``migration-failure`` with QEMU's error.
    """

    type: ClassVar[str] = "migrated"
    seq: int
    mode: str
    """``live``, or ``paused`` (stopped first, continued on the destination)."""
    ok: bool
    total_s: float = 0.0
    downtime_s: float = 0.0
    transferred_bytes: int = 0
    dirty_pages_rate: float = 0.0
    pid: int = 0
    """The QEMU now running the guest (the destination on success)."""
    error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure(VmEvent):
    """A failure found on a VM: the unit `soak summary` groups and counts by title."""

    type: ClassVar[str] = "failure"
    kind: Kind
    title: str
    boot: int
    detected_by: str
    """Which watcher found it: console, heartbeat, qmp, process, workload, trend, boot."""
    latency_s: float | None = None
    """Time from the failure's first sign (its console line, the missed beat ...) to this record."""
    corrupted: bool = False
    evidence: str = ""
    """Evidence folder, relative to the run directory."""
    faults: list[str] = field(default_factory=list)
    """Faults applied to this VM shortly before, e.g. ``["pause#3"]``."""
    expected: bool = False
    """True when a profile declared this failure as the intended outcome of a fault."""
    message: str = ""
    occurrence: int = 1
    """How many times this signature (kind + title) was seen on this VM, this one included."""
    evidence_note: str = ""
    """Why evidence is missing or partial: a repeat beyond ``evidence_per_signature``, a full disk."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleDropped(VmEvent):
    """Console bytes the VM's store did not keep (soak.vm.console): the classifier still saw them.

    Sent at most once a minute while bytes are being dropped, and at the end of a boot that dropped.
    """

    type: ClassVar[str] = "console-dropped"
    boot: int
    dropped_bytes: int
    """Over all the VM's boots so far."""
    kept_bytes: int
    """On disk now (at most ``limit_bytes``)."""
    limit_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation(Event):
    """Something worth a person's attention that is neither a guest failure nor soak's own trouble."""

    type: ClassVar[str] = "observation"
    vm: str | None = None
    topic: str
    """A short fixed word: ``console-flood`` (``value`` in bytes/s)."""
    message: str
    value: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalDropped(Event):
    """Sampled records (heartbeats, process samples, workload figures) the journal dropped
    because its disk was slower than the events; failures and lifecycle records are never dropped."""

    type: ClassVar[str] = "journal-dropped"
    dropped: int
    """Over the whole run so far."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VmStopped(VmEvent):
    """The QEMU process of one boot is gone."""

    type: ClassVar[str] = "vm-stopped"
    boot: int
    reason: str
    """``deadline``, ``shutdown``, ``failure``, ``restart`` ..."""
    exit_code: int | None
    signal: str | None = None
    uptime_s: float = 0.0
    heartbeats: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class VmRestarting(VmEvent):
    type: ClassVar[str] = "vm-restarting"
    boot: int
    after_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class VmRetired(VmEvent):
    """The restart policy gave up on this VM; it stays down for the rest of the run."""

    type: ClassVar[str] = "vm-retired"
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InfraProblem(Event):
    """soak's own machinery failed (not the guest's fault): counted apart from failures."""

    type: ClassVar[str] = "infra"
    vm: str | None = None
    problem: str
    """A short fixed word: ``launch`` (QEMU did not start), ``qmp`` / ``agent`` (a channel
    could not connect), ``host-starved`` (a lost heartbeat the host explains), ``fault`` (a
    fault could not be applied), ``soak-bug`` (a runner crashed; its VM was retired),
    ``disk-full`` (the run directory cannot be written: full or read-only; the run stops),
    ``disk-low`` (free space fell under ``run.min_free_disk``; the run stops)."""
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(Event):
    type: ClassVar[str] = "run-finished"
    reason: str
    """``deadline``, ``signal``, ``error``."""
    verdict: str
    failures: int
    infra_problems: int


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        RunStarted,
        VmStarting,
        VmReady,
        Heartbeat,
        HeartbeatLate,
        ProcessSample,
        WorkloadMetrics,
        DeviceIo,
        FaultInjected,
        Migrated,
        Failure,
        ConsoleDropped,
        Observation,
        JournalDropped,
        VmStopped,
        VmRestarting,
        VmRetired,
        InfraProblem,
        RunFinished,
    )
}


def to_record(event: Event) -> dict[str, Any]:
    """The JSON object of an event: its fields plus its ``type`` tag."""
    record: dict[str, Any] = {"type": event.type}
    record.update(dataclasses.asdict(event))
    return record


class RecordError(ValueError):
    """A journal record is not a known event (a newer soak, or a torn line)."""


def from_record(record: dict[str, Any]) -> Event:
    """Rebuild an event from its JSON object, checking every field's type (``soak.typedjson``).

    :raise RecordError: unknown type, a missing field or a value of the wrong type.
    """
    cls = EVENT_TYPES.get(str(record.get("type")))
    if cls is None:
        raise RecordError(f"unknown event type {_short(record.get('type'))}")
    try:
        return build(cls, record)
    except FieldError as exc:
        raise RecordError(f"bad {cls.type} record: {exc}") from exc


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
