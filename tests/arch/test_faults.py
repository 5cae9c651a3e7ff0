"""soak's fault module, cross-built for aarch64 and built -m32 for i386, provokes real kernel failures
that reach the console in the words `soak.image.faults.console_pattern` expects for the architecture,
and that the classifier names as one of the fault's declared outcomes (so a run records it as expected)."""

from __future__ import annotations

import time

import pytest

from soak.arch import ARCHES
from soak.classify import classify
from soak.faults.catalog import FAULT_TYPES
from soak.image import GuestImage
from soak.image.faults import FAULTS, MODULE, console_pattern
from soak.vm.agent import Heartbeat

from .guest import boot

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(300)]

ALL = [(arch, name) for arch in ("aarch64", "i386") for name, spec in FAULTS.items()
       if spec.source == MODULE and name not in ARCHES[arch].unsupported_faults
       and (name != "hardlockup" or name in ARCHES[arch].fault_console)]  # x86's is tests/agent's
"""Every module fault that applies: all 20 passed here (7 min). CI runs the ones that take an
architecture-specific path (the wording, the spin without a TSC, 32-bit poison values)."""
CASES = [c for c in ALL if c in {
    ("aarch64", "oops"), ("aarch64", "stackoverflow"), ("aarch64", "hardlockup"), ("aarch64", "softlockup"),
    ("aarch64", "listcorrupt"), ("i386", "oops"), ("i386", "softlockup"), ("i386", "listcorrupt"),
}]


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
        else:
            # the panic line itself (without pvpanic the guest then resets; with it, it pauses)
            await g.console_line(r"Kernel panic - not syncing", 60)
    reports = classify("\n".join(g.console))
    assert reports, f"{arch} {name}: the classifier found nothing"
    assert reports[0].kind in FAULT_TYPES[name].outcome, (reports[0].kind, reports[0].title)
