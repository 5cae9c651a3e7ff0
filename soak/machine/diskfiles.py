"""The disk files a VM's QEMU needs before it starts: made with ``qemu-img`` or mounted.

A disk image's overlay is the VM's own copy-on-write layer, made before each boot. The image file is only ever read by QEMU (it is the overlay's backing file);
everything the guest writes lands in ``RUN/vms/VM/disk.qcow2``, made afresh at
each launch of the VM so a boot after a failure starts from the image as it
was. A migration's destination shares the source's overlay by path and never
makes one. ``qemu-img create`` runs asynchronously under a deadline, so a slow
disk never blocks the event loop and never hangs a launch. The same goes for a fresh empty
image (a device disk, the snapshot fault's node) and for a VM's disk tmpfs (``mount``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from soak.errors import LaunchError

OVERLAY_NAME = "disk.qcow2"
QEMU_IMG_TIMEOUT_S = 30.0
MOUNT_TIMEOUT_S = 30.0
TMPFS_SLACK_BYTES = 4 << 20
"""Room on a disk tmpfs beyond its disks (1/256 of their size is added too)."""


async def create_overlay(overlay: Path, backing: Path, backing_format: str, *,
                         timeout: float = QEMU_IMG_TIMEOUT_S) -> None:
    """A fresh qcow2 at ``overlay`` whose backing file is ``backing`` (absolute, never written).

    :raise LaunchError: qemu-img is missing, fails, or takes longer than ``timeout``.
    """
    await _qemu_img_create(shutil.which("qemu-img") or "qemu-img", overlay,
                           ["-f", "qcow2", "-b", str(backing.resolve()), "-F", backing_format, str(overlay)],
                           failed=f"cannot make the overlay {overlay} of {backing}", timeout=timeout)


async def create_qcow2(qemu: str, path: Path, size: str, *, fmt: str = "qcow2") -> None:
    """A fresh, empty image (qcow2, or a sparse raw file) next to ``qemu``'s qemu-img.

    :raise LaunchError: qemu-img is missing, fails or takes longer than its deadline.
    """
    qemu_img = shutil.which("qemu-img") or str(Path(shutil.which(qemu) or qemu).with_name("qemu-img"))
    await _qemu_img_create(qemu_img, path, ["-f", fmt, str(path), size], failed=f"qemu-img create {path} failed",
                           timeout=QEMU_IMG_TIMEOUT_S)


async def _qemu_img_create(qemu_img: str, path: Path, args: list[str], *, failed: str, timeout: float) -> None:
    """``qemu-img create -q ARGS`` for a fresh ``path``, without blocking the event loop."""
    path.unlink(missing_ok=True)
    argv = [qemu_img, "create", "-q", *args]
    try:
        process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                       stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise LaunchError(f"cannot run qemu-img (Debian: qemu-utils): {exc}", argv=argv) from exc
    try:
        async with asyncio.timeout(timeout):
            _, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise LaunchError(f"qemu-img create {path} took over {timeout:.0f}s", argv=argv) from None
    if process.returncode != 0:
        message = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise LaunchError(f"{failed}: {message[0]}", argv=argv, exit_code=process.returncode)


async def mount_tmpfs(where: Path, size: int) -> None:
    """A tmpfs of ``size`` bytes at ``where`` (root only).

    :raise LaunchError: not root, or mount failed.
    """
    if os.geteuid() != 0:
        raise LaunchError(f"backing = 'tmpfs' mounts a tmpfs for the VM's disks at {where}: that needs root")
    argv = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)]
    try:
        async with asyncio.timeout(MOUNT_TIMEOUT_S):
            process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                           stdout=asyncio.subprocess.DEVNULL,
                                                           stderr=asyncio.subprocess.PIPE)
            _, err = await process.communicate()
    except (OSError, TimeoutError) as exc:
        raise LaunchError(f"cannot mount a tmpfs at {where}: {exc or 'timed out'}", argv=argv) from exc
    if process.returncode != 0:
        raise LaunchError(f"cannot mount a tmpfs at {where}: {err.decode(errors='replace').strip()}", argv=argv)
