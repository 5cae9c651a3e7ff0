"""Build (or find in the cache) soak's default guest image.

The image is Debian's cloud kernel, busybox-static, stress-ng with exactly the
shared libraries it loads, the pvpanic modules and soak's agent as ``/init``.
Its key hashes every input: exact package versions (including the library
packages the last build needed, re-resolved with apt-cache on every lookup so
a security update of a library rebuilds), the agent script, the builder
version and its options. A lookup costs two apt-cache calls and no download.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soak.errors import ImageError
from soak.image import apt
from soak.image.apt import Package
from soak.image.assemble import Layout, write_initramfs
from soak.image.cache import ImageCache, Resolved, cache_root, image_key
from soak.image.closure import Unpacked, library_closure
from soak.image.elf import read_deps
from soak.image.faultbuild import build_fault_module, missing_tools, source_digest
from soak.image.kernel import modules_in_load_order
from soak.image.model import (
    FEATURE_AGENT,
    FEATURE_FAULTINJECT,
    FEATURE_PVPANIC,
    FEATURE_STRESS_NG,
    INITRD,
    KERNEL,
    MANIFEST,
    GuestImage,
)
from soak.image.tools import run_tool

BUILDER_VERSION = 3
KERNEL_META = "linux-image-cloud-amd64"
BUSYBOX = "busybox-static"
STRESS_NG = "stress-ng"
MODULES = ("pvpanic", "pvpanic_mmio", "pvpanic_pci")
DLOPENED = {"libgcc_s.so.1": "libc6"}
"""Sonames loaded with dlopen, not DT_NEEDED: glibc needs libgcc_s for pthread_cancel/exit."""
TOOL_TIMEOUT = 30.0

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def init_script() -> bytes:
    """The agent, shipped as package data."""
    return importlib.resources.files("soak.image").joinpath("guest/init.sh").read_bytes()


@dataclass(frozen=True, slots=True)
class Plan:
    """What the default image would be built from right now."""

    kernel: Package
    roots: tuple[Package, ...]
    closure: tuple[Package, ...]
    """Library packages; from the last build, so possibly stale until the next one."""
    compiler: str | None
    """The kernel's compiler, as the last build found it (None before the first)."""
    script: bytes

    def inputs(self) -> dict[str, Any]:
        return {
            "builder": BUILDER_VERSION,
            "kernel": str(self.kernel),
            "roots": sorted(map(str, self.roots)),
            "closure": sorted(map(str, self.closure)),
            "init": image_key({"init.sh": self.script.decode(errors="replace")}),
            "options": {"modules": list(MODULES), "dlopen": sorted(DLOPENED)},
            # Installing the compiler later must rebuild the image with the module.
            "faultinject": {"source": source_digest(), "compiler": self.compiler,
                            "tools": not missing_tools(self.compiler)},
        }

    def key(self) -> str:
        return image_key(self.inputs())


def _kernel_package(meta: dict[str, str]) -> Package:
    """The concrete kernel package a metapackage's candidate depends on, with its pinned version."""
    for clause in meta.get("Depends", "").split(","):
        name, _, rest = clause.strip().partition(" ")
        if name.startswith("linux-image-") and rest.startswith("(= "):
            return Package(name, rest[3:].rstrip(")").strip(), meta.get("Architecture", "amd64"))
    raise ImageError(f"{KERNEL_META} {meta.get('Version')} names no linux-image package with a pinned version")


def make_plan(cache: ImageCache) -> Plan:
    """Resolve today's candidate versions with apt-cache (no download).

    One apt-cache call in the usual case: each call re-reads apt's lists (about
    a second where apt keeps no binary cache, as in containers).
    """
    roots = [KERNEL_META, BUSYBOX, STRESS_NG]
    resolved = cache.read_resolved()
    names = list(resolved.closure)
    try:
        records = apt.candidates([*roots, *names])
        closure = {n: records[n] for n in names}
    except ImageError:  # a library package vanished from apt: resolve leniently
        records = apt.candidates(roots)
        closure = apt.candidates(names, strict=False)
    return Plan(
        kernel=_kernel_package(records[KERNEL_META]),
        roots=(apt.package(records[BUSYBOX]), apt.package(records[STRESS_NG])),
        closure=tuple(sorted(apt.package(r) for r in closure.values())),
        compiler=resolved.compiler,
        script=init_script(),
    )


class _Unpacker:
    """Downloads packages into the shared deb cache and unpacks each under its own root."""

    def __init__(self, debs: Path, dest: Path, progress: Progress) -> None:
        self.debs, self.dest, self.progress = debs, dest, progress
        self.unpacked: dict[str, tuple[Package, Unpacked]] = {}

    def packages(self, wanted: list[Package]) -> dict[str, Unpacked]:
        new = [p for p in wanted if p.name not in self.unpacked]
        if new:
            self.progress(f"fetching {', '.join(p.name for p in new)}")
        for pkg, deb in apt.download(new, self.debs).items():
            root = self.dest / pkg.name
            apt.extract(deb, root)
            depends = apt.parse_depends(apt.control(deb).get("Depends", ""))
            self.unpacked[pkg.name] = (pkg, Unpacked(pkg.name, pkg.version, root, tuple(depends)))
        return {p.name: self.unpacked[p.name][1] for p in wanted}

    def names(self, names: list[str]) -> dict[str, Unpacked]:
        records = apt.candidates(names, strict=False)
        return self.packages([apt.package(r) for r in records.values()])


def _busybox_applets(busybox: Path) -> tuple[str, ...]:
    out = run_tool([str(busybox), "--list-full"], timeout=TOOL_TIMEOUT)
    return tuple(a for a in out.split() if a and a != "bin/busybox")


def _build(plan: Plan, cache: ImageCache, progress: Progress) -> GuestImage:
    started = time.monotonic()
    tmp = cache.new_build_dir()
    try:
        out = tmp / "out"
        out.mkdir()
        unpacker = _Unpacker(cache.debs, tmp / "pkgs", progress)
        pkgs = unpacker.packages([plan.kernel, *plan.roots])
        release = plan.kernel.name.removeprefix("linux-image-")
        kroot = pkgs[plan.kernel.name].root
        vmlinuz = kroot / "boot" / f"vmlinuz-{release}"
        if not vmlinuz.is_file():
            raise ImageError(f"{plan.kernel} has no /boot/vmlinuz-{release}")
        modules = modules_in_load_order(kroot / "lib/modules" / release, list(MODULES), release)
        faultmod = build_fault_module(plan.kernel, release, cache.debs, tmp / "faultmod", progress)

        stress_ng = pkgs[STRESS_NG].root / "usr/bin/stress-ng"
        progress("resolving stress-ng's shared libraries")
        libs = library_closure(
            {stress_ng: STRESS_NG}, {STRESS_NG: pkgs[STRESS_NG]}, unpacker.names, extra=DLOPENED
        )
        root_names = {plan.kernel.name, *(p.name for p in plan.roots)}
        closure = tuple(sorted({unpacker.unpacked[lib.package][0] for lib in libs.values()} - set(plan.roots)))
        plan = dataclasses.replace(plan, closure=closure, compiler=faultmod.compiler)
        key = plan.key()
        features = frozenset({FEATURE_AGENT, FEATURE_STRESS_NG, FEATURE_PVPANIC}
                             | ({FEATURE_FAULTINJECT} if faultmod.module else set()))
        notes = [faultmod.note] if faultmod.note else []
        for note in notes:
            progress(note)

        progress(f"writing initramfs for {release} ({len(libs)} libraries, {len(modules)} modules)")
        layout = Layout(
            init_script=plan.script,
            busybox=pkgs[BUSYBOX].root / "bin/busybox",
            applets=_busybox_applets(pkgs[BUSYBOX].root / "bin/busybox"),
            binaries={"usr/bin/stress-ng": stress_ng},
            libraries=libs.values(),
            interpreter=read_deps(stress_ng).interp,
            modules=modules,
            extra_modules=[faultmod.module] if faultmod.module else [],
            image_info={"key": key, "features": ",".join(sorted(features)), "release": release},
        )
        write_initramfs(layout, out / INITRD)
        shutil.copyfile(vmlinuz, out / KERNEL)
        all_pkgs = [plan.kernel, *plan.roots, *closure, *faultmod.packages]
        manifest = {
            "key": key,
            "kernel_release": release,
            "features": sorted(features),
            "packages": [str(p) for p in all_pkgs],
            "notes": notes,
            "inputs": plan.inputs(),
            "debs": sorted({p.filename for p, _ in unpacker.unpacked.values()} | set(faultmod.debs)),
            "built_at": time.time(),
            "build_seconds": round(time.monotonic() - started, 1),
            "kernel_bytes": (out / KERNEL).stat().st_size,
            "initrd_bytes": (out / INITRD).stat().st_size,
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        cache.write_resolved(Resolved(tuple(p.name for p in closure if p.name not in root_names),
                                      faultmod.compiler))
        return cache.publish(out, key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_host() -> None:
    if platform.machine() not in ("x86_64", "amd64"):
        raise ImageError(
            f"the default guest image is x86_64 and built on x86_64 hosts, not {platform.machine()}: "
            "set image.kernel and image.initrd in the profile"
        )
    apt.check_tools()


def ensure_default_image(
    cache_dir: Path | None = None, *, force: bool = False, progress: Progress | None = None
) -> GuestImage:
    """The default guest image: from the cache when its inputs are unchanged, else built now.

    Synchronous (call it in a thread from async code); a first build downloads
    ~35 MB and takes about a minute.

    :raise ImageError: one line saying what to install or how to supply an image.
    """
    say = progress or _quiet
    _check_host()
    cache = ImageCache(cache_root(cache_dir))
    if not force and (image := cache.get(make_plan(cache).key())):
        return image
    with cache.lock(say):
        plan = make_plan(cache)  # another soak may have built while we waited
        if not force and (image := cache.get(plan.key())):
            return image
        say(f"building the guest image in {cache.root}")
        image = _build(plan, cache, say)
        cache.prune()
    say(f"built image {image.key}")
    return image
