"""Real guest kernel failures, provoked through the agent, reach the console as the kernel words them."""

from __future__ import annotations

import time

import pytest

from soak.errors import AgentError
from soak.image import GuestImage
from soak.image.faults import FAULTS
from soak.vm.agent import Heartbeat

from .qemu_guest import boot

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(240)]


def _param(name: str) -> object:
    # A "hard lockup" spins with interrupts off for 20 s, then the test waits for the guest to recover.
    return pytest.param(name, marks=pytest.mark.slow) if name == "hardlockup" else name


@pytest.mark.parametrize("name", [_param(n) for n in FAULTS])
async def test_fault_reaches_the_console(default_image: GuestImage, name: str) -> None:
    if not default_image.supports_fault(name):
        pytest.skip(f"the default image cannot provoke {name}: {default_image.notes}")
    spec = FAULTS[name]
    args = ("soak_hb=1", *default_image.fault_kernel_args([name]))
    async with boot(default_image, vcpus=2, kernel_args=args) as g:
        await g.agent.wait_hello(90)
        started = time.monotonic()
        await g.agent.fault(name)
        line = await g.console_line(spec.expect, timeout=(spec.secs or 0) + 30)
        print(f"{name}: {time.monotonic() - started:.1f} s: {line}")
        if not spec.fatal:  # the guest, and the agent in it, carry on
            await g.event(lambda e: isinstance(e, Heartbeat) and e.t > started + 1, 60,
                          "a heartbeat after the fault")


async def test_unknown_fault_is_refused_by_the_guest(default_image: GuestImage) -> None:
    if not default_image.supports_fault("panic"):
        pytest.skip("no faultinject module in the default image")
    async with boot(default_image, vcpus=1) as g:
        await g.agent.wait_hello(90)
        with pytest.raises(AgentError, match="unknown fault nosuch"):
            await g.agent.fault("nosuch")
