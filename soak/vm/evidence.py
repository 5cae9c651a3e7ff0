"""Diagnostics taken from a live QEMU before it is killed: what the vCPUs were doing.

Everything here is best effort with a deadline: a hung QEMU must not hang
soak, and a missing answer is itself a fact worth writing down.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from soak.errors import QMPError
from soak.vm.qmp import QmpSession


@dataclass(frozen=True, slots=True)
class ThreadTimes:
    """CPU seconds per QEMU thread, keyed by thread id, with the threads' names."""

    taken: float
    cpu: dict[int, float]
    names: dict[int, str]


def thread_times(pid: int) -> ThreadTimes | None:
    """Per-thread CPU times of a process (None if it is gone)."""
    try:
        threads = psutil.Process(pid).threads()
    except psutil.Error:
        return None
    names: dict[int, str] = {}
    for t in threads:
        try:
            names[t.id] = Path(f"/proc/{pid}/task/{t.id}/comm").read_text().strip()
        except OSError:
            names[t.id] = "?"
    return ThreadTimes(time.monotonic(), {t.id: t.user_time + t.system_time for t in threads}, names)


def vcpu_busy_share(before: ThreadTimes, after: ThreadTimes) -> float | None:
    """Mean share of a core used by the vCPU threads (``CPU n/TCG``, ``CPU n/KVM``) in between."""
    elapsed = after.taken - before.taken
    vcpus = [tid for tid, name in after.names.items() if name.startswith("CPU ")]
    if elapsed <= 0 or not vcpus:
        return None
    used = [after.cpu[tid] - before.cpu.get(tid, after.cpu[tid]) for tid in vcpus]
    return sum(used) / len(used) / elapsed


def vcpus_runnable(pid: int, times: ThreadTimes) -> bool:
    """Most vCPU threads are runnable (state R): they want a CPU, whether or not they get one."""
    states = [_thread_state(pid, tid) for tid, name in times.names.items() if name.startswith("CPU ")]
    return bool(states) and sum(s == "R" for s in states) * 2 > len(states)


def describe_threads(pid: int, before: ThreadTimes | None, after: ThreadTimes | None) -> str:
    """A table of QEMU's threads: name, state, CPU used during the diagnosis window."""
    lines = [f"QEMU pid {pid} threads (cpu = seconds used during the diagnosis window):"]
    if after is None:
        return lines[0] + "\n  (process gone)\n"
    for tid, name in sorted(after.names.items()):
        state = _thread_state(pid, tid)
        used = after.cpu[tid] - before.cpu.get(tid, after.cpu[tid]) if before else float("nan")
        lines.append(f"  {tid:>8} {name:<20} state={state} cpu={used:.3f}s total={after.cpu[tid]:.2f}s")
    return "\n".join(lines) + "\n"


def _thread_state(pid: int, tid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


async def registers(qmp: QmpSession, timeout: float) -> str:
    """Every vCPU's registers via HMP ``info registers -a``, or why not."""
    try:
        return await qmp.hmp("info registers -a", timeout=timeout)
    except QMPError as exc:
        return f"(registers unavailable: {exc})\n"


async def sample_threads(pid: int, window: float) -> tuple[ThreadTimes | None, ThreadTimes | None]:
    """Thread CPU times at the start and the end of ``window`` seconds."""
    before = thread_times(pid)
    await asyncio.sleep(window)
    return before, thread_times(pid)


def reproduce_script(argv: list[str], vm: str, soak_command: str) -> str:
    """A shell script that boots this VM alone, with the same QEMU command line."""
    replaced: list[str] = []
    for arg in argv:
        if arg.startswith("socket,id=agent,path="):
            arg = 'socket,id=agent,path="$DIR/agent.sock",server=on,wait=off'
            replaced.append(arg)
            continue
        if arg.startswith("unix:") and arg.endswith(",server=on,wait=off"):
            replaced.append('unix:"$DIR/qmp.sock",server=on,wait=off')
            continue
        replaced.append(shlex.quote(arg))
    return (
        "#!/bin/sh\n"
        f"# Boot VM {vm} alone with the QEMU command line of the failed boot.\n"
        "# The serial console appears on this terminal (quit: Ctrl-A X is not available;\n"
        "# use: kill the QEMU process). QMP and agent sockets are in $DIR.\n"
        f"# To re-run it under soak instead: {soak_command}\n"
        'DIR=$(mktemp -d)\n'
        'echo "sockets in $DIR" >&2\n'
        "exec " + " ".join(replaced) + "\n"
    )
