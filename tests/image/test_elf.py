"""The ELF reader on real binaries of this host, and kernel facts from synthetic modules."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from soak.errors import ImageError
from soak.image.elf import modinfo, parse_deps, read_deps
from soak.image.kernel import bzimage_release, modules_in_load_order

from .conftest import MakeModule


def _dynamic_binary() -> Path:
    for name in ("ls", "cat", "sh"):
        found = shutil.which(name)
        if found and Path(found).resolve().read_bytes()[:4] == b"\x7fELF":
            return Path(found).resolve()
    pytest.skip("no dynamic ELF binary found on this host")


def test_needed_and_interpreter_of_a_real_binary() -> None:
    deps = read_deps(_dynamic_binary())
    assert "libc.so.6" in deps.needed
    assert deps.interp is not None and "ld-linux" in deps.interp
    assert deps.soname is None


def test_soname_of_a_real_library() -> None:
    libc = Path("/lib/x86_64-linux-gnu/libc.so.6")
    if not libc.exists():
        pytest.skip("no x86_64 glibc here")
    deps = read_deps(libc)
    assert deps.soname == "libc.so.6"
    assert any(n.startswith("ld-linux") for n in deps.needed)


def test_not_elf_is_an_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not an ELF"):
        parse_deps(b"#!/bin/sh\necho hi\n" + b"\0" * 64)


def test_modinfo_of_a_module(make_module: MakeModule) -> None:
    info = modinfo(make_module("pvpanic-mmio", depends="pvpanic").read_bytes())
    assert info["name"] == "pvpanic_mmio"
    assert info["depends"] == "pvpanic"


def test_modules_come_dependencies_first(tmp_path: Path, make_module: MakeModule) -> None:
    tree = tmp_path / "lib/modules/6.1.0-test/kernel"
    make_module("pvpanic", where=tree / "misc")
    make_module("pvpanic-mmio", depends="pvpanic", where=tree / "misc")
    make_module("pvpanic-pci", depends="pvpanic", where=tree / "misc")
    mods = modules_in_load_order(tmp_path / "lib/modules/6.1.0-test", ["pvpanic_mmio", "pvpanic-pci"], "6.1.0-test")
    assert [m.name for m in mods] == ["pvpanic", "pvpanic_mmio", "pvpanic_pci"]


def test_a_module_for_another_kernel_is_refused(tmp_path: Path, make_module: MakeModule) -> None:
    make_module("old", vermagic="5.10.0-9 SMP ", where=tmp_path / "k")
    with pytest.raises(ImageError, match="built for"):
        modules_in_load_order(tmp_path / "k", ["old"], "6.1.0-test")


def test_a_missing_module_is_named(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no module pvpanic"):
        modules_in_load_order(tmp_path, ["pvpanic"], "6.1.0-test")


def test_release_from_a_bzimage_header(tmp_path: Path) -> None:
    head = bytearray(0x400)
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x20E, 0x100)  # the string sits at 0x200 + 0x100
    text = b"6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP\0"
    head[0x300 : 0x300 + len(text)] = text
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(bytes(head))
    assert bzimage_release(kernel) == "6.1.0-56-cloud-amd64"
    kernel.write_bytes(b"\0" * 0x400)
    assert bzimage_release(kernel) is None
