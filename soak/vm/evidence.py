"""Diagnostics taken from a live QEMU before it is killed: what the vCPUs were doing.

Everything here is best effort with a deadline: a hung QEMU must not hang
soak, and a missing answer is itself a fact worth writing down.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import psutil

from soak import clock
from soak.errors import QMPError
from soak.vm.channels import Qmp


@dataclass(frozen=True, slots=True)
class ThreadTimes:
    """CPU seconds per QEMU thread, keyed by thread id, with the threads' names and states."""

    taken: float
    cpu: dict[int, float]
    names: dict[int, str]
    states: dict[int, str]
    """The kernel's state letter per thread: R runnable, S sleeping, T stopped ..."""


def thread_times(pid: int) -> ThreadTimes | None:
    """Per-thread CPU times, names and states of a process (None if it is gone)."""
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
    return ThreadTimes(clock.now(), {t.id: t.user_time + t.system_time for t in threads}, names,
                       {t.id: _thread_state(pid, t.id) for t in threads})


def vcpu_busy_share(before: ThreadTimes, after: ThreadTimes) -> float | None:
    """Mean share of a core used by the vCPU threads (``CPU n/TCG``, ``CPU n/KVM``) in between."""
    elapsed = after.taken - before.taken
    vcpus = [tid for tid, name in after.names.items() if name.startswith("CPU ")]
    if elapsed <= 0 or not vcpus:
        return None
    used = [after.cpu[tid] - before.cpu.get(tid, after.cpu[tid]) for tid in vcpus]
    return sum(used) / len(used) / elapsed


def vcpus_runnable(times: ThreadTimes) -> bool:
    """Most vCPU threads are runnable (state R): they want a CPU, whether or not they get one."""
    states = [times.states.get(tid, "?") for tid, name in times.names.items() if name.startswith("CPU ")]
    return bool(states) and sum(s == "R" for s in states) * 2 > len(states)


def describe_threads(pid: int, before: ThreadTimes | None, after: ThreadTimes | None) -> str:
    """A table of QEMU's threads: name, state, CPU used during the diagnosis window."""
    lines = [f"QEMU pid {pid} threads (cpu = seconds used during the diagnosis window):"]
    if after is None:
        return lines[0] + "\n  (process gone)\n"
    for tid, name in sorted(after.names.items()):
        state = after.states.get(tid, "?")
        used = after.cpu[tid] - before.cpu.get(tid, after.cpu[tid]) if before else float("nan")
        lines.append(f"  {tid:>8} {name:<20} state={state} cpu={used:.3f}s total={after.cpu[tid]:.2f}s")
    return "\n".join(lines) + "\n"


def _thread_state(pid: int, tid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


async def registers(qmp: Qmp, timeout: float) -> str:
    """Every vCPU's registers via HMP ``info registers -a``, or why not."""
    try:
        return await qmp.hmp("info registers -a", timeout=timeout)
    except QMPError as exc:
        return f"(registers unavailable: {exc})\n"


def reproduce_script(argv: list[str], vm: str, soak_command: str) -> str:
    """A shell script that boots this VM alone, with the same QEMU command line.

    Host-side files of the run (sockets, the snapshot disk) live in a fresh
    ``$DIR``, so the script works after the run directory's temporary parts
    are gone.
    """
    replaced: list[str] = []
    setup: list[str] = []
    for arg in argv:
        if arg.startswith("socket,id=agent,path="):
            replaced.append('socket,id=agent,path="$DIR/agent.sock",server=on,wait=off')
        elif arg.startswith("unix:") and arg.endswith(",server=on,wait=off"):
            replaced.append('unix:"$DIR/qmp.sock",server=on,wait=off')
        elif "file.filename=" in arg and "driver=qcow2" in arg:
            head = arg.split("file.filename=")[0]
            replaced.append(shlex.quote(head) + '"file.filename=$DIR/snapshot.qcow2"')
            setup.append('qemu-img create -q -f qcow2 "$DIR/snapshot.qcow2" 4G')
        else:
            replaced.append(shlex.quote(arg))
    return (
        "#!/bin/sh\n"
        f"# Boot VM {vm} alone with the QEMU command line of the failed boot.\n"
        "# The serial console appears on this terminal (quit: Ctrl-A X is not available;\n"
        "# use: kill the QEMU process). QMP and agent sockets are in $DIR.\n"
        f"# To re-run it under soak instead: {soak_command}\n"
        "set -e\n"
        'DIR=$(mktemp -d)\n'
        'echo "sockets in $DIR" >&2\n'
        + "".join(line + "\n" for line in setup)
        + "exec " + " ".join(replaced) + "\n"
    )
