"""Every architecture and firmware boots soak's agent for real under TCG: hello, heartbeats, a guest
fault through its own fault module, and a clean poweroff.

x86_64 through SeaBIOS is what every other QEMU test boots; here are the others.
Boot-to-hello times are printed (``-s``) for the README's table.
"""

from __future__ import annotations

import time

import pytest

from soak.arch import ARCHES
from soak.image import GuestImage
from soak.image.faults import console_pattern
from soak.vm.agent import Disconnected, Heartbeat, Hello

from .guest import boot

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(300)]

UNAME = {"x86_64": "x86_64", "i386": "i686", "aarch64": "aarch64", "riscv64": "riscv64"}


@pytest.mark.parametrize(("arch", "firmware", "fault"), [
    ("x86_64", "uefi", "warn"),
    ("i386", "bios", "warn"),
    ("aarch64", "none", "oops"),
    ("aarch64", "uefi", "warn"),
    ("riscv64", "opensbi", "oom"),  # trixie's kernel: no fault module (no cross gcc-14), user-space faults work
])
async def test_boot_hello_heartbeats_fault_poweroff(arch_image: dict[str, GuestImage], arch: str, firmware: str,
                                                    fault: str) -> None:
    image = arch_image[arch]
    assert image.arch == arch
    assert image.supports_fault(fault), f"the {arch} image cannot provoke {fault}: {image.notes}"
    async with boot(image, firmware=firmware) as g:
        hello = await g.agent.wait_hello(120)
        print(f"{arch}/{firmware}: HELLO {time.monotonic() - g.started:.1f} s after QEMU started")
        assert isinstance(hello, Hello) and hello.kernel_release == image.kernel_release and hello.nproc == 2
        assert hello.image == image.key
        assert (await g.agent.run("uname -m", timeout=30)).output.strip() == UNAME[arch]
        efi = (await g.agent.run("test -d /sys/firmware/efi && echo efi || echo legacy", timeout=30)).output
        assert efi.strip() == ("efi" if ARCHES[arch].firmware(firmware).code else "legacy")

        await g.event(lambda e: len([b for b in g.events if isinstance(b, Heartbeat)]) >= 3, 30, "3 heartbeats")
        started = time.monotonic()
        await g.agent.fault(fault)
        line = await g.console_line(console_pattern(fault, arch), timeout=60)
        print(f"{arch}/{firmware}: {fault} on the console {time.monotonic() - started:.1f} s later: {line}")
        await g.event(lambda e: isinstance(e, Heartbeat) and e.t > started + 1, 60, "a heartbeat after the fault")

        off = time.monotonic()
        await g.agent.poweroff()
        assert await g.qemu.wait() == 0
        print(f"{arch}/{firmware}: powered off in {time.monotonic() - off:.1f} s")
        await g.event(lambda e: isinstance(e, Disconnected), 10, "disconnect")
