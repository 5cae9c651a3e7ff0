"""A VM's own copy-on-write layer over a disk image, made before each boot.

The image file is only ever read by QEMU (it is the overlay's backing file);
everything the guest writes lands in ``RUN/vms/VM/disk.qcow2``, made afresh at
each launch of the VM so a boot after a failure starts from the image as it
was. A migration's destination shares the source's overlay by path and never
makes one. ``qemu-img create`` runs asynchronously under a deadline, so a slow
disk never blocks the event loop and never hangs a launch.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from soak.errors import LaunchError

OVERLAY_NAME = "disk.qcow2"
QEMU_IMG_TIMEOUT_S = 30.0


async def create_overlay(overlay: Path, backing: Path, backing_format: str, *,
                         timeout: float = QEMU_IMG_TIMEOUT_S) -> None:
    """A fresh qcow2 at ``overlay`` whose backing file is ``backing`` (absolute, never written).

    :raise LaunchError: qemu-img is missing, fails, or takes longer than ``timeout``.
    """
    qemu_img = shutil.which("qemu-img") or "qemu-img"
    overlay.unlink(missing_ok=True)
    argv = [qemu_img, "create", "-q", "-f", "qcow2", "-b", str(backing.resolve()), "-F", backing_format,
            str(overlay)]
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
        raise LaunchError(f"qemu-img create {overlay} took over {timeout:.0f}s", argv=argv) from None
    if process.returncode != 0:
        message = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise LaunchError(f"cannot make the overlay {overlay} of {backing}: {message[0]}", argv=argv,
                          exit_code=process.returncode)
