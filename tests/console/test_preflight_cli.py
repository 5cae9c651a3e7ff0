"""`soak run` refuses, before any QEMU starts, a profile this host or its image cannot serve."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.qemu  # prepare() asks QEMU its version; nothing boots


def soak_run(profile: Path, run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "soak", "run", str(profile), "--run-dir", str(run_dir),
                           "--metrics-listen", ""], capture_output=True, text=True, timeout=120)


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_memory_the_host_does_not_have_is_exit_2_in_one_line(tmp_path: Path) -> None:
    profile = write(tmp_path / "huge.toml", """
        [run]
        accel = "tcg"
        [[group]]
        name = "huge"
        count = 2
        memory = "1T"
    """)
    done = soak_run(profile, tmp_path / "run")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"CapacityError: {profile}: the fleet needs 2.0 TiB")
    assert not (tmp_path / "run").exists()


def test_a_kernel_fault_on_an_image_that_cannot_provoke_it_is_exit_2(tmp_path: Path) -> None:
    kernel, initrd = tmp_path / "bzImage", tmp_path / "initrd"
    kernel.write_bytes(b"\0" * 1024)
    initrd.write_bytes(b"\0" * 1024)
    profile = write(tmp_path / "own.toml", f"""
        [run]
        accel = "tcg"
        [[group]]
        name = "own"
        image = {{ kernel = "{kernel}", initrd = "{initrd}" }}
        fault = [{{ type = "pause", every = "60s" }}, {{ type = "oops", at = ["30s"] }}]
    """)
    done = soak_run(profile, tmp_path / "run")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"ProfileError: {profile}: group[0].fault[1]: guest fault 'oops' cannot be provoked in the image of "
        f"group 'own' (bzImage): it runs no soak agent (a user's own kernel and initrd)")


def test_a_missing_kernel_or_an_initrd_larger_than_memory_is_exit_2(tmp_path: Path) -> None:
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"\0" * 1024)
    missing = write(tmp_path / "missing.toml", f"""
        [run]
        accel = "tcg"
        [[group]]
        name = "own"
        image = {{ kernel = "{tmp_path / 'no-such-bzImage'}", initrd = "{initrd}" }}
    """)
    done = soak_run(missing, tmp_path / "run")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"UsageError: group 'own': image.kernel {tmp_path / 'no-such-bzImage'}: No such file or directory"]

    kernel, big = tmp_path / "bzImage", tmp_path / "big-initrd"
    kernel.write_bytes(b"\0" * 1024)
    with open(big, "wb") as f:
        f.truncate(200 << 20)  # sparse: 200 MiB that cost nothing on disk
    too_big = write(tmp_path / "big.toml", f"""
        [run]
        accel = "tcg"
        [[group]]
        name = "own"
        memory = "128M"
        image = {{ kernel = "{kernel}", initrd = "{big}" }}
    """)
    done = soak_run(too_big, tmp_path / "run2")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ProfileError:") and "does not fit in 128 MiB" in lines[0]
