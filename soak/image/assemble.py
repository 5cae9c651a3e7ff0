"""The default guest's file layout, written as a gzip'd cpio initramfs.

Everything is placed by explicit rules from unpacked packages, nothing is
copied from the host: the same inputs give the same bytes. busybox's applet
links are made by /init at boot (``busybox --install -s``): a busybox of
another architecture cannot be asked for its list on the host.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from soak.image.closure import Library
from soak.image.cpio import CpioWriter
from soak.image.kernel import Module

MODULE_DIR = "lib/soak/modules"
EXTRA_DIR = "lib/soak/extra"
DEVICE_DIR = "lib/soak/devices"
"""One file per device kind (``blk``, ``net`` ...): the modules its driver needs, in load order."""
GZIP_LEVEL = 9
DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "run", "root", "mnt")


@dataclass(frozen=True, slots=True)
class Layout:
    """Everything that goes into the initramfs."""

    init_script: bytes
    busybox: Path
    binaries: Mapping[str, Path]
    """Destination (e.g. ``usr/bin/stress-ng``) -> file."""
    libraries: Iterable[Library]
    lib_dir: str
    """Where the libraries go, e.g. ``lib/aarch64-linux-gnu``."""
    interpreter: str | None
    """The loader path the binaries name (PT_INTERP), linked to its copy in ``lib_dir``."""
    modules: Iterable[Module]
    """Loaded by /init at boot, in this order."""
    extra_modules: Iterable[Module]
    """Shipped in EXTRA_DIR for the agent to load on demand."""
    device_modules: Mapping[str, Iterable[Module]]
    """Device kind -> its driver's modules in load order; /init loads them when the VM has that device."""
    scripts: Mapping[str, bytes]
    """Destination -> a shell script of the agent's (the device loads)."""
    image_info: Mapping[str, str]
    """Written as /etc/soak/image, sourced by the agent (key, features, release)."""


def write_initramfs(layout: Layout, dest: Path) -> None:
    """Write the gzip'd newc archive for ``layout`` to ``dest``."""
    with dest.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0) as gz:
        cpio = CpioWriter(gz)  # type: ignore[arg-type]  # GzipFile is a BinaryIO in practice
        for d in DIRS:
            cpio.add_dir(d)
        cpio.add_dir("tmp", 0o1777)
        # The kernel opens /dev/console for init before anything is mounted.
        cpio.add_char_device("dev/console", 5, 1)
        cpio.add_char_device("dev/null", 1, 3, 0o666)
        cpio.add_bytes("init", layout.init_script, 0o755)
        cpio.add_file("bin/busybox", layout.busybox, 0o755)
        cpio.add_symlink("bin/sh", "/bin/busybox")  # for /init's #!; it links the other applets
        for dest_name, src in sorted(layout.binaries.items()):
            cpio.add_file(dest_name, src, 0o755)
        for lib in sorted(layout.libraries, key=lambda lib: lib.soname):
            cpio.add_file(f"{layout.lib_dir}/{lib.soname}", lib.path)
        if layout.interpreter and layout.interpreter.lstrip("/") not in cpio:
            name = layout.interpreter.rsplit("/", 1)[-1]
            cpio.add_symlink(layout.interpreter, f"/{layout.lib_dir}/{name}")
        order = []
        for module in layout.modules:
            cpio.add_bytes(f"{MODULE_DIR}/{module.name}.ko", module.data)
            order.append(module.name)
        cpio.add_bytes("lib/soak/modules.order", "".join(f"{m}\n" for m in order).encode())
        for module in layout.extra_modules:
            cpio.add_bytes(f"{EXTRA_DIR}/{module.name}.ko", module.data)
        shipped = set(order)
        for device, modules in sorted(layout.device_modules.items()):
            names = []
            for module in modules:
                if module.name not in shipped:
                    cpio.add_bytes(f"{MODULE_DIR}/{module.name}.ko", module.data)
                    shipped.add(module.name)
                names.append(module.name)
            cpio.add_bytes(f"{DEVICE_DIR}/{device}", "".join(f"{m}\n" for m in names).encode())
        for dest_name, script in sorted(layout.scripts.items()):
            cpio.add_bytes(dest_name, script, 0o755)
        info = "".join(f"{k}={v}\n" for k, v in sorted(layout.image_info.items()))
        cpio.add_bytes("etc/soak/image", info.encode())
        cpio.add_bytes("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        cpio.add_bytes("etc/group", b"root:x:0:\n")
        cpio.close()
