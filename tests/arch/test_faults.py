"""soak's fault module, cross-built for aarch64 and built -m32 for i386, provokes real kernel failures
that reach the console in the words `soak.image.faults.console_pattern` expects for the architecture."""

from __future__ import annotations

import time

import pytest

from soak.arch import ARCHES
from soak.image import GuestImage
from soak.image.faults import FAULTS, MODULE, console_pattern
from soak.vm.agent import Heartbeat

from .guest import boot

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(300)]

CASES = [(arch, name) for arch in ("aarch64", "i386") for name, spec in FAULTS.items()
         if spec.source == MODULE and name not in ARCHES[arch].unsupported_faults and name != "hardlockup"]


@pytest.mark.parametrize(("arch", "name"), CASES)
async def test_module_fault_on_arch(arch_image: dict[str, GuestImage], arch: str, name: str) -> None:
    image = arch_image[arch]
    assert image.supports_fault(name), image.notes
    spec = FAULTS[name]
    async with boot(image, kernel_args=("soak_hb=1", *image.fault_kernel_args([name]))) as g:
        await g.agent.wait_hello(120)
        started = time.monotonic()
        await g.agent.fault(name)
        line = await g.console_line(console_pattern(name, arch), timeout=(spec.secs or 0) + 60)
        print(f"{arch} {name}: {time.monotonic() - started:.1f} s: {line}")
        if not spec.fatal:
            await g.event(lambda e: isinstance(e, Heartbeat) and e.t > started + 1, 90, "a heartbeat after it")
