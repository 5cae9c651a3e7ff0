"""A VM's fault timeline: pure and seeded, so a run can be replayed fault for fault.

Times are seconds after the VM was first ready. `every` faults repeat with a
jitter drawn from a generator seeded by (run seed, VM, fault index), so adding
a VM or a fault to a profile does not reshuffle the other VMs' timelines.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from soak.faults.settings import FaultSettings


@dataclass(frozen=True, slots=True)
class PlannedFault:
    at_s: float
    settings: FaultSettings
    index: int
    """Which fault of the group's list it is."""


def fault_timeline(faults: list[FaultSettings], *, seed: int, vm: str, vm_index_in_group: int) -> Iterator[PlannedFault]:
    """Every fault for one VM in time order (endless when some fault repeats)."""
    streams = [
        _one_fault(f, i, random.Random(f"{seed}/{vm}/{i}"))
        for i, f in enumerate(faults)
        if f.vms is None or vm_index_in_group in f.vms
    ]
    heads = [next(s, None) for s in streams]
    while True:
        live = [(h.at_s, n) for n, h in enumerate(heads) if h is not None]
        if not live:
            return
        _, n = min(live)
        head = heads[n]
        assert head is not None
        yield head
        heads[n] = next(streams[n], None)


def _one_fault(settings: FaultSettings, index: int, rng: random.Random) -> Iterator[PlannedFault]:
    emitted = 0

    def more() -> bool:
        return settings.count == 0 or emitted < settings.count

    for offset in sorted(settings.at):
        if not more():
            return
        emitted += 1
        yield PlannedFault(offset, settings, index)
    if settings.every is None:
        return
    t = settings.start
    while more():
        emitted += 1
        yield PlannedFault(round(t, 3), settings, index)
        t += settings.every * (1 + rng.uniform(-settings.jitter, settings.jitter))
