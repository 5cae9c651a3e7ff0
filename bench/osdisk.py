"""soak:debian: its build from scratch, boot to the guest agent's hello, what the agent costs, shutdown.

Boots: one guest at a time (2 vCPUs, 512 MiB, TCG) on a fresh overlay, the argv soak builds,
``--runs`` times per firmware (SeaBIOS, OVMF): QEMU start -> first console byte -> the
qemu-guest-agent's `Hello` (systemd has started it and soak has read the guest's facts).
Then, on the last boot, once systemd has settled (one ``--window`` after the hello), the cost
of watching through the agent: QEMU's CPU over ``--window`` seconds with heartbeats every
second (the guest's figures every 5 s, as soak does), with the figures read at every beat
(seven commands a second), and without any, and this process's own CPU per heartbeat; then
``guest-shutdown`` to QEMU's exit.

Build (``--build``): soak:debian into an empty cache, downloads included, as a fresh CI
machine does. The host's load moves every figure: the load average is printed with them.

Usage: .venv/bin/python bench/osdisk.py [--runs 3] [--window 30] [--build]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from soak.arch import ARCHES
from soak.firmware import vars_store
from soak.image.disk import DiskImage
from soak.image.osdisk import ensure_os_disk
from soak.machine import host_tsc_khz
from soak.machine.diskfiles import create_overlay
from soak.vm import qga
from soak.vm.agent import Heartbeat, Hello
from soak.vm.argv import QemuConfig, build_argv
from soak.vm.process import QemuProcess
from soak.vm.qga import QgaAgent


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def boot_once(image: DiskImage, firmware: str, window: float) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="soak-d-", dir="/tmp"))
    await create_overlay(work / "disk.qcow2", image.disk.path, image.disk.format)
    config = QemuConfig(
        name="d", firmware=firmware, vcpus=2, memory_mib=512, kernel=image.kernel, initrd=image.initrd,
        firmware_vars=vars_store(ARCHES["x86_64"].firmware(firmware), work / "efivars.fd"),
        kernel_args=image.kernel_args, tsc_khz=host_tsc_khz(), qmp_socket=work / "qmp",
        agent_socket=work / "agent", boot_disk=work / "disk.qcow2", agent_channel="qga",
    )
    started = time.monotonic()
    qemu = await QemuProcess.spawn(build_argv(config), stderr_path=work / "stderr")
    agent = QgaAgent(config.agent_socket, name="d", heartbeat_s=1.0)
    first_byte: list[float] = []
    figures: dict[str, float] = {}

    async def drain() -> None:  # QEMU blocks on a full console pipe
        while await qemu.console.read(65536):
            if not first_byte:
                first_byte.append(time.monotonic() - started)

    drainer = asyncio.create_task(drain())
    try:
        await agent.connect(timeout=10)
        events = agent.events()
        async with asyncio.timeout(600):
            async for event in events:
                if isinstance(event, Hello):
                    break
        figures["console"], figures["hello"] = (first_byte or [float("nan")])[0], time.monotonic() - started
        if window:
            proc = psutil.Process(qemu.pid)

            async def beating(seconds: float) -> tuple[float, float, int]:
                """QEMU's share of a core and this process's CPU per heartbeat over ``seconds``."""
                cpu0, own0, beats = sum(proc.cpu_times()[:2]), _own_cpu(), 0
                end = time.monotonic() + seconds
                async with asyncio.timeout(seconds + 30):
                    async for event in events:
                        beats += isinstance(event, Heartbeat)
                        if time.monotonic() >= end:
                            break
                return (sum(proc.cpu_times()[:2]) - cpu0) / seconds, (_own_cpu() - own0) * 1000 / max(1, beats), beats

            await beating(window)  # systemd finishes its boot meanwhile
            figures["qemu_cpu_beating"], figures["own_ms_per_beat"], figures["beats"] = await beating(window)
            every = qga.FIGURES_EVERY_S
            qga.FIGURES_EVERY_S = 0.0  # the guest's figures at every beat: seven commands a second
            figures["qemu_cpu_every_beat"] = (await beating(window))[0]
            qga.FIGURES_EVERY_S = every
            quiet = QgaAgent(config.agent_socket, name="q", heartbeat_s=3600.0)
            await agent.close()
            cpu0 = sum(proc.cpu_times()[:2])
            await asyncio.sleep(window)
            figures["qemu_cpu_quiet"] = (sum(proc.cpu_times()[:2]) - cpu0) / window
            agent = quiet
            await agent.connect(timeout=10)
            async with asyncio.timeout(120):
                async for event in agent.events():
                    if isinstance(event, Hello):
                        break
            asked = time.monotonic()
            await agent.poweroff()
            async with asyncio.timeout(300):
                await qemu.wait()
            figures["shutdown"] = time.monotonic() - asked
        return figures
    finally:
        await agent.close()
        await qemu.kill()
        drainer.cancel()
        await asyncio.gather(drainer, return_exceptions=True)
        shutil.rmtree(work, ignore_errors=True)


async def boots(runs: int, window: float) -> None:
    image = ensure_os_disk("debian")
    print(f"{image.label}: boot to the guest agent's hello, {runs} runs each, 2 vCPUs, 512 MiB, TCG; "
          f"load {os.getloadavg()[0]:.1f}")
    for firmware in ("bios", "uefi"):
        results = [await boot_once(image, firmware, window if i == runs - 1 else 0) for i in range(runs)]
        consoles, hellos = [r["console"] for r in results], [r["hello"] for r in results]
        print(f"x86_64/{firmware:5} first console byte {statistics.median(consoles):5.1f} s, hello "
              f"{statistics.median(hellos):5.1f} s ({min(hellos):.1f}-{max(hellos):.1f}); "
              f"load {os.getloadavg()[0]:.1f}")
        last = results[-1]
        if "shutdown" in last:
            print(f"  watching through qemu-ga: QEMU {last['qemu_cpu_beating'] * 100:.1f} % of a core with a "
                  f"heartbeat a second ({last['qemu_cpu_every_beat'] * 100:.1f} % reading the guest's figures at "
                  f"every beat) vs {last['qemu_cpu_quiet'] * 100:.1f} % without; soak "
                  f"{last['own_ms_per_beat']:.2f} ms CPU per heartbeat ({last['beats']:.0f} beats); "
                  f"guest-shutdown to QEMU's exit {last['shutdown']:.1f} s")


def build() -> None:
    with tempfile.TemporaryDirectory(prefix="soak-cache-") as cache:
        started = time.monotonic()
        image = ensure_os_disk("debian", Path(cache), progress=lambda m: print(f"  {m}"))
        size = image.disk.path.stat().st_size / 2**20
        assert image.kernel is not None and image.initrd is not None
        print(f"soak:debian from scratch: {time.monotonic() - started:.0f} s, qcow2 {size:.0f} MiB, "
              f"kernel + initrd {(image.kernel.stat().st_size + image.initrd.stat().st_size) / 2**20:.0f} MiB "
              f"(load {os.getloadavg()[0]:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--build", action="store_true")
    args = parser.parse_args()
    if args.build:
        build()
    asyncio.run(boots(args.runs, args.window))


if __name__ == "__main__":
    main()
