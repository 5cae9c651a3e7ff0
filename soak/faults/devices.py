"""Faults on a VM's devices: the balloon, disk errors, a full host disk, disk corruption, a link down.

Each acts through QMP (and, for a full disk, on the host's file system) with a
deadline on every step, holds its window for ``duration`` and undoes itself in
a ``finally``, so a run that stops mid-window leaves the VM as it found it.

- ``disk-error``: a blkdebug node is added above each disk's image file and
  slipped under its format node with ``blockdev-reopen``; every data read and
  write then fails with EIO (rules on ``read_aio``/``write_aio``). blkdebug
  keeps the rules of the last event that had any active, so an inert rule on
  ``flush_to_os`` lets qcow2 write its metadata back on a flush (else the
  reopen that ends the window fails: "Error flushing drive"). Checked here
  with QEMU 7.2: the failed writes never reach the image.
- ``disk-full``: the VM's disks live on a tmpfs of their own (``backing =
  "tmpfs"``); filling it makes the host's ``pwrite`` fail with ENOSPC. The
  guest then sees an I/O error (``on_error = "report"``) or QEMU pauses the VM
  (``enospc``, ``stop``); when the filler is removed the paused VM is continued
  and QEMU retries the requests. soak's own run directory is not on that tmpfs.
- ``disk-corrupt``: random 4 KiB writes into the verified region of each disk
  through QEMU's block layer (HMP ``qemu-io``): data changed behind the guest's
  back, which the verified load must report.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from soak import clock
from soak.errors import QMPError
from soak.faults.settings import FaultSettings
from soak.units import format_bytes
from soak.vm.channels import Qmp
from soak.vm.devices import NIC_ID, disk_file_node, disk_node

EIO = 5
NO_SECTOR = 1 << 50
CORRUPT_BYTES = 4096
CORRUPT_EVERY_S = 0.25
"""One corrupted block per disk this often: the verified load reads its region back every few
seconds, so a window of a few seconds is found with near certainty."""
FILL_EVERY_S = 0.1
"""The filler takes back what the guest's discards free this often (a pass idles for seconds)."""
BALLOON_SETTLE_S = 10.0
"""How long the guest may take to give the balloon its pages (0.2 s measured for 128 MiB)."""
FILLER = ".soak-disk-full"


class FaultError(Exception):
    """A fault could not be applied (the VM lacks what it needs, or QEMU refused)."""


@dataclass(frozen=True, slots=True)
class DiskTarget:
    """One disk of a VM as device faults see it."""

    index: int
    image: Path
    io_bytes: int
    """The verified load's region, from offset 0: where corruption is found."""
    cache: tuple[bool, bool]
    """(O_DIRECT, flushes ignored) of its nodes: a reopen must repeat them."""
    tmpfs: Path | None = None
    """The VM's own tmpfs the image lives on (``backing = "tmpfs"``)."""


class DeviceTarget(Protocol):
    @property
    def memory_mib(self) -> int: ...
    @property
    def disks(self) -> Sequence[DiskTarget]: ...


Injector = Callable[[FaultSettings, Qmp, DeviceTarget, int], Awaitable[tuple[str, float]]]


def _cache(disk: DiskTarget) -> dict[str, bool]:
    return {"direct": disk.cache[0], "no-flush": disk.cache[1]}


async def balloon(settings: FaultSettings, qmp: Qmp, target: DeviceTarget, seq: int) -> tuple[str, float]:
    full = target.memory_mib << 20
    wanted = int(full * settings.target) & ~0xFFFFF  # whole MiB
    await qmp.execute("balloon", {"value": wanted})
    start = clock.now()
    try:
        actual = await _balloon_reaches(qmp, wanted, BALLOON_SETTLE_S)
        await asyncio.sleep(max(0.0, settings.duration - (clock.now() - start)))
    finally:
        await qmp.execute("balloon", {"value": full})
    return (f"balloon to {format_bytes(wanted)} of {format_bytes(full)} (reached {format_bytes(actual)})",
            clock.now() - start)


async def _balloon_reaches(qmp: Qmp, wanted: int, timeout: float) -> int:
    """The balloon's actual size once within 1 MiB of ``wanted``, or when ``timeout`` is up."""
    deadline = clock.now() + timeout
    while True:
        actual = int((await qmp.execute("query-balloon")).get("actual", 0))
        if abs(actual - wanted) <= 1 << 20 or clock.now() >= deadline:
            return actual
        await asyncio.sleep(0.2)


async def disk_error(settings: FaultSettings, qmp: Qmp, target: DeviceTarget, seq: int) -> tuple[str, float]:
    disks = _disks(target)
    inserted: list[DiskTarget] = []
    start = clock.now()
    try:
        for disk in disks:
            node = f"{disk_node(disk.index)}-err{seq}"
            await qmp.execute("blockdev-add", {
                "driver": "blkdebug", "node-name": node, "image": disk_file_node(disk.index),
                "inject-error": [{"event": "read_aio", "errno": EIO, "iotype": "read"},
                                 {"event": "write_aio", "errno": EIO, "iotype": "write"},
                                 # inert (a sector past any disk): a flush replaces the active rules with
                                 # it, so qcow2 can write its metadata back and the window can end
                                 {"event": "flush_to_os", "errno": EIO, "iotype": "write", "sector": NO_SECTOR}]})
            try:
                await _reopen(qmp, disk, node)
            except QMPError:
                await qmp.execute("blockdev-del", {"node-name": node})
                raise
            inserted.append(disk)
        await asyncio.sleep(settings.duration)
    finally:
        for disk in inserted:
            await _reopen(qmp, disk, disk_file_node(disk.index))
            await qmp.execute("blockdev-del", {"node-name": f"{disk_node(disk.index)}-err{seq}"})
    return f"EIO on every read and write of {len(disks)} disk(s) (blkdebug)", clock.now() - start


async def _reopen(qmp: Qmp, disk: DiskTarget, file_node: str) -> None:
    """Point the disk's format node at ``file_node``; every other option as it was launched."""
    fmt = "qcow2" if disk.image.suffix == ".qcow2" else "raw"
    await qmp.execute("blockdev-reopen", {"options": [
        {"driver": fmt, "node-name": disk_node(disk.index), "file": file_node, "cache": _cache(disk),
         "discard": "unmap"}]})


async def disk_full(settings: FaultSettings, qmp: Qmp, target: DeviceTarget, seq: int) -> tuple[str, float]:
    tmpfs = {d.tmpfs for d in target.disks if d.tmpfs is not None}
    if not tmpfs:
        raise FaultError("no disk of this VM is on its own tmpfs (backing = 'tmpfs')")
    fillers = [folder / FILLER for folder in sorted(tmpfs)]
    start = clock.now()
    filled = 0
    try:
        while clock.now() - start < settings.duration:  # the guest's discards free space: take it at once
            filled = max(filled, sum([await asyncio.to_thread(_fill, f) for f in fillers]))
            await asyncio.sleep(FILL_EVERY_S)
    finally:
        for filler in fillers:
            filler.unlink(missing_ok=True)
        paused = await qmp.status()
        if paused in ("io-error", "paused"):  # werror=enospc/stop: QEMU retries the requests on cont
            await qmp.execute("cont")
    state = f", VM was {paused}" if paused != "running" else ""
    return f"filled the disks' tmpfs ({format_bytes(filled)}){state}", clock.now() - start


def _fill(filler: Path) -> int:
    """Grow ``filler`` over every free byte of its file system; returns its size."""
    st = os.statvfs(filler.parent)
    free = st.f_bavail * st.f_frsize
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if free:
            with contextlib.suppress(OSError):  # ENOSPC at the very end is the point
                os.posix_fallocate(fd, size, free)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


async def disk_corrupt(settings: FaultSettings, qmp: Qmp, target: DeviceTarget, seq: int) -> tuple[str, float]:
    disks = _disks(target)
    rng = random.Random(f"disk-corrupt/{seq}")
    writes = 0
    start = clock.now()
    while clock.now() - start < settings.duration:
        for disk in disks:
            blocks = max(1, disk.io_bytes // CORRUPT_BYTES)
            offset = rng.randrange(blocks) * CORRUPT_BYTES
            pattern = rng.randrange(1, 256)
            # qemu-io says "wrote ..." on QEMU's stdout (the console) once it had to wait for the guest's
            # own I/O; only a refusal comes back here
            out = await qmp.hmp(f'qemu-io -d /machine/peripheral/{disk_node(disk.index)}-dev/virtio-backend '
                                f'"write -P {pattern} {offset} {CORRUPT_BYTES}"')
            if any(word in out.lower() for word in ("error", "fail", "conflict", "not found")):
                raise FaultError(f"qemu-io refused: {out.strip()[:200]}")
            writes += 1
        await asyncio.sleep(CORRUPT_EVERY_S)
    return f"{writes} blocks of {CORRUPT_BYTES} bytes overwritten from the host", clock.now() - start


async def link_down(settings: FaultSettings, qmp: Qmp, target: DeviceTarget, seq: int) -> tuple[str, float]:
    await qmp.execute("set_link", {"name": NIC_ID, "up": False})
    start = clock.now()
    try:
        await asyncio.sleep(settings.duration)
    finally:
        await qmp.execute("set_link", {"name": NIC_ID, "up": True})
    return "QMP set_link off/on", clock.now() - start


def _disks(target: DeviceTarget) -> Sequence[DiskTarget]:
    if not target.disks:
        raise FaultError("this VM has no disk")
    return target.disks


DEVICE_FAULTS: dict[str, Injector] = {
    "balloon": balloon,
    "disk-error": disk_error,
    "disk-full": disk_full,
    "disk-corrupt": disk_corrupt,
    "link-down": link_down,
}


