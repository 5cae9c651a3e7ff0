"""The real guest kernel failures soak can provoke, and the kernel parameters that expose them fast.

Module faults go through soak's ``faultinject`` module (``/proc/faultinject``,
loaded by the agent on first use so that a run without faults keeps an
untainted kernel); user-space faults need no module. ``expect`` is the console
text the kernel prints (checked on 6.1 under TCG, see the fault tests), and
``kind`` how soak classifies it.

Timings under TCG with `fault_kernel_args`: soft lockup reported ~12 s into a
spin (``watchdog_thresh=5``), hung task 10-20 s into the sleep
(``soak_hung=10``; lower finds it sooner but flags legitimate long D-states
under load), RCU stall ~10 s (``rcupdate.rcu_cpu_stall_timeout=10``; the
default is 21 s). Hard lockups are not detectable under TCG (no PMU for the
NMI watchdog): they show as RCU stalls.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from soak.arch import ARCHES, DEFAULT_ARCH
from soak.kinds import Kind

MODULE, USER = "module", "user"
RCU_STALL_ARG = "rcupdate.rcu_cpu_stall_timeout=10"


@dataclass(frozen=True, slots=True)
class FaultSpec:
    name: str
    source: str
    """`MODULE` (needs the image feature "faultinject") or `USER`."""
    kind: Kind
    expect: str
    """A regex for the first console line that reports it."""
    kernel_args: tuple[str, ...] = ()
    secs: int | None = None
    """How long the fault lasts (spin, sleep) unless the caller says otherwise."""
    fatal: bool = False
    """The guest panics (with ``panic=-1`` it resets, or pauses with ``-action panic=pause``)."""


_SPECS = (
    FaultSpec("panic", MODULE, Kind.KERNEL_PANIC, r"Kernel panic - not syncing: soak-faultinject: requested panic", fatal=True),
    FaultSpec("oops", MODULE, Kind.KERNEL_OOPS, r"BUG: kernel NULL pointer dereference"),
    FaultSpec("bug", MODULE, Kind.KERNEL_OOPS, r"kernel BUG at .*faultinject\.c:\d+!"),
    FaultSpec("warn", MODULE, Kind.KERNEL_WARNING, r"WARNING: CPU: \d+ PID: \d+ at .*faultinject"),
    FaultSpec("gpf", MODULE, Kind.KERNEL_OOPS, r"general protection fault, probably for non-canonical address 0xdead000000000100"),
    FaultSpec("softlockup", MODULE, Kind.SOFT_LOCKUP, r"watchdog: BUG: soft lockup - CPU#\d+ stuck for \d+s!",
              ("watchdog_thresh=5",), secs=20),
    FaultSpec("hardlockup", MODULE, Kind.HARD_LOCKUP, r"(NMI watchdog: Watchdog detected hard LOCKUP|rcu: INFO: rcu_preempt detected stalls)",
              ("watchdog_thresh=5", RCU_STALL_ARG), secs=20),
    FaultSpec("rcustall", MODULE, Kind.RCU_STALL, r"rcu: INFO: rcu_preempt (self-)?detected stalls?", (RCU_STALL_ARG,), secs=20),
    FaultSpec("hung", MODULE, Kind.HUNG_TASK, r"INFO: task \S+ blocked for more than \d+ seconds\.",
              ("soak_hung=10",), secs=30),
    FaultSpec("uaf", MODULE, Kind.MEMORY_SAFETY, r"BUG kmalloc-128 \(.*\): Poison overwritten", ("slub_debug=FZPU",)),
    FaultSpec("doublefree", MODULE, Kind.MEMORY_SAFETY, r"BUG kmalloc-128 \(.*\): Object already free", ("slub_debug=FZPU",)),
    FaultSpec("listcorrupt", MODULE, Kind.MEMORY_SAFETY, r"list_add corruption\. next->prev should be prev"),
    FaultSpec("stackoverflow", MODULE, Kind.KERNEL_PANIC, r"BUG: TASK stack guard page was hit at", fatal=True),
    FaultSpec("oom", USER, Kind.OOM, r"Out of memory: Killed process \d+ \(dd\)"),
    FaultSpec("sysrq-crash", USER, Kind.KERNEL_PANIC, r"Kernel panic - not syncing: sysrq triggered crash", fatal=True),
)

FAULTS: dict[str, FaultSpec] = {spec.name: spec for spec in _SPECS}
"""Every fault by name, as the agent's ``fault`` command takes it."""


def fault_spec(name: str) -> FaultSpec:
    """:raise ValueError: an unknown name (the message lists the known ones)."""
    try:
        return FAULTS[name]
    except KeyError:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}") from None


def console_pattern(name: str, arch: str = DEFAULT_ARCH) -> str:
    """The regex for the console line fault ``name`` produces on ``arch`` (kernels word some faults differently).

    :raise ValueError: an unknown fault name.
    """
    return ARCHES[arch].fault_console.get(name, fault_spec(name).expect)


def fault_kernel_args(names: Iterable[str]) -> list[str]:
    """The kernel parameters that make ``names`` show up quickly, each once, in a stable order.

    ``slub_debug`` slows every allocation, so it is only added for the faults that need it.

    :raise ValueError: an unknown fault name.
    """
    args: list[str] = []
    for name in names:
        for arg in fault_spec(name).kernel_args:
            if arg not in args:
                args.append(arg)
    return args
