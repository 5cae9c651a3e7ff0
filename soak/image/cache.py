"""Where built images live, how they are keyed, and how builds stay atomic.

Layout under the cache root (``SOAK_CACHE_DIR``, else ``$XDG_CACHE_HOME/soak``,
else ``~/.cache/soak``)::

    lock                  flock(2) held by the one process that builds
    debs/                 downloaded .deb files, shared by builds
    images/<key>/         vmlinuz, initrd.img, manifest.json: complete or absent
    images/.tmp-*/        a build in progress (or a crashed one, removed by the next)
    resolved-<arch>.json  what the last build of <arch> found out: library packages, kernel compiler
    apt/<debian-arch>/    soak's private apt state for architectures the host's apt lacks

An image appears under its key only by ``rename(2)`` of a finished directory,
so a crash or a concurrent reader never sees half an image.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soak.errors import ImageError
from soak.image.model import MANIFEST, GuestImage, load_manifest

LOCK_TIMEOUT = 1800.0
LOCK_POLL = 0.25
KEEP_IMAGES = 3
"""Per architecture."""

Listing = list[tuple[GuestImage, dict[str, Any]]]
"""Cached images with their manifests."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """Inputs only a build can discover, remembered so the next lookup can key on them."""

    closure: tuple[str, ...]
    """The packages that provided stress-ng's shared libraries."""
    compiler: str | None
    """The compiler the kernel's header packages ask for, e.g. ``gcc-12``."""


def cache_root(explicit: Path | None = None) -> Path:
    """The cache root: the argument, ``SOAK_CACHE_DIR``, ``$XDG_CACHE_HOME/soak`` or ``~/.cache/soak``."""
    if explicit is not None:
        return explicit
    if env := os.environ.get("SOAK_CACHE_DIR"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "soak"


def image_key(inputs: Mapping[str, Any]) -> str:
    """A short stable hash of everything an image is built from."""
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


class ImageCache:
    """The on-disk cache of built images under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.images = root / "images"
        self.debs = root / "debs"

    def get(self, key: str) -> GuestImage | None:
        """The complete image stored under ``key``, if any."""
        d = self.images / key
        if not (d / MANIFEST).is_file():
            return None
        try:
            return load_manifest(d)[0]
        except ImageError:
            return None

    def list(self) -> Listing:
        """Every complete image with its manifest, newest first."""
        found: Listing = []
        if self.images.is_dir():
            for d in self.images.iterdir():
                if not d.name.startswith(".") and (d / MANIFEST).is_file():
                    with contextlib.suppress(ImageError):
                        found.append(load_manifest(d))
        return sorted(found, key=lambda im: float(im[1].get("built_at", 0)), reverse=True)

    def _resolved_path(self, arch: str) -> Path:
        return self.root / f"resolved-{arch}.json"

    def read_resolved(self, arch: str) -> Resolved:
        """What the last build of ``arch`` found out beyond apt's candidates (see `Resolved`)."""
        try:
            data = json.loads(self._resolved_path(arch).read_text())
            return Resolved(tuple(str(n) for n in data["closure"]), data.get("compiler"))
        except (OSError, ValueError, KeyError, TypeError):
            return Resolved((), None)

    def write_resolved(self, arch: str, resolved: Resolved) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._resolved_path(arch)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"closure": sorted(resolved.closure), "compiler": resolved.compiler}))
        os.replace(tmp, path)

    @contextlib.contextmanager
    def lock(self, progress: Callable[[str], None], timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        """Hold the build lock; waits (with a deadline) for another soak's build.

        flock has no timeout of its own, so a non-blocking try is repeated: a
        build takes a minute, a few polls a second cost nothing.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + timeout
            told = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not told:
                        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                        progress(f"waiting for another soak (pid {holder}) to finish building the image")
                        told = True
                    if time.monotonic() > deadline:
                        raise ImageError(
                            f"another process held {self.root / 'lock'} for {timeout:.0f} s; "
                            "if no soak is building, delete that file"
                        ) from None
                    time.sleep(LOCK_POLL)
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            self._remove_stale_builds()
            yield
        finally:
            os.close(fd)  # also releases the lock

    def _remove_stale_builds(self) -> None:
        """Remove what crashed builds left; only called with the lock held."""
        if self.images.is_dir():
            for d in self.images.glob(".tmp-*"):
                shutil.rmtree(d, ignore_errors=True)

    def new_build_dir(self) -> Path:
        self.images.mkdir(parents=True, exist_ok=True)
        d = self.images / f".tmp-{os.getpid()}-{time.monotonic_ns()}"
        d.mkdir()
        return d

    def publish(self, built: Path, key: str) -> GuestImage:
        """Move a finished image directory under its key, atomically."""
        final = self.images / key
        if final.exists():  # a forced rebuild replaces the old one
            trash = self.images / f".tmp-old-{key}-{time.monotonic_ns()}"
            os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(built, final)
        return load_manifest(final)[0]

    def prune(self, keep: int = KEEP_IMAGES) -> None:
        """Keep the newest ``keep`` images of each architecture and only the .debs they were built from."""
        kept: Listing = []
        seen: dict[str, int] = {}
        for image, meta in self.list():
            seen[image.arch] = seen.get(image.arch, 0) + 1
            if seen[image.arch] > keep:
                shutil.rmtree(image.kernel.parent, ignore_errors=True)
            else:
                kept.append((image, meta))
        wanted = {f for _, meta in kept for f in meta.get("debs", ())}
        if self.debs.is_dir():
            for deb in self.debs.glob("*.deb"):
                if deb.name not in wanted:
                    deb.unlink(missing_ok=True)
