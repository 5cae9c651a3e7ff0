"""Build (or find in the cache) soak's default guest image for one architecture.

The image is Debian's kernel for the architecture (`soak.arch`), busybox-static,
stress-ng with exactly the shared libraries it loads, the modules its panic
device and agent channel need, soak's fault module where it can be built, and
soak's agent as ``/init``. Its key hashes every input: the architecture,
exact package versions (including the library packages the last build
needed, re-resolved with apt-cache on every lookup so a security update of a
library rebuilds), the agent script, the builder version and its options. A
lookup costs one apt-cache call and no download. Packages of architectures
the host's apt does not carry come through soak's private apt state
(`soak.image.aptstate`). Firmware is not an input: the same kernel and initrd
boot through any firmware of the architecture.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import json
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soak.arch import DEFAULT_ARCH, Arch
from soak.arch import arch as arch_named
from soak.errors import ImageError
from soak.image import apt
from soak.image.apt import Apt, Package
from soak.image.aptstate import MAX_AGE, AptState
from soak.image.assemble import Layout, write_initramfs
from soak.image.cache import ImageCache, Resolved, cache_root, image_key
from soak.image.closure import Unpacked, library_closure
from soak.image.elf import read_deps
from soak.image.faultbuild import Archives, build_fault_module, missing_tools, source_digest
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

BUILDER_VERSION = 5
BUSYBOX = "busybox-static"
STRESS_NG = "stress-ng"
DLOPENED = {"libgcc_s.so.1": "libc6"}
"""Sonames loaded with dlopen, not DT_NEEDED: glibc needs libgcc_s for pthread_cancel/exit."""

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


GUEST_SCRIPTS = {"lib/soak/devload.sh": "guest/devload.sh"}
"""The agent's helper scripts: destination in the image -> package data."""


def init_script() -> bytes:
    """The agent, shipped as package data."""
    return importlib.resources.files("soak.image").joinpath("guest/init.sh").read_bytes()


def guest_scripts() -> dict[str, bytes]:
    return {dest: importlib.resources.files("soak.image").joinpath(src).read_bytes()
            for dest, src in GUEST_SCRIPTS.items()}


@dataclass(frozen=True, slots=True)
class Plan:
    """What the default image would be built from right now."""

    arch: Arch
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
            "arch": {"name": self.arch.name, "debian": self.arch.debian, "suite": self.arch.suite,
                     "agent": self.arch.agent.guest},
            "kernel": _versioned(self.kernel),
            "roots": sorted(map(_versioned, self.roots)),
            "closure": sorted(map(_versioned, self.closure)),
            "init": image_key({"init.sh": self.script.decode(errors="replace"),
                               **{k: v.decode(errors="replace") for k, v in guest_scripts().items()}}),
            "options": {"modules": list(boot_modules(self.arch)), "dlopen": sorted(DLOPENED),
                        "devices": {k: list(v) for k, v in sorted(self.arch.device_modules.items())}},
            # Installing the compiler later must rebuild the image with the module.
            "faultinject": {"source": source_digest(), "compiler": self.compiler,
                            "tools": not missing_tools(self.arch, self.compiler)},
        }

    def key(self) -> str:
        return image_key(self.inputs())


def _versioned(p: Package) -> str:
    return f"{p}:{p.arch}"


def boot_modules(arch: Arch) -> tuple[str, ...]:
    """The modules /init loads at boot: the panic device's and the agent channel's drivers."""
    return (*arch.panic.modules, *arch.agent.modules)


def _kernel_package(meta: dict[str, str], arch: Arch) -> Package:
    """The concrete kernel package a metapackage's candidate depends on, with its pinned version."""
    for clause in meta.get("Depends", "").split(","):
        name, _, rest = clause.strip().partition(" ")
        if name.startswith("linux-image-") and rest.startswith("(= "):
            return Package(name, rest[3:].rstrip(")").strip(), meta.get("Architecture", arch.debian))
    raise ImageError(f"{arch.kernel_package} {meta.get('Version')} names no linux-image package with a pinned version")


def make_plan(cache: ImageCache, arch: Arch, archive: Apt) -> Plan:
    """Resolve today's candidate versions with apt-cache (no download).

    One apt-cache call in the usual case: each call re-reads apt's lists (about
    a second where apt keeps no binary cache, as in containers).
    """
    roots = [arch.kernel_package, BUSYBOX, STRESS_NG]
    resolved = cache.read_resolved(arch.name)
    names = list(resolved.closure)
    try:
        records = archive.candidates([*roots, *names])
        closure = {n: records[n] for n in names}
    except ImageError:  # a library package vanished from apt: resolve leniently
        records = archive.candidates(roots)
        closure = archive.candidates(names, strict=False)
    return Plan(
        arch=arch,
        kernel=_kernel_package(records[arch.kernel_package], arch),
        roots=(archive.package(records[BUSYBOX]), archive.package(records[STRESS_NG])),
        closure=tuple(sorted(archive.package(r) for r in closure.values())),
        compiler=resolved.compiler,
        script=init_script(),
    )


class _Unpacker:
    """Downloads packages into the shared deb cache and unpacks each under its own root."""

    def __init__(self, archive: Apt, debs: Path, dest: Path, progress: Progress) -> None:
        self.archive, self.debs, self.dest, self.progress = archive, debs, dest, progress
        self.unpacked: dict[str, tuple[Package, Unpacked]] = {}

    def packages(self, wanted: list[Package]) -> dict[str, Unpacked]:
        new = [p for p in wanted if p.name not in self.unpacked]
        if new:
            self.progress(f"fetching {', '.join(p.name for p in new)}")
        for pkg, deb in self.archive.download(new, self.debs).items():
            root = self.dest / pkg.name
            apt.extract(deb, root)
            depends = apt.parse_depends(apt.control(deb).get("Depends", ""))
            self.unpacked[pkg.name] = (pkg, Unpacked(pkg.name, pkg.version, root, tuple(depends)))
        return {p.name: self.unpacked[p.name][1] for p in wanted}

    def names(self, names: list[str]) -> dict[str, Unpacked]:
        records = self.archive.candidates(names, strict=False)
        return self.packages([self.archive.package(r) for r in records.values()])


def _find(root: Path, candidates: tuple[str, ...], what: str) -> Path:
    """The first of ``candidates`` (paths inside a package) that exists; trixie moved /bin to /usr/bin."""
    for rel in candidates:
        if (root / rel).is_file():
            return root / rel
    raise ImageError(f"{what} is not at {' or '.join(candidates)} in its package")


def _build(plan: Plan, cache: ImageCache, archives: Archives, progress: Progress,
           notes: tuple[str, ...] = ()) -> GuestImage:
    started = time.monotonic()
    arch = plan.arch
    tmp = cache.new_build_dir()
    try:
        out = tmp / "out"
        out.mkdir()
        unpacker = _Unpacker(archives.target, cache.debs, tmp / "pkgs", progress)
        pkgs = unpacker.packages([plan.kernel, *plan.roots])
        release = plan.kernel.name.removeprefix("linux-image-")
        kroot = pkgs[plan.kernel.name].root
        vmlinuz = kroot / arch.kernel_image.format(release=release)
        if not vmlinuz.is_file():
            raise ImageError(f"{plan.kernel} has no /{arch.kernel_image.format(release=release)}")
        moddir = next((d for d in (kroot / "lib/modules" / release, kroot / "usr/lib/modules" / release)
                       if d.is_dir()), kroot / "lib/modules" / release)
        modules = modules_in_load_order(moddir, list(boot_modules(arch)), release)
        device_modules = {device: modules_in_load_order(moddir, list(names), release)
                          for device, names in arch.device_modules.items()}
        faultmod = build_fault_module(arch, archives, plan.kernel, release, cache.debs, tmp / "faultmod", progress)

        stress_ng = pkgs[STRESS_NG].root / "usr/bin/stress-ng"
        busybox = _find(pkgs[BUSYBOX].root, ("bin/busybox", "usr/bin/busybox"), "busybox")
        progress("resolving stress-ng's shared libraries")
        libs = library_closure(
            {stress_ng: STRESS_NG}, {STRESS_NG: pkgs[STRESS_NG]}, unpacker.names, extra=DLOPENED,
            lib_dirs=arch.lib_dirs,
        )
        root_names = {plan.kernel.name, *(p.name for p in plan.roots)}
        closure = tuple(sorted({unpacker.unpacked[lib.package][0] for lib in libs.values()} - set(plan.roots)))
        plan = dataclasses.replace(plan, closure=closure, compiler=faultmod.compiler)
        key = plan.key()
        features = frozenset({FEATURE_AGENT, FEATURE_STRESS_NG}
                             | ({FEATURE_PVPANIC} if arch.panic.device else set())
                             | ({FEATURE_FAULTINJECT} if faultmod.module else set()))
        all_notes = [*notes, *([faultmod.note] if faultmod.note else [])]
        for note in all_notes:
            progress(note)

        progress(f"writing initramfs for {release} ({len(libs)} libraries, {len(modules)} modules)")
        layout = Layout(
            init_script=plan.script,
            busybox=busybox,
            binaries={"usr/bin/stress-ng": stress_ng},
            libraries=libs.values(),
            lib_dir=f"lib/{arch.triplet}",
            interpreter=read_deps(stress_ng).interp,
            modules=modules,
            extra_modules=[faultmod.module] if faultmod.module else [],
            device_modules=device_modules,
            scripts=guest_scripts(),
            image_info={"key": key, "features": ",".join(sorted(features)), "release": release,
                        "arch": arch.name, "channel": arch.agent.guest},
        )
        write_initramfs(layout, out / INITRD)
        shutil.copyfile(vmlinuz, out / KERNEL)
        all_pkgs = [plan.kernel, *plan.roots, *closure, *faultmod.packages]
        manifest = {
            "key": key,
            "arch": arch.name,
            "kernel_release": release,
            "features": sorted(features),
            "packages": [str(p) for p in all_pkgs],
            "notes": all_notes,
            "inputs": plan.inputs(),
            "debs": sorted({p.filename for p, _ in unpacker.unpacked.values()} | set(faultmod.debs)),
            "built_at": time.time(),
            "build_seconds": round(time.monotonic() - started, 1),
            "kernel_bytes": (out / KERNEL).stat().st_size,
            "initrd_bytes": (out / INITRD).stat().st_size,
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        cache.write_resolved(arch.name, Resolved(tuple(p.name for p in closure if p.name not in root_names),
                                                 faultmod.compiler))
        return cache.publish(out, key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


HOST_MACHINES = {"x86_64": "amd64", "amd64": "amd64"}
"""Build hosts soak supports (the cross toolchains in `soak.arch` are amd64's)."""


@functools.cache
def _host_debian_arch() -> str:
    return apt.host_arch()


def _check_host() -> None:
    if platform.machine() not in HOST_MACHINES:
        raise ImageError(
            f"the default guest images are built on x86_64 hosts, not {platform.machine()}: "
            "set image.kernel and image.initrd in the profile"
        )
    apt.check_tools()


def archives_for(arch: Arch, cache: ImageCache, *, refresh: bool, progress: Progress) -> tuple[Archives, list[str]]:
    """The archive of ``arch``'s packages and the host's, and notes about indexes that failed.

    The host's own apt serves its own architecture; any other gets soak's
    private apt state, refreshed when stale (a refresh happens under the
    cache lock, so two soaks never run apt-get update on the same lists).

    :raise ImageError: no package lists for ``arch`` can be had.
    """
    host = Apt(_host_debian_arch())
    if arch.debian == host.arch and arch.suite is None:
        return Archives(host, host), []
    state = AptState(cache.root, arch.debian, arch.suite)
    age = state.age()
    if refresh or age is None or age >= MAX_AGE:
        with cache.lock(progress):
            notes = state.ensure(force=refresh, progress=progress)
    else:
        notes = state.notes()
    return Archives(state.apt, host), notes



def ensure_default_image(
    cache_dir: Path | None = None, *, arch: str = DEFAULT_ARCH, force: bool = False,
    progress: Progress | None = None,
) -> GuestImage:
    """The default guest image of ``arch``: from the cache when its inputs are unchanged, else built now.

    Synchronous (call it in a thread from async code); a first build downloads
    35-110 MB and takes about a minute (see the README for each architecture).

    :raise ImageError: one line saying what to install or how to supply an image.
    :raise ValueError: an unknown architecture.
    """
    say = progress or _quiet
    target = arch_named(arch)
    _check_host()
    cache = ImageCache(cache_root(cache_dir))
    archives, notes = archives_for(target, cache, refresh=force, progress=say)
    if not force and (image := cache.get(make_plan(cache, target, archives.target).key())):
        return image
    with cache.lock(say):
        plan = make_plan(cache, target, archives.target)  # another soak may have built while we waited
        if not force and (image := cache.get(plan.key())):
            return image
        say(f"building the {target.name} guest image in {cache.root}")
        image = _build(plan, cache, archives, say, tuple(notes))
        cache.prune()
    say(f"built image {image.key}")
    return image
