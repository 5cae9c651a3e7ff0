"""The fault registry, its kernel parameters, and what an image without the module says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from soak.arch import ARCHES
from soak.errors import ImageError
from soak.image import faultbuild
from soak.image.apt import Apt, Package
from soak.image.faultbuild import Archives
from soak.image.faults import FAULTS, MODULE, USER, fault_kernel_args
from soak.image.model import GuestImage

# Lines as the 6.1 cloud kernel printed them under TCG (tests/agent/test_qemu_faults.py).
SEEN = {
    "panic": "[    3.667127] Kernel panic - not syncing: soak-faultinject: requested panic",
    "oops": "[    3.970062] BUG: kernel NULL pointer dereference, address: 0000000000000000",
    "bug": "[    4.304173] kernel BUG at soak-faultmod/faultinject.c:48!",
    "warn": "[    5.480416] WARNING: CPU: 0 PID: 108 at soak-faultmod/faultinject.c:53 do_warn+0x11/0x20 [faultinject]",
    "gpf": "[    4.247624] general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI",
    "softlockup": "[   16.793339] watchdog: BUG: soft lockup - CPU#0 stuck for 13s! [sh:109]",
    "hardlockup": "[   12.245872] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
    "rcustall": "[   12.245872] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
    "hung": "[   21.243856] INFO: task sh:108 blocked for more than 10 seconds.",
    "uaf": "[    8.963612] BUG kmalloc-128 (Tainted: G           OE     ): Poison overwritten",
    "doublefree": "[    6.822920] BUG kmalloc-128 (Tainted: G           OE     ): Object already free",
    "listcorrupt": "[    5.364798] list_add corruption. next->prev should be prev (ffffd24140413be8), but was dead000000000122. (next=ffffd24140413be8).",
    "stackoverflow": "[    4.398150] BUG: TASK stack guard page was hit at (____ptrval____) (stack is (____ptrval____)..(____ptrval____))",
    "oom": "[    4.735495] Out of memory: Killed process 106 (dd) total-vm:214480kB, anon-rss:161720kB, file-rss:4kB",
    "sysrq-crash": "[    3.661392] Kernel panic - not syncing: sysrq triggered crash",
}


def test_every_fault_has_a_seen_line_its_pattern_matches() -> None:
    assert set(SEEN) == set(FAULTS)
    for name, spec in FAULTS.items():
        assert re.search(spec.expect, SEEN[name]), name
        assert spec.source in (MODULE, USER)


def test_kernel_args_are_merged_once_in_order() -> None:
    assert fault_kernel_args([]) == []
    assert fault_kernel_args(["oops", "panic"]) == []
    assert fault_kernel_args(["softlockup", "hardlockup", "uaf", "doublefree"]) == [
        "watchdog_thresh=5", "rcupdate.rcu_cpu_stall_timeout=10", "slub_debug=FZPU"]
    assert fault_kernel_args(["hung"]) == ["soak_hung=10"]
    with pytest.raises(ValueError, match="unknown fault 'nosuch'; known: panic"):
        fault_kernel_args(["nosuch"])


def _image(features: set[str], notes: tuple[str, ...] = ()) -> GuestImage:
    return GuestImage(Path("k"), Path("i"), "6.1.0-test", "key", frozenset(features), notes=notes)


def test_an_image_without_the_module_says_why() -> None:
    image = _image({"agent"}, ("faultinject: gcc-12, make not found ...: apt-get install gcc-12 make",))
    assert image.supports_fault("oom") and image.supports_fault("sysrq-crash")
    assert not image.supports_fault("oops")
    assert image.fault_kernel_args(["oom"]) == []
    with pytest.raises(ImageError, match="apt-get install gcc-12 make"):
        image.fault_kernel_args(["oom", "softlockup"])
    assert _image({"agent", "faultinject"}).fault_kernel_args(["softlockup"]) == ["watchdog_thresh=5"]


def test_a_users_own_image_can_provoke_nothing() -> None:
    with pytest.raises(ImageError, match="no soak agent"):
        _image(set()).fault_kernel_args(["oom"])


HEADERS = {
    "linux-headers-6.1.0-test": {"Package": "linux-headers-6.1.0-test", "Version": "6.1.1-1", "Architecture": "amd64",
                                 "Depends": "linux-headers-6.1.0-common (= 6.1.1-1), linux-kbuild-6.1 (>= 6.1.1-1), "
                                            "linux-compiler-gcc-12-x86"},
    "linux-headers-6.1.0-common": {"Package": "linux-headers-6.1.0-common", "Version": "6.1.1-1", "Architecture": "all"},
    "linux-kbuild-6.1": {"Package": "linux-kbuild-6.1", "Version": "6.1.1-1", "Architecture": "amd64"},
}


KERNEL = Package("linux-image-6.1.0-test", "6.1.1-1")
HOST = Apt("amd64")
ARM64 = Apt("arm64", ("-o", "APT::Architecture=arm64"))


def _known(self: Apt, names: list[str], strict: bool = True) -> dict[str, dict[str, str]]:
    return {n: HEADERS[n] for n in names}


def _build(tmp_path: Path, arch: str = "x86_64", target: Apt = HOST) -> faultbuild.FaultModuleBuild:
    return faultbuild.build_fault_module(ARCHES[arch], Archives(target, HOST), KERNEL, "6.1.0-test",
                                         tmp_path / "debs", tmp_path / "w", lambda _: None)


def test_without_a_compiler_the_image_gets_a_note_and_no_download(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    monkeypatch.setattr(Apt, "candidates", _known)
    monkeypatch.setattr(faultbuild.shutil, "which", lambda tool: None if tool == "gcc-12" else f"/usr/bin/{tool}")
    monkeypatch.setattr(Apt, "download", lambda *a: pytest.fail("must not download headers it cannot use"))
    result = _build(tmp_path)
    assert result.module is None and result.compiler == "gcc-12"
    assert result.note is not None and "gcc-12 not found" in result.note and "apt-get install gcc-12 make" in result.note


def test_without_a_cross_compiler_the_note_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(Apt, "candidates", _known)
    monkeypatch.setattr(faultbuild.shutil, "which", lambda tool: None if "aarch64" in tool else f"/usr/bin/{tool}")
    result = _build(tmp_path, "aarch64", ARM64)
    assert result.module is None and result.note is not None
    assert "aarch64-linux-gnu-gcc-12, aarch64-linux-gnu-strip not found" in result.note
    assert "apt-get install gcc-12-aarch64-linux-gnu make" in result.note


def test_headers_apt_does_not_have_are_a_note(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_headers(self: Apt, names: list[str], strict: bool = True) -> dict[str, dict[str, str]]:
        raise ImageError("apt knows no package linux-headers-6.1.0-test: run `apt-get update`")

    monkeypatch.setattr(Apt, "candidates", no_headers)
    result = _build(tmp_path)
    assert result.module is None and result.note is not None and "no usable headers" in result.note


def test_a_failing_compile_is_a_note(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(Apt, "candidates", _known)
    monkeypatch.setattr(faultbuild.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(Apt, "download", lambda self, pkgs, d: {p: d / p.filename for p in pkgs})

    def broken(*args: object) -> None:
        raise ImageError("`make -C ...` exited 2: faultinject.c:1: error")

    monkeypatch.setattr(faultbuild, "compile_module", broken)
    result = _build(tmp_path)
    assert result.module is None and result.note is not None and "did not build" in result.note
    assert [p.name for p in result.packages] == ["linux-headers-6.1.0-test", "linux-headers-6.1.0-common",
                                                 "linux-kbuild-6.1"]


def test_kbuild_tools_come_from_the_build_hosts_archive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Foreign headers, but kbuild's programs run here: they must be the host's (Multi-Arch: foreign)."""
    asked: dict[str, list[str]] = {}

    def candidates(self: Apt, names: list[str], strict: bool = True) -> dict[str, dict[str, str]]:
        asked.setdefault(self.arch, []).extend(names)
        return {n: HEADERS[n] for n in names}

    downloaded: dict[str, list[str]] = {}

    def download(self: Apt, pkgs: list[Package], d: Path) -> dict[Package, Path]:
        downloaded.setdefault(self.arch, []).extend(p.name for p in pkgs)
        return {p: d / p.filename for p in pkgs}

    monkeypatch.setattr(Apt, "candidates", candidates)
    monkeypatch.setattr(Apt, "download", download)
    monkeypatch.setattr(faultbuild.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(faultbuild, "compile_module", lambda *a: None)
    _build(tmp_path, "aarch64", ARM64)
    assert downloaded == {"arm64": ["linux-headers-6.1.0-test", "linux-headers-6.1.0-common"],
                          "amd64": ["linux-kbuild-6.1"]}
    assert "linux-kbuild-6.1" in asked["amd64"] and "linux-kbuild-6.1" not in asked["arm64"]


def test_source_digest_is_stable() -> None:
    assert faultbuild.source_digest() == faultbuild.source_digest()
