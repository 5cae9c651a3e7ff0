"""The ``load`` table of a VM group: which stress-ng stressors, how hard, in what rhythm.

Example (in a profile, under a ``[[group]]``)::

    [group.load]
    stressors = ["cpu", "vm", "io", "mix"]
    pattern = "bursts"
    period = "60s"
    idle = "30s"
    workers_per_vcpu = 1.0
    memory_share = 0.5

Sizes are relative to each guest (workers per vCPU, a share of its memory), so
one table fits a group whose VMs vary in shape. `soak.load.plan` turns it into
the runs themselves.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from soak.units import Seconds, between

MIN_PERIOD_S = 5.0
"""stress-ng needs a few seconds to start its workers and report; shorter runs measure startup."""
MAX_WORKERS_PER_VCPU = 8.0
"""More only adds scheduler churn; it starves the agent's heartbeat before it finds bugs."""
MAX_RUN_S = 86400.0
"""A stress-ng run or idle gap longer than a day reports nothing for a day: a typo."""
MAX_MEMORY_SHARE = 0.9
"""Above this the vm workers fight the guest kernel itself for memory and the OOM killer wins."""


class Stressor(StrEnum):
    """A kind of load; each is one stress-ng stressor, except ``mix``."""

    CPU = "cpu"
    """``--cpu``: all CPU methods; with verify, every result is checked."""
    VM = "vm"
    """``--vm``: anonymous memory written and read back (bit errors are corruption)."""
    IO = "io"
    """``--hdd`` on the guest's tmpfs ``/tmp``, small files (stress-ng's ``--io`` is only sync(2))."""
    TIMER = "timer"
    """``--timer``: POSIX timers at 1 MHz: timer interrupts, deadline reprogramming, signals."""
    CLOCK = "clock"
    """``--clock``: clock_gettime/nanosleep and short POSIX timers: the guest clocksource path."""
    SWITCH = "switch"
    """``--switch``: process pairs ping-ponging: cross-vCPU wakeups, i.e. reschedule IPIs."""
    FUTEX = "futex"
    """``--futex``: waiter/waker pairs with tiny timeouts: wakeup IPIs and timers together."""
    TLB_SHOOTDOWN = "tlb-shootdown"
    """``--tlb-shootdown``: remapping shared pages: TLB shootdown IPIs to every vCPU."""
    MEMBARRIER = "membarrier"
    """``--membarrier``: expedited membarrier: an IPI to each vCPU running the process."""
    MIX = "mix"
    """A seeded pick of the others, drawn afresh for every run."""


class LoadSettings(BaseModel):
    """In-guest load for the VMs of one group; absent means the guests idle."""

    # Like soak.profile's _Strict; not imported from there, as profile imports this module.
    model_config = ConfigDict(extra="forbid", frozen=True)

    stressors: list[Stressor] = Field(default=[Stressor.MIX], min_length=1)
    """What to run together in each run; ``mix`` adds a seeded pick of the stressors not listed."""
    pattern: Literal["steady", "ramp", "bursts"] = "steady"
    """``steady``: full load back to back; ``ramp``: one more worker per run up to the full
    count, then steady; ``bursts``: full load for ``period``, then a seeded idle gap."""
    period: Annotated[Seconds, between(0.0, MAX_RUN_S)] = 60.0
    """Length of one stress-ng run; its metrics (bogo-ops/s) arrive when it ends."""
    idle: Annotated[Seconds, between(0.0, MAX_RUN_S)] = 30.0
    """Mean idle gap between bursts (drawn between half and one and a half of it)."""
    workers_per_vcpu: float = Field(default=1.0, gt=0, le=MAX_WORKERS_PER_VCPU)
    """Workers of each stressor per guest vCPU (rounded, at least one)."""
    memory_share: float = Field(default=0.5, gt=0, le=MAX_MEMORY_SHARE)
    """Share of the guest's usable memory (its RAM less what kernel, initramfs and workers
    take) that the vm workers map between them."""
    verify: bool = True
    """Pass ``--verify``: stress-ng checks results and memory contents; a mismatch is a failure."""
    seed_offset: int = Field(default=0, ge=-(2**31), le=2**31)
    """Added to the run's seed for the load only: another schedule, the same fleet."""

    @field_validator("period")
    @classmethod
    def _period_long_enough(cls, value: float) -> float:
        if value < MIN_PERIOD_S:
            raise ValueError(f"a run must last at least {MIN_PERIOD_S:g}s to report metrics")
        return value

    @field_validator("stressors")
    @classmethod
    def _no_repeats(cls, value: list[Stressor]) -> list[Stressor]:
        repeated = sorted({s.value for s in value if value.count(s) > 1})
        if repeated:
            raise ValueError(f"stressors listed twice: {', '.join(repeated)}")
        return value
