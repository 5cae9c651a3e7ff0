"""Events of made-up runs, to drive `Metrics` without a supervisor.

`every_event` is a short run that uses every event type (unit tests, and the
catalogue of exported names); `LiveFeeder` plays a run in real time from a
thread, with failures, restarts, a hang, a retirement and a leaky QEMU, so a
real Prometheus scraping it sees every series move.
"""

from __future__ import annotations

import random
import threading
import time

from soak.events import (
    DeviceIo,
    Event,
    Failure,
    FaultInjected,
    Heartbeat,
    HeartbeatLate,
    InfraProblem,
    Migrated,
    ProcessSample,
    RunFinished,
    RunStarted,
    VmInfo,
    VmReady,
    VmRestarting,
    VmRetired,
    VmStarting,
    VmStopped,
    WorkloadMetrics,
)
from soak.kinds import Kind
from soak.recorder import Recorder

MIB = 1024 * 1024


def fleet(small: int = 2, big: int = 1) -> list[VmInfo]:
    vms = [
        VmInfo(name=f"small-{i}", group="small", vcpus=1, memory_mib=256, machine="pc", image="img")
        for i in range(small)
    ]
    vms += [
        VmInfo(name=f"big-{i}", group="big", vcpus=4, memory_mib=1024, machine="q35", image="img")
        for i in range(big)
    ]
    return vms


def run_started(t: float, vms: list[VmInfo], *, duration_s: float = 3600.0) -> RunStarted:
    return RunStarted(
        t=t,
        run_id="20261125-120000-abcd",
        profile="smoke",
        profile_path="profiles/smoke.toml",
        seed=7,
        accel="tcg",
        accel_reason="test",
        version="0.1.0",
        duration_s=duration_s,
        command=["soak", "run", "profiles/smoke.toml"],
        vms=vms,
    )


def beat(
    vm: str, t: float, seq: int, *, lateness_s: float = 0.0, uptime_s: float = 1.0
) -> Heartbeat:
    return Heartbeat(
        t=t,
        vm=vm,
        seq=seq,
        uptime_s=uptime_s,
        load1=0.5,
        mem_free_kib=100_000,
        mem_available_kib=150_000,
        gap_s=1.0 + lateness_s,
        lateness_s=lateness_s,
    )


def sample(vm: str, t: float, *, cpu_s: float = 1.0, rss_bytes: int = 100 * MIB) -> ProcessSample:
    return ProcessSample(t=t, vm=vm, pid=4242, cpu_s=cpu_s, rss_bytes=rss_bytes, threads=9, fds=40)


def every_event(t0: float = 1000.0) -> list[Event]:
    """A short run of 3 VMs in which every event type occurs (clock: ``t0 + 100``)."""
    vms = fleet(small=2, big=1)
    return [
        run_started(t0, vms),
        VmStarting(t=t0 + 1, vm="small-0", boot=1, pid=11, argv=["qemu"]),
        VmStarting(t=t0 + 1, vm="big-0", boot=1, pid=12, argv=["qemu"]),
        VmReady(t=t0 + 4, vm="small-0", boot=1, boot_s=3.0),
        VmReady(t=t0 + 6, vm="big-0", boot=1, boot_s=5.0),
        beat("small-0", t0 + 5, 1, lateness_s=0.02),
        beat("big-0", t0 + 7, 1, lateness_s=0.3),
        sample("small-0", t0 + 8, cpu_s=2.0),
        sample("big-0", t0 + 8, cpu_s=5.0, rss_bytes=300 * MIB),
        WorkloadMetrics(
            t=t0 + 9, vm="small-0", stressor="cpu", bogo_ops=500, bogo_ops_per_s=50, seconds=10
        ),
        FaultInjected(t=t0 + 10, vm="big-0", fault="pause", seq=1, duration_s=2.0),
        DeviceIo(t=t0 + 11, vm="small-0", device="disk0", seconds=5.0, read_bytes_per_s=2e6,
                 write_bytes_per_s=2e6, iops=8.0),
        DeviceIo(t=t0 + 11, vm="small-0", device="net", seconds=5.0, read_bytes_per_s=5e5,
                 write_bytes_per_s=5e5, iops=20.0, drops=1),
        FaultInjected(t=t0 + 12, vm="small-0", fault="migrate", seq=2),
        Migrated(t=t0 + 14, vm="small-0", seq=2, mode="live", ok=True, total_s=1.6, downtime_s=0.14,
                 transferred_bytes=300 * MIB, pid=15),
        HeartbeatLate(t=t0 + 30, vm="big-0", age_s=23.0),
        Failure(
            t=t0 + 31,
            vm="big-0",
            kind=Kind.GUEST_HANG,
            title="no heartbeat from guest",
            boot=1,
            detected_by="heartbeat",
            latency_s=21.0,
            faults=["pause#1"],
            expected=True,
        ),
        Failure(
            t=t0 + 32,
            vm="big-0",
            kind=Kind.KERNEL_OOPS,
            title="BUG: unable to handle page fault in foo",
            boot=1,
            detected_by="console",
            latency_s=0.2,
        ),
        VmStopped(
            t=t0 + 34, vm="big-0", boot=1, reason="failure", exit_code=None, signal="SIGKILL"
        ),
        VmRestarting(t=t0 + 34, vm="big-0", boot=2, after_s=2.0),
        VmStarting(t=t0 + 36, vm="big-0", boot=2, pid=13, argv=["qemu"]),
        VmReady(t=t0 + 40, vm="big-0", boot=2, boot_s=4.0),
        VmStarting(t=t0 + 41, vm="small-1", boot=1, pid=14, argv=["qemu"]),
        InfraProblem(t=t0 + 42, vm="small-1", problem="qmp-timeout", message="no answer"),
        VmRetired(t=t0 + 43, vm="small-1", reason="max restarts reached"),
    ]


def finish(t: float) -> RunFinished:
    return RunFinished(t=t, reason="deadline", verdict="failures", failures=1, infra_problems=1)


class LiveFeeder(threading.Thread):
    """Plays a run in real time through ``recorder`` until `stop` (see the module docstring).

    VMs: ``small-0`` steady with a leaking QEMU (+1 MiB per sample), ``small-1``
    steady and faulted, ``big-0`` fails and restarts every few seconds,
    ``big-1`` hangs (no beat after ready), ``small-2`` is retired at once.
    """

    TICK_S = 0.25

    def __init__(self, recorder: Recorder, *, duration_s: float = 3600.0) -> None:
        super().__init__(daemon=True, name="live-feeder")
        self._recorder = recorder
        self._stop_event = threading.Event()
        self._duration_s = duration_s
        self._rng = random.Random(5)
        self.error: BaseException | None = None

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def emit(self, event: Event) -> None:
        self._recorder.emit(event)

    def run(self) -> None:
        try:
            self._play()
        except BaseException as exc:  # surfaced by the test through .error
            self.error = exc
            raise

    def _play(self) -> None:
        vms = fleet(small=3, big=2)
        t0 = time.time()
        self.emit(run_started(t0, vms, duration_s=self._duration_s))
        self.emit(VmStarting(vm="small-2", boot=1, pid=20, argv=["qemu"]))
        self.emit(VmRetired(vm="small-2", reason="max restarts reached"))
        up = ["small-0", "small-1", "big-0", "big-1"]
        for pid, name in enumerate(up):
            self.emit(VmStarting(vm=name, boot=1, pid=100 + pid, argv=["qemu"]))
            self.emit(VmReady(vm=name, boot=1, boot_s=self._rng.uniform(2, 40)))
        boots = {name: 1 for name in up}
        late_sent = False
        tick = 0
        while not self._stop_event.wait(self.TICK_S):
            tick += 1
            now = time.time()
            for name in ("small-0", "small-1", "big-0"):
                lateness = self._rng.choice((0.0, 0.0, 0.01, 0.2, 1.5))
                self.emit(beat(name, now, tick, lateness_s=lateness, uptime_s=now - t0))
            if tick % 2 == 0:
                for i, name in enumerate(up):
                    rss = 200 * MIB + (tick * MIB if name == "small-0" else i * MIB)
                    self.emit(sample(name, now, cpu_s=tick * 0.2 * (i + 1), rss_bytes=rss))
            if tick % 4 == 0:
                self.emit(
                    WorkloadMetrics(
                        vm="small-1", stressor="vm", bogo_ops=1e4, bogo_ops_per_s=1e3, seconds=10
                    )
                )
            if not late_sent and tick >= 12:  # big-1 silent for 3 s: soak says it is late
                late_sent = True
                self.emit(HeartbeatLate(vm="big-1", age_s=3.0))
            if tick % 12 == 0:
                self.emit(FaultInjected(vm="small-1", fault="pause", seq=tick, duration_s=0.5))
                self.emit(
                    Failure(
                        vm="small-1",
                        kind=Kind.GUEST_HANG,
                        title="no heartbeat from guest",
                        boot=1,
                        detected_by="heartbeat",
                        latency_s=2.5,
                        expected=True,
                    )
                )
                self.emit(InfraProblem(vm="small-1", problem="qmp-timeout", message="no answer"))
            if tick % 16 == 8:
                self._crash_and_restart("big-0", boots)
            if tick % 8 == 4:  # small-0 has a disk and a network, and migrates now and then
                self.emit(DeviceIo(vm="small-0", device="disk0", seconds=1.0, read_bytes_per_s=2e6,
                                   write_bytes_per_s=2e6, iops=self._rng.uniform(5, 10)))
                self.emit(DeviceIo(vm="small-0", device="net", seconds=1.0, read_bytes_per_s=5e5,
                                   write_bytes_per_s=5e5, iops=20.0, drops=self._rng.choice((0, 1))))
                self.emit(Migrated(vm="small-0", seq=tick, mode="live", ok=True, total_s=1.6,
                                   downtime_s=self._rng.uniform(0.05, 0.2), transferred_bytes=300 * MIB,
                                   pid=500 + tick))

    def _crash_and_restart(self, name: str, boots: dict[str, int]) -> None:
        boot = boots[name]
        self.emit(
            Failure(
                vm=name,
                kind=Kind.KERNEL_OOPS,
                title="BUG: kernel NULL pointer dereference in foo",
                boot=boot,
                detected_by="console",
                latency_s=self._rng.uniform(0.05, 0.5),
            )
        )
        self.emit(VmStopped(vm=name, boot=boot, reason="failure", exit_code=None, signal="SIGKILL"))
        self.emit(VmRestarting(vm=name, boot=boot + 1, after_s=0.0))
        boots[name] = boot + 1
        self.emit(VmStarting(vm=name, boot=boot + 1, pid=300 + boot, argv=["qemu"]))
        self.emit(VmReady(vm=name, boot=boot + 1, boot_s=self._rng.uniform(2, 40)))
