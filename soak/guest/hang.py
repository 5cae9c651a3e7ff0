"""Why did a guest stop heartbeating? Gather the facts before anything is killed.

Does QMP answer, and in which run state is the VM? Are the vCPU threads burning
CPU, idle, or runnable but starved? Was soak's own event loop late (the host
starved soak too)? `soak.detect.hang` turns the facts into a verdict; this
module only gathers them, each step with a deadline.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from soak.detect.hang import HangFacts
from soak.errors import QMPError
from soak.hostload import cpu_pressure, host_starved
from soak.machine import Machine
from soak.vm import evidence

DIAGNOSIS_WINDOW_S = 1.0
"""How long vCPU thread CPU use is watched to tell a spinning guest from an idle one."""


@dataclass(frozen=True, slots=True)
class HangDiagnosis:
    facts: HangFacts
    threads: str
    """A table of QEMU's threads, for the evidence."""
    starved_note: str
    """Why the host is to blame, when it is."""


async def diagnose_hang(machine: Machine, *, loop_lag_s: float) -> HangDiagnosis:
    run_state: str | None = None
    qmp_answered = False
    if machine.qmp is not None:
        try:
            run_state = await machine.qmp.status()
            qmp_answered = True
        except QMPError:
            pass
    before = machine.thread_times()
    await asyncio.sleep(DIAGNOSIS_WINDOW_S)
    after = machine.thread_times()
    busy = evidence.vcpu_busy_share(before, after) if before and after else None
    starved = host_starved(
        vcpu_share=busy, loop_lag_s=loop_lag_s,
        vcpus_runnable=after is not None and evidence.vcpus_runnable(after),
    )
    facts = HangFacts(qmp_answered=qmp_answered, run_state=run_state, process_state=machine.process_state(),
                      vcpu_busy_share=busy, host_starved=starved)
    share = f"{busy:.2f}" if busy is not None else "unknown"
    note = (f"vCPU share {share}, CPU pressure {cpu_pressure()}%, soak's event loop late {loop_lag_s:.1f}s"
            if starved else "")
    return HangDiagnosis(facts, evidence.describe_threads(machine.pid, before, after), note)
