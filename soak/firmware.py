"""Guest firmware: what boots before the kernel, and the per-VM variable store UEFI needs.

``bios`` (SeaBIOS on x86) and ``none`` (QEMU loads the kernel itself, as on
arm ``virt``) need no files. ``uefi`` is Debian's OVMF (x86_64) or AAVMF
(aarch64) in pflash form: the code image read-only and shared, the variable
store copied once per VM into its run directory, because UEFI writes it (boot
entries, the console mode) and two guests must never share one.

The copy is sparse: AAVMF's store is 64 MiB of mostly zeros, and a fleet of
such guests must not cost 64 MiB of disk each.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BLOCK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Firmware:
    """One firmware a guest architecture can boot through."""

    name: str
    """As a profile says it: ``bios``, ``uefi``, ``none``."""
    package: str | None = None
    """The Debian package that ships its files (None: part of QEMU, or no firmware)."""
    code: Path | None = None
    """Read-only pflash unit 0."""
    vars_template: Path | None = None
    """Copied per VM as writable pflash unit 1."""
    boots_disks: bool = True
    """It can load a bootloader from a disk (``image.disk`` without a kernel)."""

    @property
    def needs_files(self) -> bool:
        return self.code is not None

    def missing(self) -> list[Path]:
        """The firmware files this host lacks (install `package`)."""
        return [p for p in (self.code, self.vars_template) if p is not None and not p.is_file()]


def vars_store(firmware: Firmware, dest: Path) -> Path | None:
    """The VM's own variable store at ``dest``, copied from the template on first use.

    A VM keeps its store across its reboots, as a real machine keeps its NVRAM.

    :raise OSError: the template cannot be read or ``dest`` written.
    """
    if firmware.vars_template is None:
        return None
    if not dest.is_file():
        tmp = dest.with_name(dest.name + ".tmp")
        sparse_copy(firmware.vars_template, tmp)
        os.replace(tmp, dest)
    return dest


def sparse_copy(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest``, leaving holes where ``src`` has blocks of zeros."""
    zero = bytes(BLOCK)
    with src.open("rb") as fin, dest.open("wb") as fout:
        size = 0
        while block := fin.read(BLOCK):
            size += len(block)
            if block == zero[: len(block)]:
                fout.seek(len(block), os.SEEK_CUR)
            else:
                fout.write(block)
        fout.truncate(size)
