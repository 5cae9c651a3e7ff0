"""The newc writer against its own reader and, where installed, GNU cpio."""

from __future__ import annotations

import io
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from soak.errors import ImageError
from soak.image.cpio import CpioWriter, read_cpio


def _archive(tmp_path: Path) -> bytes:
    src = tmp_path / "src.bin"
    src.write_bytes(bytes(range(256)) * 5 + b"odd")  # a size that needs padding
    src.chmod(0o755)
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.add_bytes("etc/soak/image", b"key=abc\n")  # parents are created on demand
    w.add_file("usr/bin/tool", src)
    w.add_symlink("bin/sh", "/bin/busybox")
    w.add_char_device("dev/console", 5, 1)
    w.add_dir("tmp", 0o1777)
    w.close()
    return buf.getvalue()


def test_round_trip(tmp_path: Path) -> None:
    entries = {e.name: e for e in read_cpio(_archive(tmp_path))}
    assert list(entries)[:3] == ["etc", "etc/soak", "etc/soak/image"]
    assert entries["etc/soak/image"].data == b"key=abc\n"
    tool = entries["usr/bin/tool"]
    assert tool.data == (tmp_path / "src.bin").read_bytes()
    assert stat.S_ISREG(tool.mode) and stat.S_IMODE(tool.mode) == 0o755
    assert stat.S_ISLNK(entries["bin/sh"].mode) and entries["bin/sh"].data == b"/bin/busybox"
    console = entries["dev/console"]
    assert stat.S_ISCHR(console.mode) and console.rdev == (5, 1)
    assert stat.S_IMODE(entries["tmp"].mode) == 0o1777


def test_output_is_reproducible(tmp_path: Path) -> None:
    assert _archive(tmp_path) == _archive(tmp_path)


def test_every_entry_is_aligned(tmp_path: Path) -> None:
    data = _archive(tmp_path)
    assert len(data) % 4 == 0
    assert data.count(b"070701") >= 10  # headers are found where the reader expects them


@pytest.mark.parametrize("name", ["", "/", "a/../b", "../x"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ImageError):
        CpioWriter(io.BytesIO()).add_bytes(name, b"")


def test_duplicates_are_refused() -> None:
    w = CpioWriter(io.BytesIO())
    w.add_bytes("a", b"1")
    with pytest.raises(ImageError, match="duplicate"):
        w.add_bytes("/a", b"2")


@pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio is not installed")
def test_gnu_cpio_reads_it(tmp_path: Path) -> None:
    archive = tmp_path / "a.cpio"
    archive.write_bytes(_archive(tmp_path))
    listing = subprocess.run(["cpio", "-it", "--quiet"], stdin=archive.open("rb"), capture_output=True,
                             text=True, timeout=30, check=True).stdout.split()
    assert {"etc/soak/image", "usr/bin/tool", "bin/sh", "dev/console"} <= set(listing)
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet", "--no-absolute-filenames", "usr/bin/tool"],
                   stdin=archive.open("rb"), cwd=out, timeout=30, check=True)
    assert (out / "usr/bin/tool").read_bytes() == (tmp_path / "src.bin").read_bytes()
