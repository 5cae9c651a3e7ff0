"""Cost of soak's metrics with a fleet of VMs: scrape time and size, observe() CPU.

    .venv/bin/python bench/metrics.py [--vms 100] [--scrapes 50]

A run of N VMs (4 groups, 3 stressors each, a few failures) is fed into a
`Metrics`; its /metrics is then scraped over the real HTTP endpoint. The CPU
cost of `observe` is measured per event type and turned into a cost per VM
at the supervisor's event rate: one heartbeat per second and one QEMU
process sample per 5 seconds per VM (profile defaults). Finally observe() is
timed while another thread scrapes without pause, since a scrape holds the
model's lock and observe() runs on the supervisor's event loop.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from soak.events import (
    Event,
    Failure,
    Heartbeat,
    ProcessSample,
    RunStarted,
    VmInfo,
    VmReady,
    VmStarting,
    WorkloadMetrics,
)
from soak.exporter import serve_metrics
from soak.kinds import Kind
from soak.metrics import Metrics

GROUPS = ("small", "medium", "large", "huge")
STRESSORS = ("cpu", "vm", "hdd")
HEARTBEATS_PER_VM_S = 1.0
SAMPLES_PER_VM_S = 1 / 5


def fleet_run(vms: int, t0: float) -> list[Event]:
    """RunStarted, every VM booted and beating, workload figures and a few failures."""
    infos = [
        VmInfo(
            name=f"{GROUPS[i % 4]}-{i // 4}",
            group=GROUPS[i % 4],
            vcpus=1 << (i % 4),
            memory_mib=256 << (i % 4),
            machine="q35",
            image="default:6.1.0-28-amd64",
        )
        for i in range(vms)
    ]
    events: list[Event] = [
        RunStarted(
            t=t0,
            run_id="bench",
            profile="bench",
            profile_path="bench.toml",
            seed=1,
            accel="kvm",
            accel_reason="bench",
            version="0.1.0",
            duration_s=86400,
            command=["soak"],
            vms=infos,
        )
    ]
    for i, vm in enumerate(infos):
        events.append(VmStarting(t=t0, vm=vm.name, boot=1, pid=1000 + i, argv=["qemu"]))
        events.append(VmReady(t=t0 + 5, vm=vm.name, boot=1, boot_s=5.0))
        events.append(heartbeat(vm.name, t0 + 6, 1))
        events.append(process_sample(vm.name, t0 + 6))
        for stressor in STRESSORS:
            events.append(
                WorkloadMetrics(
                    t=t0 + 7,
                    vm=vm.name,
                    stressor=stressor,
                    bogo_ops=1e5,
                    bogo_ops_per_s=1e4,
                    seconds=10,
                )
            )
        if i % 10 == 0:
            events.append(
                Failure(
                    t=t0 + 8,
                    vm=vm.name,
                    kind=Kind.KERNEL_WARNING,
                    title="WARNING in foo",
                    boot=1,
                    detected_by="console",
                    latency_s=0.1,
                )
            )
    return events


def heartbeat(vm: str, t: float, seq: int) -> Heartbeat:
    return Heartbeat(
        t=t,
        vm=vm,
        seq=seq,
        uptime_s=seq,
        load1=1.5,
        mem_free_kib=100_000,
        mem_available_kib=200_000,
        gap_s=1.0,
        lateness_s=0.01,
    )


def process_sample(vm: str, t: float) -> ProcessSample:
    return ProcessSample(t=t, vm=vm, pid=1, cpu_s=t % 1000, rss_bytes=300 << 20, threads=12, fds=60)


def cpu_per_call(call: Callable[[], object], n: int) -> float:
    """CPU seconds per call (process time, so a busy machine does not inflate it)."""
    start = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - start) / n


def scrape_figures(url: str, scrapes: int) -> tuple[list[float], int, int]:
    times: list[float] = []
    body = b""
    for _ in range(scrapes):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
        times.append(time.perf_counter() - start)
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    return times, len(body), series


def observe_stall_during_scrapes(
    metrics: Metrics, url: str, vms: list[str], seconds: float
) -> float:
    """The slowest observe() while another thread scrapes back to back (wall seconds)."""
    stop = threading.Event()

    def scrape_forever() -> None:
        while not stop.is_set():
            with urllib.request.urlopen(url, timeout=10) as response:
                response.read()

    scraper = threading.Thread(target=scrape_forever, daemon=True)
    scraper.start()
    worst = 0.0
    deadline = time.perf_counter() + seconds
    seq = 0
    while time.perf_counter() < deadline:
        seq += 1
        event = heartbeat(vms[seq % len(vms)], time.time(), seq)
        start = time.perf_counter()
        metrics.observe(event)
        worst = max(worst, time.perf_counter() - start)
        time.sleep(0.0005)
    stop.set()
    scraper.join()
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()

    registry = CollectorRegistry()
    metrics = Metrics(registry, hang_timeout_s=20)
    t0 = time.time()
    events = fleet_run(args.vms, t0)
    for event in events:
        metrics.observe(event)
    names = [vm.name for vm in events[0].vms] if isinstance(events[0], RunStarted) else []

    with serve_metrics(registry, "127.0.0.1:0") as server:
        times, size, series = scrape_figures(server.url, args.scrapes)
        scrape_cpu = cpu_per_call(lambda: list(registry.collect()), args.scrapes)
        stall = observe_stall_during_scrapes(metrics, server.url, names, 3.0)

    n = 20_000
    beat = heartbeat(names[0], t0 + 10, 2)
    sample = process_sample(names[0], t0 + 10)
    beat_cpu = cpu_per_call(lambda: metrics.observe(beat), n)
    sample_cpu = cpu_per_call(lambda: metrics.observe(sample), n)
    per_vm_s = HEARTBEATS_PER_VM_S * beat_cpu + SAMPLES_PER_VM_S * sample_cpu

    ms = 1000
    print(f"fleet: {args.vms} VMs, {len(GROUPS)} groups, {len(STRESSORS)} stressors each")
    print(f"/metrics size: {size / 1024:.1f} KiB, {series} series ({size / args.vms:.0f} B per VM)")
    print(
        f"scrape over HTTP ({args.scrapes}x): median {statistics.median(times) * ms:.2f} ms, "
        f"max {max(times) * ms:.2f} ms"
    )
    print(
        f"collect CPU per scrape: {scrape_cpu * ms:.2f} ms ({scrape_cpu / args.vms * 1e6:.1f} us per VM)"
    )
    print(
        f"observe() CPU: heartbeat {beat_cpu * 1e6:.2f} us, process sample {sample_cpu * 1e6:.2f} us"
    )
    print(
        f"observe() CPU per VM at 1 heartbeat/s + 1 sample/5 s: {per_vm_s * 1e6:.2f} us/s "
        f"= {per_vm_s * 100:.5f} % of a core; {args.vms} VMs: {per_vm_s * args.vms * 100:.4f} %"
    )
    print(
        f"scrapes every 15 s add {scrape_cpu / 15 / args.vms * 1e6:.2f} us/s per VM; "
        f"slowest observe() during back-to-back scrapes: {stall * ms:.2f} ms"
    )


if __name__ == "__main__":
    main()
