"""Helpers for the image tests: real ELF objects made with the host's compiler."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

MakeModule = Callable[..., Path]


@pytest.fixture
def make_module(tmp_path: Path) -> MakeModule:
    """Compile an object file whose .modinfo looks like a kernel module's."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")

    def make(name: str, *, depends: str = "", vermagic: str = "6.1.0-test SMP mod_unload ",
             where: Path | None = None) -> Path:
        fields = [f"name={name.replace('-', '_')}", f"depends={depends}", f"vermagic={vermagic}"]
        src = tmp_path / f"{name}.c"
        src.write_text("".join(
            f'static const char m{i}[] __attribute__((section(".modinfo"), used, aligned(1))) = "{f}";\n'
            for i, f in enumerate(fields)))
        out = (where or tmp_path) / f"{name}.ko"
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-c", "-o", str(out), str(src)], check=True, timeout=60)
        return out

    return make
