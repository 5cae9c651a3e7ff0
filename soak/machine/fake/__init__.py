"""A scripted guest behind the machine interface: the runner's logic, tested without QEMU.

A `FakeMachine` plays a `GuestScript`: it says hello after ``hello_after``
seconds, heartbeats, prints console lines, emits QMP events and exits when the
script says so, and reacts to what soak does to it the way QEMU and soak's
agent do (QMP ``stop``/``cont``/``quit``/``system_reset``, SIGSTOP, SIGKILL,
agent ``poweroff``, guest faults). Every time is the event loop's, so a test
run on a virtual clock takes microseconds per simulated hour.

This is for tests and benchmarks of soak's own logic; a real guest proves the
behaviour of QEMU (`soak.machine.qemu`).
"""

from soak.machine.base import Postmortem
from soak.machine.fake.channels import FakeAgent, FakeQmp
from soak.machine.fake.machine import FakeLauncher, FakeMachine
from soak.machine.fake.script import (
    Action,
    Event,
    Exit,
    Freeze,
    GuestScript,
    Hang,
    Panic,
    Print,
    Reboot,
    Stop,
)

__all__ = ["Action", "Event", "Exit", "FakeAgent", "FakeLauncher", "FakeMachine", "FakeQmp", "Freeze", "GuestScript",
           "Hang", "Panic", "Postmortem", "Print", "Reboot", "Stop"]
