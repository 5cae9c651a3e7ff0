"""Build soak's fault-injection module (``faultmod/``) for the default guest kernel.

Debian's header packages for the exact kernel are downloaded and unpacked into
a scratch tree (not installed), the one absolute include in their Makefile is
pointed into that tree, and kbuild compiles the module with the compiler the
kernel was built with (``gcc-12`` on bookworm). Without that compiler or
``make`` the image is still built, only without the module: the missing
feature and the command that fixes it are recorded as a note.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from soak.errors import ImageError
from soak.image import apt
from soak.image.apt import Package
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


def missing_tools(compiler: str | None) -> list[str]:
    """The build tools this host lacks (``compiler`` None means: not known yet, assume gcc)."""
    return [t for t in ("make", compiler or "gcc", "strip") if shutil.which(t) is None]


def install_hint(compiler: str | None) -> str:
    cc = compiler or "gcc"
    return f"apt-get install {cc} make binutils libelf1"


@dataclass(frozen=True, slots=True)
class FaultModuleBuild:
    """The outcome: a module, or the reason there is none."""

    module: Module | None
    note: str | None
    compiler: str | None
    packages: tuple[Package, ...] = ()
    debs: tuple[str, ...] = ()


def _header_packages(release: str, version: str) -> tuple[list[Package], str | None]:
    """The header packages of ``release`` pinned to the kernel's version, and its compiler."""
    name = f"linux-headers-{release}"
    record = apt.candidates([name])[name]
    if record["Version"] != version:
        raise ImageError(f"{name} is at {record['Version']}, the kernel at {version}")
    compiler = None
    wanted = [name]
    for dep in apt.parse_depends(record.get("Depends", "")):
        if m := _COMPILER_PKG.match(dep):
            compiler = m.group(1)
        elif dep.startswith(("linux-headers-", "linux-kbuild-")):
            wanted.append(dep)
    records = apt.candidates(wanted)
    return [apt.package(records[n]) for n in wanted], compiler


def compile_module(header_debs: list[Path], release: str, work: Path) -> Module:
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
    run_tool(["make", "-C", str(kdir), f"M={src}", "modules"], cwd=src, timeout=MAKE_TIMEOUT)
    # The build id hashes debug paths of this scratch tree: drop it so equal inputs give equal bytes.
    run_tool(["strip", "--strip-debug", "--remove-section=.note.gnu.build-id", f"{MODULE}.ko"],
             cwd=src, timeout=STRIP_TIMEOUT)
    return modules_in_load_order(src, [MODULE], release)[0]


def build_fault_module(kernel: Package, release: str, debs_dir: Path, work: Path,
                       progress: Callable[[str], None]) -> FaultModuleBuild:
    """Build the module for ``kernel``, or say why not; never raises for a missing toolchain."""
    try:
        packages, compiler = _header_packages(release, kernel.version)
    except ImageError as exc:
        return FaultModuleBuild(None, f"faultinject: no usable headers for {release}, so kernel faults "
                                      f"are unavailable: {exc}", None)
    missing = missing_tools(compiler)
    if missing:
        note = (f"faultinject: {', '.join(missing)} not found, so the image has no fault module "
                f"(kernel faults are unavailable): {install_hint(compiler)}")
        return FaultModuleBuild(None, note, compiler)
    progress(f"building the {MODULE} module with {compiler or 'gcc'} and {', '.join(p.name for p in packages)}")
    debs = apt.download(packages, debs_dir)
    try:
        module = compile_module([debs[p] for p in packages], release, work)
    except ImageError as exc:
        note = f"faultinject: the module did not build, so kernel faults are unavailable: {exc}"
        return FaultModuleBuild(None, note, compiler, tuple(packages), tuple(p.filename for p in packages))
    return FaultModuleBuild(module, None, compiler, tuple(packages), tuple(p.filename for p in packages))
