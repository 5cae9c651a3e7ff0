"""Build soak's fault-injection module (``faultmod/``) for the default guest kernel.

Debian's header packages for the exact kernel are downloaded and unpacked into
a scratch tree (not installed), the one absolute include in their Makefile is
pointed into that tree, and kbuild compiles the module with the compiler the
kernel was built with (``gcc-12`` on bookworm), for another architecture with
Debian's cross compiler of that version (``aarch64-linux-gnu-gcc-12``). The
header packages are the guest architecture's; kbuild's own tools
(``linux-kbuild-*``, Multi-Arch: foreign) are the build host's, since they run
here. Without the compiler or ``make`` the image is still built, only without
the module: the missing feature and the command that fixes it are recorded as
a note.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from soak.arch import Arch
from soak.errors import ImageError
from soak.image import apt
from soak.image.apt import Apt, Package
from soak.image.kernel import Module, modules_in_load_order
from soak.image.tools import run_tool

MODULE = "faultinject"
SOURCES = ("faultinject.c", "Makefile")
MAKE_TIMEOUT = 300.0
STRIP_TIMEOUT = 60.0
_COMPILER_PKG = re.compile(r"^linux-compiler-(gcc-\d+)-")


def source_digest() -> str:
    """A hash of the module's sources, part of the image key."""
    h = hashlib.sha256()
    for name in SOURCES:
        h.update(name.encode() + b"\0" + _source(name) + b"\0")
    return h.hexdigest()[:16]


def _source(name: str) -> bytes:
    return importlib.resources.files("soak.image").joinpath(f"faultmod/{name}").read_bytes()


def missing_tools(arch: Arch, compiler: str | None) -> list[str]:
    """The build tools this host lacks for ``arch`` (``compiler`` None means: not known yet, assume gcc)."""
    tc = arch.toolchain
    return [t for t in ("make", tc.compiler(compiler), tc.strip()) if shutil.which(t) is None]


@dataclass(frozen=True, slots=True)
class FaultModuleBuild:
    """The outcome: a module, or the reason there is none."""

    module: Module | None
    note: str | None
    compiler: str | None
    packages: tuple[Package, ...] = ()
    debs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Archives:
    """Where the packages come from: the guest architecture's archive, and the build host's."""

    target: Apt
    host: Apt


def _header_packages(archives: Archives, release: str, version: str) -> tuple[list[tuple[Apt, Package]], str | None]:
    """The header packages of ``release`` pinned to the kernel's version (each with its archive), and its compiler."""
    name = f"linux-headers-{release}"
    record = archives.target.candidates([name])[name]
    if record["Version"] != version:
        raise ImageError(f"{name} is at {record['Version']}, the kernel at {version}")
    compiler = None
    headers, kbuild = [name], []
    for dep in apt.parse_depends(record.get("Depends", "")):
        if m := _COMPILER_PKG.match(dep):
            compiler = m.group(1)
        elif re.fullmatch(r"gcc-\d+", dep):  # arm64's headers name the compiler itself
            compiler = compiler or dep
        elif dep.startswith("linux-headers-"):
            headers.append(dep)
        elif dep.startswith("linux-kbuild-"):
            kbuild.append(dep)
    found = archives.target.candidates(headers)
    tools = archives.host.candidates(kbuild)
    return ([(archives.target, archives.target.package(found[n])) for n in headers]
            + [(archives.host, archives.host.package(tools[n])) for n in kbuild]), compiler


def compile_module(header_debs: list[Path], release: str, work: Path, arch: Arch, compiler: str | None) -> Module:
    """Unpack the header debs under ``work`` and build the module there.

    :raise ImageError: the headers are incomplete or the build fails.
    """
    root = work / "headers"
    for deb in header_debs:
        apt.extract(deb, root)
    kdir = root / "usr/src" / f"linux-headers-{release}"
    makefile = kdir / "Makefile"
    if not makefile.is_file():
        raise ImageError(f"the header packages have no {makefile.relative_to(root)}")
    # Debian's per-flavour Makefile includes the common one by absolute path.
    makefile.write_text(makefile.read_text().replace("include /usr/src/", f"include {root}/usr/src/"))
    src = work / "faultmod"
    src.mkdir(parents=True)
    for name in SOURCES:
        (src / name).write_bytes(_source(name))
    tc = arch.toolchain
    run_tool(["make", "-C", str(kdir), f"M={src}", f"CC={tc.compiler(compiler)}", *tc.make_args, "modules"],
             cwd=src, timeout=MAKE_TIMEOUT)
    # The build id hashes debug paths of this scratch tree: drop it so equal inputs give equal bytes.
    run_tool([tc.strip(), "--strip-debug", "--remove-section=.note.gnu.build-id", f"{MODULE}.ko"],
             cwd=src, timeout=STRIP_TIMEOUT)
    return modules_in_load_order(src, [MODULE], release)[0]


def build_fault_module(arch: Arch, archives: Archives, kernel: Package, release: str, debs_dir: Path, work: Path,
                       progress: Callable[[str], None]) -> FaultModuleBuild:
    """Build the module for ``kernel``, or say why not; never raises for a missing toolchain."""
    if arch.toolchain.unavailable:
        return FaultModuleBuild(None, f"faultinject: {arch.toolchain.unavailable}, so kernel faults are "
                                      f"unavailable on {arch.name}", None)
    try:
        packages, compiler = _header_packages(archives, release, kernel.version)
    except ImageError as exc:
        return FaultModuleBuild(None, f"faultinject: no usable headers for {release}, so kernel faults "
                                      f"are unavailable: {exc}", None)
    missing = missing_tools(arch, compiler)
    if missing:
        note = (f"faultinject: {', '.join(missing)} not found, so the {arch.name} image has no fault module "
                f"(kernel faults are unavailable): {arch.toolchain.install_hint(compiler)}")
        return FaultModuleBuild(None, note, compiler)
    names = ", ".join(p.name for _, p in packages)
    progress(f"building the {MODULE} module with {arch.toolchain.compiler(compiler)} and {names}")
    debs: dict[Package, Path] = {}
    for archive in {id(a): a for a, _ in packages}.values():
        debs.update(archive.download([p for a, p in packages if a is archive], debs_dir))
    pkgs = tuple(p for _, p in packages)
    filenames = tuple(p.filename for p in pkgs)
    try:
        module = compile_module([debs[p] for p in pkgs], release, work, arch, compiler)
    except ImageError as exc:
        note = f"faultinject: the module did not build, so kernel faults are unavailable: {exc}"
        return FaultModuleBuild(None, note, compiler, pkgs, filenames)
    return FaultModuleBuild(module, None, compiler, pkgs, filenames)


def module_problem(arch: Arch, compiler: str | None) -> str | None:
    """Why an image of ``arch`` built on this host would lack the module, or None if it would have it.

    ``compiler`` is the kernel's (from the last build, `soak.image.cache.Resolved`); None means no
    build has found it out yet, and the build itself will say.
    """
    if arch.toolchain.unavailable:
        return arch.toolchain.unavailable
    if compiler is None:
        return None
    if missing := missing_tools(arch, compiler):
        return f"{', '.join(missing)} not found ({arch.toolchain.install_hint(compiler)})"
    return None
