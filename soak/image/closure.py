"""The shared libraries a dynamic binary needs, found in Debian packages, not on the host.

Starting from a binary's DT_NEEDED sonames, each missing soname is looked for
in the packages its requester depends on. Dependencies are fetched only when a
soname is still missing, one breadth-first level at a time, so stress-ng's
``Depends: libegl1`` costs libglvnd's two small packages and not Mesa's whole
stack. Packages are fetched through a callback so this module stays free of apt.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from soak.errors import ImageError
from soak.image.elf import read_deps

LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "lib", "usr/lib")
"""x86_64's; other architectures pass theirs (`soak.arch.Arch.lib_dirs`)."""


@dataclass(frozen=True, slots=True)
class Unpacked:
    """One package extracted under ``root``."""

    name: str
    version: str
    root: Path
    depends: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Library:
    soname: str
    package: str
    path: Path
    """The real file (symlinks inside the package resolved)."""


Fetch = Callable[[list[str]], Mapping[str, Unpacked]]
"""Downloads and unpacks packages by name; returns those it could (virtual names are skipped)."""


def resolve_in_root(root: Path, path: Path) -> Path:
    """Follow symlinks as if ``root`` were ``/``, so absolute links stay inside the package."""
    for _ in range(40):
        if not path.is_symlink():
            return path
        target = os.readlink(path)
        path = root / target.lstrip("/") if target.startswith("/") else path.parent / target
    raise ImageError(f"{path}: too many levels of symbolic links")


def _index(pkg: Unpacked, lib_dirs: Sequence[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for rel in lib_dirs:
        d = pkg.root / rel
        if not d.is_dir():
            continue
        for entry in sorted(d.iterdir()):
            if ".so" in entry.name and entry.name not in found:
                real = resolve_in_root(pkg.root, entry)
                if real.is_file():
                    found[entry.name] = real
    return found


class _Closure:
    def __init__(self, packages: Mapping[str, Unpacked], fetch: Fetch, lib_dirs: Sequence[str]) -> None:
        self.packages: dict[str, Unpacked] = dict(packages)
        self.fetch = fetch
        self.lib_dirs = lib_dirs
        self.index: dict[str, Library] = {}
        self.expanded: set[str] = set()
        for pkg in self.packages.values():
            self._add_to_index(pkg)

    def _add_to_index(self, pkg: Unpacked) -> None:
        for soname, path in _index(pkg, self.lib_dirs).items():
            self.index.setdefault(soname, Library(soname, pkg.name, path))

    def _to_expand(self, owner: str) -> str | None:
        """The nearest package in ``owner``'s dependency tree whose dependencies are not fetched."""
        queue, seen = [owner], {owner}
        while queue:
            name = queue.pop(0)
            if name not in self.packages:
                continue  # not fetched (yet): nothing to expand
            if name not in self.expanded:
                return name
            for dep in self.packages[name].depends:
                if dep not in seen:
                    seen.add(dep)
                    queue.append(dep)
        return None

    def _expand(self, owners: Iterable[str], pending: Mapping[str, str]) -> None:
        chosen = {n for n in map(self._to_expand, owners) if n is not None}
        if not chosen:
            missing = ", ".join(f"{s} (needed by {o})" for s, o in sorted(pending.items()))
            raise ImageError(f"no Debian package in the dependencies provides {missing}")
        self.expanded |= chosen
        wanted = sorted({d for n in chosen for d in self.packages[n].depends} - set(self.packages))
        for pkg in self.fetch(wanted).values():
            self.packages[pkg.name] = pkg
            self._add_to_index(pkg)

    def run(self, needed: Mapping[str, str]) -> dict[str, Library]:
        resolved: dict[str, Library] = {}
        pending = dict(needed)  # soname -> package that needs it
        while pending:
            for soname in list(pending):
                lib = self.index.get(soname)
                if lib is None:
                    continue
                del pending[soname]
                resolved[soname] = lib
                for dep in read_deps(lib.path).needed:
                    if dep not in resolved:
                        pending.setdefault(dep, lib.package)
            if pending:
                self._expand(set(pending.values()), pending)
        return resolved


def library_closure(
    binaries: Mapping[Path, str],
    packages: Mapping[str, Unpacked],
    fetch: Fetch,
    extra: Mapping[str, str] | None = None,
    lib_dirs: Sequence[str] = LIB_DIRS,
) -> dict[str, Library]:
    """Every shared library the ``binaries`` (path -> owning package) load, by soname.

    ``extra`` adds sonames a binary loads with dlopen (soname -> package that
    depends on the provider), e.g. glibc's libgcc_s for pthread_cancel.

    :raise ImageError: a soname is provided by no package reachable through Depends.
    """
    needed: dict[str, str] = dict(extra or {})
    for path, owner in binaries.items():
        for soname in read_deps(path).needed:
            needed.setdefault(soname, owner)
    return _Closure(packages, fetch, lib_dirs).run(needed)
