"""A guest that floods its serial console: the default image's kernel and busybox, our own /init.

The initramfs is written with soak's cpio writer: busybox taken from the
default image's initramfs, a /init that prints ``/proc/kallsyms`` to ttyS0 in
a loop and, after ``flood_crash_after`` dumps, a kernel panic report in the
middle of the flood (then floods on, so the report is buried).
"""

from __future__ import annotations

import contextlib
import gzip
import subprocess
from collections.abc import Iterator
from pathlib import Path

from soak.image import GuestImage
from soak.image.cpio import CpioWriter, read_cpio
from soak.machine import host_tsc_khz
from soak.vm.argv import QemuConfig

PANIC_TITLE = "kernel panic: soak-flood-test: a crash in the middle of a flood"

INIT = b"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
i=0
while :; do
  cat /proc/kallsyms
  i=$((i+1))
  if [ "$i" = "${flood_crash_after:-1}" ]; then
    echo "Kernel panic - not syncing: soak-flood-test: a crash in the middle of a flood"
    echo "CPU: 0 PID: 1 Comm: init Not tainted 6.1.0-57-cloud-amd64 #1  Debian 6.1.192-3"
    echo "Call Trace:"
    echo " <TASK>"
    echo " dump_stack_lvl+0x44/0x5c"
    echo " panic+0x118/0x2f0"
    echo " </TASK>"
    echo "Kernel Offset: 0x1000000 from 0xffffffff81000000"
  fi
done > /dev/ttyS0 2>&1
"""


def flood_initrd(image: GuestImage, out: Path) -> Path:
    """Write the flooding initramfs (gzip-compressed cpio) to ``out``."""
    busybox = next(e.data for e in read_cpio(gzip.decompress(image.initrd.read_bytes())) if e.name == "bin/busybox")
    with gzip.open(out, "wb", compresslevel=1) as f:
        cpio = CpioWriter(f)  # type: ignore[arg-type]
        for name in ("proc", "sys", "tmp"):
            cpio.add_dir(name)
        cpio.add_char_device("dev/console", 5, 1)
        cpio.add_char_device("dev/ttyS0", 4, 64)
        cpio.add_char_device("dev/null", 1, 3, mode=0o666)
        cpio.add_bytes("bin/busybox", busybox, mode=0o755)
        cpio.add_bytes("init", INIT, mode=0o755)
        cpio.close()
    return out


def boot_config(image: GuestImage, initrd: Path, sockets: Path, name: str = "flood-0") -> QemuConfig:
    """The QEMU config of the flooding guest, as soak's argv builder takes it."""
    return QemuConfig(name=name, kernel=image.kernel, initrd=initrd, kernel_args=("flood_crash_after=1",),
                      tsc_khz=host_tsc_khz(), qmp_socket=sockets / "q", agent_socket=sockets / "a")


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` (needs root, as on CI), unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise AssertionError(f"cannot mount a tmpfs at {where} (the disk-full tests need root): {done.stderr}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)
