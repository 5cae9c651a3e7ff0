"""Boot time of each guest architecture and firmware, and each architecture's image build from scratch.

Boots: one guest at a time (2 vCPUs, 256 MiB, TCG), the argv soak itself
builds; three times per (architecture, firmware), printing the median and the
spread of QEMU start -> first console byte -> agent HELLO. The host's load
moves these figures: the load average is printed with them.

Builds (``--build``): each architecture's default image into an empty cache
(downloads included), as a fresh CI machine does.

Usage: .venv/bin/python bench/guests.py [--runs 3] [--build] [--only aarch64/uefi ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from soak.arch import ARCHES
from soak.firmware import vars_store
from soak.image import GuestImage, ensure_default_image
from soak.machine import host_tsc_khz
from soak.vm.agent import AgentClient
from soak.vm.argv import QemuConfig, build_argv
from soak.vm.process import QemuProcess


async def boot_once(image: GuestImage, firmware: str) -> tuple[float, float]:
    """(first console byte, HELLO) in seconds after QEMU was started."""
    work = Path(tempfile.mkdtemp(prefix="soak-b-", dir="/tmp"))
    arch = ARCHES[image.arch]
    config = QemuConfig(
        name="b", arch=arch.name, firmware=firmware, vcpus=2, memory_mib=256, kernel=image.kernel,
        initrd=image.initrd, firmware_vars=vars_store(arch.firmware(firmware), work / "efivars.fd"),
        kernel_args=("soak_hb=1",), tsc_khz=host_tsc_khz(), qmp_socket=work / "qmp", agent_socket=work / "agent",
    )
    started = time.monotonic()
    qemu = await QemuProcess.spawn(build_argv(config), stderr_path=work / "stderr")
    agent = AgentClient(config.agent_socket, name="b")
    first_byte: list[float] = []

    async def drain() -> None:  # QEMU blocks on a full console pipe
        while await qemu.console.read(65536):
            if not first_byte:
                first_byte.append(time.monotonic() - started)

    drainer = asyncio.create_task(drain())
    try:
        await agent.connect(timeout=10)
        await agent.wait_hello(180)
        return (first_byte or [float("nan")])[0], time.monotonic() - started
    finally:
        await agent.close()
        await qemu.kill()
        drainer.cancel()
        await asyncio.gather(drainer, return_exceptions=True)
        shutil.rmtree(work, ignore_errors=True)


async def boots(only: list[str], runs: int) -> None:
    print(f"boot to HELLO, {runs} runs each, 2 vCPUs, 256 MiB, TCG; load {os.getloadavg()[0]:.1f}")
    for arch in ARCHES.values():
        image = ensure_default_image(arch=arch.name)
        for fw in arch.firmwares:
            label = f"{arch.name}/{fw.name}"
            if only and label not in only:
                continue
            if fw.missing():
                print(f"{label:16} skipped: install {fw.package}")
                continue
            times = [await boot_once(image, fw.name) for _ in range(runs)]
            consoles, hellos = [c for c, _ in times], [h for _, h in times]
            print(f"{label:16} first console byte {statistics.median(consoles):4.1f} s, HELLO median "
                  f"{statistics.median(hellos):5.1f} s (min {min(hellos):.1f}, max {max(hellos):.1f}); "
                  f"load {os.getloadavg()[0]:.1f}")


def builds() -> None:
    print("image build from scratch (empty cache, downloads included)")
    for arch in ARCHES:
        with tempfile.TemporaryDirectory(prefix="soak-build-") as cache:
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "soak", "image", "build", "--arch", arch, "--cache-dir", cache],
                           check=True, capture_output=True, timeout=1800)
            took = time.monotonic() - started
            size = sum(f.stat().st_size for f in Path(cache, "debs").glob("*.deb")) / 2**20
            print(f"{arch:8} {took:5.1f} s, {size:.0f} MiB of packages downloaded")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--build", action="store_true", help="also time each image build from scratch")
    parser.add_argument("--only", nargs="*", default=[], help="arch/firmware labels, e.g. aarch64/uefi")
    args = parser.parse_args()
    if args.build:
        builds()
    asyncio.run(boots(args.only, args.runs))


if __name__ == "__main__":
    main()
