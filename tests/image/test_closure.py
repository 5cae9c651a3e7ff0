"""Library closure over fake packages holding this host's real ELF files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest

from soak.errors import ImageError
from soak.image.closure import Unpacked, library_closure, resolve_in_root

HOST_LIBS = Path("/lib/x86_64-linux-gnu")
LS = Path("/usr/bin/ls")


@pytest.fixture
def repo(tmp_path: Path) -> dict[str, Unpacked]:
    """coreutils -> libselinux1 -> libpcre2-8-0, all -> libc6 -> libgcc-s1 (never needed)."""
    needed = ["libselinux.so.1", "libpcre2-8.so.0", "libc.so.6", "ld-linux-x86-64.so.2"]
    if not LS.exists() or not all((HOST_LIBS / n).exists() for n in needed):
        pytest.skip("this host lacks the libraries the fake packages are made of")

    def pkg(name: str, depends: tuple[str, ...], files: Mapping[str, Path]) -> Unpacked:
        root = tmp_path / name
        for dest, src in files.items():
            (root / dest).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, root / dest)
        return Unpacked(name, "1.0", root, depends)

    pcre_real = (HOST_LIBS / "libpcre2-8.so.0").resolve()
    repo = {
        "coreutils": pkg("coreutils", ("libselinux1", "libc6", "unrelated"), {"usr/bin/ls": LS}),
        "libselinux1": pkg("libselinux1", ("libpcre2-8-0", "libc6"),
                           {"lib/x86_64-linux-gnu/libselinux.so.1": HOST_LIBS / "libselinux.so.1"}),
        "libpcre2-8-0": pkg("libpcre2-8-0", ("libc6",),
                            {f"usr/lib/x86_64-linux-gnu/{pcre_real.name}": pcre_real}),
        "libc6": pkg("libc6", ("libgcc-s1",), {
            "lib/x86_64-linux-gnu/libc.so.6": HOST_LIBS / "libc.so.6",
            "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": HOST_LIBS / "ld-linux-x86-64.so.2",
        }),
        "unrelated": pkg("unrelated", (), {}),
        "libgcc-s1": pkg("libgcc-s1", (), {}),
    }
    # Debian ships sonames as symlinks, some of them absolute.
    os.symlink(pcre_real.name, tmp_path / "libpcre2-8-0/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0")
    (tmp_path / "libc6/lib64").mkdir()
    os.symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", tmp_path / "libc6/lib64/ld-linux-x86-64.so.2")
    return repo


class Fetcher:
    def __init__(self, repo: dict[str, Unpacked]) -> None:
        self.repo = repo
        self.calls: list[list[str]] = []

    def __call__(self, names: list[str]) -> dict[str, Unpacked]:
        self.calls.append(names)
        return {n: self.repo[n] for n in names if n in self.repo}


def test_closure_follows_depends_only_as_far_as_needed(repo: dict[str, Unpacked]) -> None:
    fetch = Fetcher(repo)
    ls = repo["coreutils"].root / "usr/bin/ls"
    libs = library_closure({ls: "coreutils"}, {"coreutils": repo["coreutils"]}, fetch)
    assert set(libs) == {"libselinux.so.1", "libpcre2-8.so.0", "libc.so.6", "ld-linux-x86-64.so.2"}
    assert libs["libpcre2-8.so.0"].package == "libpcre2-8-0"
    assert libs["libpcre2-8.so.0"].path.name.startswith("libpcre2-8.so.0.")  # the real file
    fetched = [n for call in fetch.calls for n in call]
    assert "libgcc-s1" not in fetched  # libc6's dependencies were never needed
    assert fetch.calls[0] == ["libc6", "libselinux1", "unrelated"]


def test_extra_sonames_are_resolved_too(repo: dict[str, Unpacked]) -> None:
    (repo["libgcc-s1"].root / "lib/x86_64-linux-gnu").mkdir(parents=True)
    shutil.copyfile(HOST_LIBS / "libc.so.6", repo["libgcc-s1"].root / "lib/x86_64-linux-gnu/libgcc_s.so.1")
    ls = repo["coreutils"].root / "usr/bin/ls"
    libs = library_closure({ls: "coreutils"}, {"coreutils": repo["coreutils"]}, Fetcher(repo),
                           extra={"libgcc_s.so.1": "libc6"})
    assert libs["libgcc_s.so.1"].package == "libgcc-s1"


def test_a_soname_no_package_provides_is_named(repo: dict[str, Unpacked]) -> None:
    del repo["libpcre2-8-0"]
    ls = repo["coreutils"].root / "usr/bin/ls"
    with pytest.raises(ImageError, match=r"libpcre2-8\.so\.0 \(needed by libselinux1\)"):
        library_closure({ls: "coreutils"}, {"coreutils": repo["coreutils"]}, Fetcher(repo))


def test_absolute_symlinks_resolve_inside_the_package(repo: dict[str, Unpacked]) -> None:
    root = repo["libc6"].root
    assert resolve_in_root(root, root / "lib64/ld-linux-x86-64.so.2") == root / "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
