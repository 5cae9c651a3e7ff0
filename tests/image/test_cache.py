"""Cache keys, the build lock, atomic publication and the cache-hit path, without apt."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from soak.arch import ARCHES
from soak.errors import ImageError
from soak.image import apt, build, image_from_files
from soak.image.apt import Apt, Package
from soak.image.build import Plan, ensure_default_image, make_plan
from soak.image.cache import ImageCache, Resolved, cache_root, image_key
from soak.image.model import INITRD, KERNEL, MANIFEST

KERNEL_PKG = Package("linux-image-6.1.0-56-cloud-amd64", "6.1.192-2")
ROOTS = (Package("busybox-static", "1:1.35.0-4"), Package("stress-ng", "0.15.06-2"))
CLOSURE = (Package("libc6", "2.36-9"), Package("libssl3", "3.0.22-1"))


def _plan(**changes: object) -> Plan:
    fields: dict[str, object] = {"arch": ARCHES["x86_64"], "kernel": KERNEL_PKG, "roots": ROOTS, "closure": CLOSURE, "compiler": "gcc-12",
                                 "script": b"#!/bin/sh\n"}
    fields.update(changes)
    return Plan(**fields)  # type: ignore[arg-type]


def _fake_image(cache: ImageCache, key: str, built_at: float = 0.0, debs: tuple[str, ...] = (),
                arch: str = "x86_64") -> Path:
    return _write_image(cache.images / key, key, built_at, debs, arch)


def _write_image(d: Path, key: str, built_at: float = 0.0, debs: tuple[str, ...] = (), arch: str = "x86_64") -> Path:
    d.mkdir(parents=True)
    (d / KERNEL).write_bytes(b"k")
    (d / INITRD).write_bytes(b"i")
    (d / MANIFEST).write_text(json.dumps({
        "key": key, "arch": arch, "kernel_release": "6.1.0-test", "features": ["agent"], "built_at": built_at,
        "debs": list(debs),
    }))
    return d


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SOAK_CACHE_DIR", raising=False)
    assert cache_root() == tmp_path / "xdg/soak"
    monkeypatch.setenv("SOAK_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"


def test_key_changes_with_every_input_and_nothing_else() -> None:
    base = _plan().key()
    assert _plan().key() == base
    assert _plan(roots=tuple(reversed(ROOTS))).key() == base  # order is not an input
    assert _plan(script=b"#!/bin/sh\n# changed\n").key() != base
    assert _plan(kernel=Package(KERNEL_PKG.name, "6.1.192-3")).key() != base
    assert _plan(closure=(CLOSURE[0], Package("libssl3", "3.0.23-1"))).key() != base
    assert _plan(closure=CLOSURE[:1]).key() != base
    assert _plan(compiler="gcc-13").key() != base
    assert _plan(arch=ARCHES["aarch64"]).key() != base
    assert _plan(kernel=Package(KERNEL_PKG.name, KERNEL_PKG.version, "arm64")).key() != base
    assert len(base) == 20 and image_key({"a": 1}) == image_key({"a": 1})


def test_key_changes_when_the_fault_module_toolchain_appears(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "missing_tools", lambda arch, cc: ["gcc-12"])
    without = _plan().key()
    monkeypatch.setattr(build, "missing_tools", lambda arch, cc: [])
    assert _plan().key() != without


def test_plan_resolves_the_kernel_metapackage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def candidates(self: Apt, names: list[str], *, strict: bool = True) -> dict[str, dict[str, str]]:
        calls.append(list(names))
        recs = {
            "linux-image-cloud-amd64": {"Package": "linux-image-cloud-amd64", "Version": "6.1.192-2",
                                        "Depends": "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)"},
            "busybox-static": {"Package": "busybox-static", "Version": "1:1.35.0-4", "Architecture": "amd64"},
            "stress-ng": {"Package": "stress-ng", "Version": "0.15.06-2", "Architecture": "amd64"},
            "libc6": {"Package": "libc6", "Version": "2.36-9", "Architecture": "amd64"},
        }
        return {n: recs[n] for n in names}

    monkeypatch.setattr(Apt, "candidates", candidates)
    cache = ImageCache(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    cache.write_resolved("x86_64", Resolved(("libc6",), "gcc-12"))
    cache.write_resolved("aarch64", Resolved(("libc6", "libfoo"), "gcc-12"))
    plan = make_plan(cache, ARCHES["x86_64"], Apt("amd64"))
    assert plan.kernel == KERNEL_PKG
    assert plan.closure == (Package("libc6", "2.36-9"),) and plan.compiler == "gcc-12"
    assert len(calls) == 1  # one apt-cache call per lookup


def test_lock_excludes_a_second_builder(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)
    said: list[str] = []
    with cache.lock(said.append):
        started = time.monotonic()
        with pytest.raises(ImageError, match="held"), ImageCache(tmp_path).lock(said.append, timeout=0.3):
            pass
        assert time.monotonic() - started >= 0.3
    assert said and f"pid {os.getpid()}" in said[0]
    with cache.lock(said.append):  # released on exit
        pass


def test_a_failed_build_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken_download(self: Apt, packages: object, debs: Path) -> dict[Package, Path]:
        raise ImageError("network down")

    monkeypatch.setattr(Apt, "download", broken_download)
    cache = ImageCache(tmp_path)
    host = Apt("amd64")
    with pytest.raises(ImageError, match="network down"):
        build._build(_plan(), cache, build.Archives(host, host), lambda _: None)
    assert list(cache.images.iterdir()) == []


def test_stale_builds_are_removed_under_the_lock(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)
    stale = cache.new_build_dir()
    (stale / "half-written").write_bytes(b"x")
    with cache.lock(lambda _: None):
        assert not stale.exists()


def test_publish_is_a_rename_and_replaces(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)
    _fake_image(cache, "k1")
    fresh = cache.new_build_dir()
    _write_image(fresh / "out", "k1")
    image = cache.publish(fresh / "out", "k1")
    assert image.kernel == cache.images / "k1" / KERNEL
    assert sorted(p.name for p in cache.images.iterdir()) == [fresh.name, "k1"]


def test_prune_keeps_the_newest_of_each_arch_and_their_debs(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)
    for i in range(4):
        _fake_image(cache, f"k{i}", built_at=float(i), debs=(f"p{i}.deb",))
    _fake_image(cache, "arm", built_at=0.0, debs=("arm.deb",), arch="aarch64")
    cache.debs.mkdir()
    for name in ("p0", "p1", "p2", "p3", "arm"):
        (cache.debs / f"{name}.deb").write_bytes(b"")
    cache.prune(keep=2)
    assert sorted(p.name for p in cache.images.iterdir()) == ["arm", "k2", "k3"]
    assert sorted(p.name for p in cache.debs.iterdir()) == ["arm.deb", "p2.deb", "p3.deb"]
    assert {im.arch for im, _ in cache.list()} == {"x86_64", "aarch64"}


def test_a_cached_image_is_returned_without_building(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    plan = _plan()
    monkeypatch.setattr(build, "_check_host", lambda: None)
    monkeypatch.setattr(build, "_host_debian_arch", lambda: "amd64")
    monkeypatch.setattr(build, "make_plan", lambda cache, arch, archive: plan)
    monkeypatch.setattr(build, "_build", lambda *a: pytest.fail("must not build"))
    _fake_image(ImageCache(tmp_path), plan.key())
    image = ensure_default_image(tmp_path)
    assert image.key == plan.key() and image.kernel_release == "6.1.0-test"


def test_without_apt_the_error_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(apt.shutil, "which", lambda name: None)
    with pytest.raises(ImageError, match=r"apt-get.*not found.*image\.kernel and image\.initrd"):
        ensure_default_image(tmp_path)


def test_user_image_files_are_checked(tmp_path: Path) -> None:
    kernel, initrd = tmp_path / "bzImage", tmp_path / "initrd"
    kernel.write_bytes(b"\0" * 1024)
    with pytest.raises(ImageError, match=r"image\.initrd"):
        image_from_files(kernel, initrd)
    initrd.write_bytes(b"x")
    image = image_from_files(kernel, initrd)
    assert image.features == frozenset() and image.kernel_release is None
    assert image.key.startswith("user-") and image_from_files(kernel, initrd).key == image.key
