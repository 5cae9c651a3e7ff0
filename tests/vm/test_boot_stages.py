"""Real boots stopped at different stages get different boot-timeout titles.

Each boot uses soak's own argv (the default image, TCG) and stops where a real
boot can stop: QEMU paused from the start (no byte on the console), a kernel
frozen in the middle of its boot (QEMU SIGSTOPped while the kernel prints,
which is what a guest that hangs mid-boot looks like from outside), and a
kernel that started an init other than soak's agent (``rdinit=/bin/sh``).
"""

from __future__ import annotations

import asyncio
import collections
import re
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from soak.detect.boot import boot_timeout_verdict
from soak.errors import ImageError
from soak.image import GuestImage, ensure_default_image
from soak.session import host_tsc_khz
from soak.vm.argv import QemuConfig, build_argv
from soak.vm.process import QemuProcess

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def image() -> GuestImage:
    try:
        return ensure_default_image()
    except ImageError as exc:
        pytest.skip(f"the default guest image cannot be built here: {exc}")


class Console:
    """The boot's console lines and byte count, drained continuously like the runner does."""

    def __init__(self) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=64)
        self.bytes = 0
        self.changed = asyncio.Event()

    async def drain(self, qemu: QemuProcess) -> None:
        while raw := await qemu.console.readline():
            self.bytes += len(raw)
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
            self.changed.set()

    async def wait_for(self, pattern: str, timeout: float) -> None:
        rx = re.compile(pattern)
        async with asyncio.timeout(timeout):
            while not any(rx.search(line) for line in self.lines):
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def booted(image: GuestImage, kernel_args: Sequence[str] = (), extra: Sequence[str] = ()
                 ) -> AsyncIterator[tuple[QemuProcess, Console]]:
    sockets = Path(tempfile.mkdtemp(prefix="soak-t-", dir="/tmp"))
    config = QemuConfig(name="t", memory_mib=256, kernel=image.kernel, initrd=image.initrd,
                        kernel_args=tuple(kernel_args), tsc_khz=host_tsc_khz(), qmp_socket=sockets / "qmp",
                        agent_socket=sockets / "agent", extra_args=tuple(extra))
    qemu = await QemuProcess.spawn(build_argv(config), stderr_path=sockets / "stderr")
    console = Console()
    drain = asyncio.create_task(console.drain(qemu))
    try:
        yield qemu, console
    finally:
        await qemu.kill()
        drain.cancel()
        await asyncio.gather(drain, return_exceptions=True)
        shutil.rmtree(sockets, ignore_errors=True)


async def test_paused_from_the_start_prints_nothing(image: GuestImage) -> None:
    async with booted(image, extra=["-S"]) as (_, console):
        await asyncio.sleep(2)
        verdict = boot_timeout_verdict(console.lines, bytes_seen=console.bytes)
    assert verdict.title == "boot timeout: no console output"


async def test_kernel_frozen_mid_boot(image: GuestImage) -> None:
    async with booted(image) as (qemu, console):
        await console.wait_for(r"\] (?:Memory|smpboot|Freeing SMP)", timeout=120)
        qemu.send_signal(signal.SIGSTOP)
        await asyncio.sleep(1)  # what was in the pipe arrives; nothing more will
        first = boot_timeout_verdict(console.lines, bytes_seen=console.bytes)
        last_line = console.lines[-1]
    assert first.title.startswith('boot timeout: kernel stopped after "'), (first.title, last_line)
    assert not re.search(r"\d+\.\d{6}", first.title)  # no printk timestamp
    assert first.message.endswith(last_line[-300:])


async def test_init_that_is_not_the_agent(image: GuestImage) -> None:
    async with booted(image, kernel_args=["rdinit=/bin/sh"]) as (_, console):
        await console.wait_for(r"Run /bin/sh as init process", timeout=180)
        verdict = boot_timeout_verdict(console.lines, bytes_seen=console.bytes)
    assert verdict.title == "boot timeout: init started, no agent hello"
