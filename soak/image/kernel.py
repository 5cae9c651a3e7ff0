"""Facts about a kernel: its release string and the modules it must load, in order.

The guest has no modules.dep and no modprobe; the image ships the few modules
it needs flat, and /init insmods them in the order computed here from each
module's ``depends=`` modinfo.
"""

from __future__ import annotations

import lzma
import struct
from dataclasses import dataclass
from pathlib import Path

from soak.errors import ImageError
from soak.image.elf import modinfo


def bzimage_release(path: Path) -> str | None:
    """The release (``uname -r``) an x86 bzImage announces in its setup header, if any."""
    try:
        with path.open("rb") as f:
            head = f.read(1 << 16)
    except OSError as exc:
        raise ImageError(f"cannot read kernel {path}: {exc.strerror}") from exc
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        return None
    (offset,) = struct.unpack_from("<H", head, 0x20E)
    start = 0x200 + offset
    text = head[start : start + 256].split(b"\0", 1)[0].decode("ascii", "replace")
    return text.split(" ", 1)[0] or None


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    """Module name with underscores, as the kernel reports it."""
    data: bytes
    """The uncompressed .ko."""


def _module_name(path: Path) -> str:
    name = path.name
    for suffix in (".ko.xz", ".ko"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name.replace("-", "_")


def module_index(modules_dir: Path) -> dict[str, Path]:
    """Module name -> file, for every .ko or .ko.xz under ``modules_dir``."""
    index: dict[str, Path] = {}
    for pattern in ("*.ko", "*.ko.xz"):
        for path in sorted(modules_dir.rglob(pattern)):
            index.setdefault(_module_name(path), path)
    return index


def _load(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.name.endswith(".xz") else data


def builtin_modules(modules_dir: Path) -> set[str]:
    """Names of the drivers built into the kernel (``modules.builtin``): nothing to load for them."""
    try:
        lines = (modules_dir / "modules.builtin").read_text().split()
    except OSError:
        return set()
    return {_module_name(Path(line)) for line in lines}


def modules_in_load_order(modules_dir: Path, wanted: list[str], release: str) -> list[Module]:
    """``wanted`` and their dependencies, dependencies first; drivers built into the kernel are left out.

    :raise ImageError: a module is missing or was built for another kernel.
    """
    index = module_index(modules_dir)
    builtin = builtin_modules(modules_dir)
    ordered: list[Module] = []
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        name = name.replace("-", "_")
        if name in done:
            return
        if name in chain:
            raise ImageError(f"kernel modules depend on each other in a cycle: {' -> '.join(chain)}")
        path = index.get(name)
        if path is None and name in builtin:
            done.add(name)
            return
        if path is None:
            raise ImageError(f"kernel {release} has no module {name} under {modules_dir}")
        data = _load(path)
        info = modinfo(data, path)
        if not info.get("vermagic", "").startswith(release + " "):
            raise ImageError(f"{path} is built for {info.get('vermagic')!r}, not {release}")
        for dep in filter(None, info.get("depends", "").split(",")):
            visit(dep, (*chain, name))
        done.add(name)
        ordered.append(Module(name, data))

    for name in wanted:
        visit(name, ())
    return ordered
