"""Full operating-system disk images: what a group boots with ``image = { disk = ... }``.

A disk is either the user's own file (any format ``qemu-img`` reads: qcow2,
raw, vmdk ...) or one soak builds, named ``soak:NAME`` (`SOAK_DISKS`; today
``soak:debian``, see `soak.image.osdisk`). The file itself is never written:
each boot of each VM gets a fresh qcow2 overlay on top of it in the run
directory (`soak.machine.diskfiles`), so a guest's damage stays in its overlay.

`inspect_disk` asks ``qemu-img info`` what a file is, so a missing file or
one QEMU cannot read is refused before any guest starts (``soak profile
check`` and ``soak run``), with one line naming it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from soak.errors import ImageError
from soak.image.tools import run_tool

SOAK_PREFIX = "soak:"
SOAK_DISKS = ("debian",)
"""The disk images soak can build (``image.disk = "soak:debian"``)."""
INFO_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class DiskFile:
    """A disk image file as ``qemu-img info`` sees it."""

    path: Path
    format: str
    virtual_size: int
    """Bytes the guest sees: also the most its overlay can grow to."""


@dataclass(frozen=True, slots=True)
class DiskImage:
    """A bootable disk: the file, and the kernel to boot directly when the disk carries no bootloader."""

    disk: DiskFile
    label: str
    """How the summary and metrics name it (``soak:debian@KEY``, or the file's name)."""
    agent: str
    """``qga``: it runs QEMU's guest agent; ``none``: watched by console, QMP and process only."""
    kernel: Path | None = None
    initrd: Path | None = None
    kernel_args: tuple[str, ...] = ()
    """Boot arguments of the disk's own kernel (its root file system), before the user's ``append``."""
    features: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()


def soak_disk_name(disk: str) -> str | None:
    """``debian`` for ``soak:debian``; None for a path."""
    return disk[len(SOAK_PREFIX):] if disk.startswith(SOAK_PREFIX) else None


def qemu_img() -> str:
    """:raise ImageError: qemu-img is not installed."""
    found = shutil.which("qemu-img")
    if found is None:
        raise ImageError("qemu-img not found: apt-get install qemu-utils")
    return found


def inspect_disk(path: Path, fmt: str | None = None) -> DiskFile:
    """What ``path`` is, as ``qemu-img info`` reads it (``fmt``: insist on that format).

    ``-U`` (no lock): a disk in use by a running guest (another run's) can still be inspected.

    :raise ImageError: the file is missing, unreadable, or not an image of ``fmt`` (one line).
    """
    if not path.is_file():
        raise ImageError(f"disk image {path}: {'not a regular file' if path.exists() else 'no such file'}")
    argv = [qemu_img(), "info", "-U", "--output=json", *(["-f", fmt] if fmt else []), str(path)]
    try:
        out = run_tool(argv, timeout=INFO_TIMEOUT_S)
    except ImageError as exc:
        said = str(exc).split("failed: ", 1)[-1]
        raise ImageError(f"disk image {path}: qemu-img cannot read it{f' as {fmt}' if fmt else ''}: {said}") from None
    try:
        info = json.loads(out)
        return DiskFile(path.resolve(), str(info["format"]), int(info["virtual-size"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ImageError(f"disk image {path}: qemu-img info said something unexpected: {exc}") from exc
