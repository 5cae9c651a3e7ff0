"""The ELF reader on real 32-bit files (i386 guests), made with the host's gcc -m32 and ld -m elf_i386."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from soak.image.elf import modinfo, read_deps


def _run(*argv: str, cwd: Path) -> None:
    subprocess.run(list(argv), cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def elf32(tmp_path: Path) -> Path:
    for tool in ("gcc", "ld"):
        assert shutil.which(tool), f"{tool} is needed (scripts/bootstrap installs gcc)"
    (tmp_path / "dep.c").write_text("int dep(void) { return 1; }\n")
    (tmp_path / "prog.c").write_text(
        'static const char mi[] __attribute__((section(".modinfo"), used, aligned(1))) = "depends=virtio,virtio_ring";\n'
        "int dep(void);\nvoid _start(void) { dep(); }\n")
    _run("gcc", "-m32", "-fPIC", "-c", "dep.c", "prog.c", cwd=tmp_path)
    _run("ld", "-m", "elf_i386", "-shared", "-soname", "libdep.so.2", "-o", "libdep.so.2", "dep.o", cwd=tmp_path)
    _run("ld", "-m", "elf_i386", "-dynamic-linker", "/lib/ld-linux.so.2", "-o", "prog", "prog.o", "libdep.so.2",
         cwd=tmp_path)
    return tmp_path


def test_needed_soname_and_interpreter_of_elf32(elf32: Path) -> None:
    prog = read_deps(elf32 / "prog")
    assert (prog.needed, prog.interp, prog.soname) == (("libdep.so.2",), "/lib/ld-linux.so.2", None)
    lib = read_deps(elf32 / "libdep.so.2")
    assert (lib.needed, lib.soname, lib.interp) == ((), "libdep.so.2", None)


def test_modinfo_of_an_elf32_object(elf32: Path) -> None:
    assert modinfo((elf32 / "prog.o").read_bytes())["depends"] == "virtio,virtio_ring"
