"""Applying one fault to one running VM.

Each injector acts through the VM's QMP session, its QEMU process or its
agent, with a deadline on every step, and returns when the fault's window is
over (a pause returns after ``cont``). The guest runner journals the fault and
decides what the watchdog does meanwhile; injectors know nothing of detection.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from soak import clock
from soak.errors import AgentError, QMPError
from soak.faults.catalog import fault_type
from soak.faults.devices import DEVICE_FAULTS, DiskTarget, FaultError
from soak.faults.settings import FaultSettings
from soak.vm.argv import SNAPSHOT_NODE
from soak.vm.channels import GuestAgent, Qmp

JOB_POLL_S = 0.05
__all__ = ["Applied", "FaultError", "FaultTarget", "inject"]


class FaultTarget(Protocol):
    """What an injector may touch of a VM."""

    def send_signal(self, sig: int) -> None:
        """Signal the VM's QEMU process (SIGSTOP, SIGKILL ...)."""
    @property
    def qmp(self) -> Qmp | None: ...
    @property
    def agent(self) -> GuestAgent | None: ...
    @property
    def qmp_timeout(self) -> float: ...

    @property
    def memory_mib(self) -> int:
        """The guest's memory as configured (the balloon's 100 %)."""

    @property
    def disks(self) -> Sequence[DiskTarget]:
        """The VM's disks as device faults act on them."""

    async def migrate(self, settings: FaultSettings, seq: int) -> str:
        """Live-migrate the VM to a new QEMU; what happened, in a few words.

        A failed migration is recorded as the VM's finding by the runner, not raised.
        :raise FaultError: the destination could not even be started.
        """


@dataclass(frozen=True, slots=True)
class Applied:
    detail: str = ""
    duration_s: float = 0.0


async def inject(settings: FaultSettings, target: FaultTarget, seq: int) -> Applied:
    """Apply the fault and wait out its window.

    :raise FaultError: it could not be applied (the run goes on; the problem is journaled).
    """
    name = settings.type
    try:
        if fault_type(name).guest:
            return await _guest_fault(settings, _agent(target))
        if name in DEVICE_FAULTS:
            detail, seconds = await DEVICE_FAULTS[name](settings, _qmp(target), target, seq)
            return Applied(detail, seconds)
        handler = _HOST[name]
        return await handler(settings, target, seq)
    except (QMPError, AgentError) as exc:
        raise FaultError(f"{name}: {exc}") from exc


def _qmp(target: FaultTarget) -> Qmp:
    if target.qmp is None:
        raise FaultError("no QMP connection to this VM")
    return target.qmp


def _agent(target: FaultTarget) -> GuestAgent:
    if target.agent is None:
        raise FaultError("no agent connection to this VM")
    return target.agent


async def _pause(settings: FaultSettings, target: FaultTarget, seq: int) -> Applied:
    qmp = _qmp(target)
    await qmp.execute("stop")
    start = clock.now()
    try:
        await asyncio.sleep(settings.duration)
    finally:
        await qmp.execute("cont")
    return Applied("QMP stop/cont", clock.now() - start)


async def _sigstop(settings: FaultSettings, target: FaultTarget, seq: int) -> Applied:
    target.send_signal(signal.SIGSTOP)
    start = clock.now()
    try:
        await asyncio.sleep(settings.duration)
    finally:
        target.send_signal(signal.SIGCONT)
    return Applied("SIGSTOP/SIGCONT", clock.now() - start)


async def _reset(settings: FaultSettings, target: FaultTarget, seq: int) -> Applied:
    await _qmp(target).execute("system_reset")
    return Applied("QMP system_reset")


async def _nmi(settings: FaultSettings, target: FaultTarget, seq: int) -> Applied:
    await _qmp(target).execute("inject-nmi")
    return Applied("QMP inject-nmi")


async def _vcpu_hotplug(settings: FaultSettings, target: FaultTarget, seq: int) -> Applied:
    """Plug the lowest free vCPU slot (ascending order: facts/qemu.md §5), online it, unplug it later."""
    qmp = _qmp(target)
    slots = await qmp.execute("query-hotpluggable-cpus")
    free = [s for s in slots if "qom-path" not in s]
    if not free:
        raise FaultError("no free vCPU slot (set max_vcpus in the group)")
    slot = min(free, key=lambda s: (s["props"].get("socket-id", 0), s["props"].get("core-id", 0)))
    device = f"hotcpu{seq}"
    await qmp.execute("device_add", {"driver": slot["type"], "id": device, **slot["props"]})
    start = clock.now()
    try:
        if target.agent is not None:  # a hot-added CPU stays offline without udev: bring it up
            await target.agent.run(
                "for f in /sys/devices/system/cpu/cpu*/online; do "
                '[ "$(cat $f)" = 0 ] && echo 1 > $f; done; nproc', timeout=15)
        await asyncio.sleep(settings.duration)
    finally:
        await qmp.execute("device_del", {"id": device})
    return Applied(f"device_add/device_del {slot['type']} core {slot['props'].get('core-id')}",
                   clock.now() - start)


async def _snapshot(settings: FaultSettings, target: FaultTarget, seq: int) -> Applied:
    """Save the whole VM to the qcow2 node, let it run on, then load the snapshot back."""
    qmp = _qmp(target)
    tag = f"soak{seq}"
    args = {"tag": tag, "vmstate": SNAPSHOT_NODE, "devices": [SNAPSHOT_NODE]}
    await _run_job(qmp, "snapshot-save", {"job-id": f"save{seq}", **args}, target.qmp_timeout * 6)
    start = clock.now()
    await asyncio.sleep(settings.duration)
    await _run_job(qmp, "snapshot-load", {"job-id": f"load{seq}", **args}, target.qmp_timeout * 6)
    await _run_job(qmp, "snapshot-delete", {"job-id": f"del{seq}", "tag": tag, "devices": [SNAPSHOT_NODE]},
                   target.qmp_timeout * 6)
    return Applied(f"snapshot-save/snapshot-load {tag}", clock.now() - start)


async def _run_job(qmp: Qmp, command: str, arguments: dict[str, Any], timeout: float) -> None:
    """Start a QMP job and wait for it to conclude (a short poll: jobs last well under a second)."""
    job = str(arguments["job-id"])
    await qmp.execute(command, arguments)
    concluded = False
    try:
        async with asyncio.timeout(timeout):
            while True:
                jobs = {j["id"]: j for j in await qmp.execute("query-jobs")}
                state = jobs.get(job, {})
                if state.get("status") == "concluded":
                    concluded = True
                    if state.get("error"):
                        raise FaultError(f"{command}: {state['error']}")
                    return
                await asyncio.sleep(JOB_POLL_S)
    except TimeoutError as exc:
        raise FaultError(f"{command} did not finish in {timeout:.0f}s") from exc
    finally:
        await _forget_job(qmp, job, concluded)


async def _forget_job(qmp: Qmp, job: str, concluded: bool) -> None:
    """Dismiss a concluded job, cancel one still running. Best effort: a QEMU that cannot
    answer here must not replace the job's own error (``did not finish``) with its own."""
    with contextlib.suppress(QMPError):
        await qmp.execute("job-dismiss" if concluded else "job-cancel", {"id": job})


CORRUPT_SCRIPT = """
end=$(( ${UPTIME%%.*} + SECS )); n=0
while read -r UPTIME rest < /proc/uptime; [ "${UPTIME%%.*}" -lt "$end" ]; do
  for d in /proc/[0-9]*; do
    { read -r comm < $d/comm; } 2>/dev/null || continue
    case "$comm" in stress-ng-vm*) ;; *) continue ;; esac
    while read -r range perms off dev inode path; do
      [ "$perms" = rw-p ] && [ "$inode" = 0 ] && [ -z "$path" ] || continue
      start=$((0x${range%-*})); size=$((0x${range#*-} - start))
      [ "$size" -ge 4194304 ] || continue
      for at in 1 2 3; do
        dd if=/dev/urandom of=$d/mem bs=1 seek=$((start + size * at / 4)) count=4096 conv=notrunc 2>/dev/null && n=$((n + 1))
      done
    done < $d/maps
  done
  sleep 0.1
done
echo "corrupted $n stress-ng-vm buffers"
"""
"""Writes random bytes into the vm stressors' anonymous buffers through /proc/PID/mem for SECS
seconds: real silent memory corruption, which ``stress-ng --verify`` must notice."""


def _one_line(script: str) -> str:
    lines = [line.strip() for line in script.strip().splitlines()]
    joined = ""
    for line in lines:
        joined += line + (" " if line.endswith(("do", "then", "else", "in")) or line.endswith(";;") else "; ")
    return joined.strip().rstrip(";")


async def _guest_fault(settings: FaultSettings, agent: GuestAgent) -> Applied:
    if settings.type == "corrupt":
        secs = settings.secs or int(settings.duration) or 10
        script = "read -r UPTIME rest < /proc/uptime; " + _one_line(CORRUPT_SCRIPT.replace("SECS", str(secs)))
        result = await agent.run(script, timeout=secs + 30)
        return Applied(result.output.strip() or f"corrupt rc={result.rc}", float(secs))
    await agent.fault(settings.type, settings.secs)
    return Applied(f"agent fault {settings.type}" + (f" {settings.secs}s" if settings.secs else ""))


async def _migrate(settings: FaultSettings, target: FaultTarget, seq: int) -> Applied:
    start = clock.now()
    detail = await target.migrate(settings, seq)
    return Applied(detail, clock.now() - start)


async def _kill(settings: FaultSettings, target: FaultTarget, seq: int) -> Applied:
    target.send_signal(signal.SIGKILL)
    return Applied("SIGKILL")


async def _segv(settings: FaultSettings, target: FaultTarget, seq: int) -> Applied:
    target.send_signal(signal.SIGSEGV)
    return Applied("SIGSEGV")


_HOST = {
    "pause": _pause,
    "sigstop": _sigstop,
    "reset": _reset,
    "nmi": _nmi,
    "vcpu-hotplug": _vcpu_hotplug,
    "snapshot": _snapshot,
    "migrate": _migrate,
    "kill": _kill,
    "segv": _segv,
}
