"""`soak image build|info`: build the default guest images now, or show what is cached."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from soak.arch import ARCHES, DEFAULT_ARCH
from soak.image import cache_root, ensure_default_image
from soak.image.cache import ImageCache
from soak.image.disk import SOAK_DISKS
from soak.image.osdisk import cached_disks, ensure_os_disk

_cache_dir = click.option(
    "--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Cache root (default: $SOAK_CACHE_DIR, else $XDG_CACHE_HOME/soak or ~/.cache/soak).",
)


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


@click.group()
def image() -> None:
    """The default guest images: Debian's kernel, busybox, stress-ng and soak's agent, per architecture."""


@image.command()
@click.option("--arch", "arches", multiple=True, default=None, show_default=DEFAULT_ARCH,
              type=click.Choice([*ARCHES, "all"]), help="Guest architecture (repeat it, or 'all').")
@click.option("--disk", "disks", multiple=True, type=click.Choice(SOAK_DISKS),
              help="A full OS disk image instead (soak:NAME in a profile); with --arch too, both.")
@click.option("--force", is_flag=True, help="Rebuild (and refresh foreign package lists) even if cached.")
@_cache_dir
def build(arches: tuple[str, ...], disks: tuple[str, ...], force: bool, cache_dir: Path | None) -> None:
    """Build the default guest image of each architecture, or a disk image (or find it in the cache)."""
    console = Console(highlight=False)
    for disk in dict.fromkeys(disks):
        started = time.monotonic()
        built = ensure_os_disk(disk, cache_dir, force=force, progress=lambda m: console.print(f"  {escape(m)}"))
        console.print(f"disk    {built.label} {built.disk.path} ({_mib(built.disk.path.stat().st_size)}, "
                      f"{time.monotonic() - started:.1f} s)", soft_wrap=True)
        console.print(f"kernel  {built.kernel} + {built.initrd.name if built.initrd else '-'} "
                      f"({' '.join(built.kernel_args)})", soft_wrap=True)
    if disks and not arches:
        return
    for name in ARCHES if "all" in arches else dict.fromkeys(arches or [DEFAULT_ARCH]):
        started = time.monotonic()
        result = ensure_default_image(cache_dir, arch=name, force=force,
                                      progress=lambda m: console.print(f"  {escape(m)}"))
        console.print(f"image   {result.key} {result.arch} ({time.monotonic() - started:.1f} s)")
        console.print(f"kernel  {result.kernel} ({_mib(result.kernel.stat().st_size)}, {result.kernel_release})")
        console.print(f"initrd  {result.initrd} ({_mib(result.initrd.stat().st_size)})")
        console.print(f"features {', '.join(sorted(result.features))}")
        for note in result.notes:
            console.print(f"[yellow]note[/]: {escape(note)}")


@image.command()
@_cache_dir
def info(cache_dir: Path | None) -> None:
    """List the cached images, newest first (nothing is built or downloaded)."""
    console = Console(highlight=False)
    root = cache_root(cache_dir)
    cache = ImageCache(root)
    images = cache.list()
    for disk, meta in cached_disks(cache_dir):
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(meta.get("built_at", 0))))
        console.print(f"{disk.label}  disk {_mib(disk.disk.path.stat().st_size)}  {meta.get('kernel_release')}  "
                      f"built {built} in {meta.get('build_seconds')} s  {disk.disk.path}", soft_wrap=True)
    if not images:
        console.print(f"no image cached in {root}: `soak image build` or the first `soak run` builds one")
        return
    for img, meta in images:
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(meta.get("built_at", 0))))
        console.print(f"{img.key}  {img.arch:<7} {img.kernel_release}  initrd {_mib(img.initrd.stat().st_size)}  "
                      f"built {built}  features {','.join(sorted(img.features))}", soft_wrap=True)
    debs = sum(f.stat().st_size for f in cache.debs.glob("*.deb")) if cache.debs.is_dir() else 0
    console.print(f"cache {root}: newest image in {images[0][0].kernel.parent}; "
                  f"downloaded packages {_mib(debs)}", soft_wrap=True)
    newest = {img.arch: img for img, _ in reversed(images)}
    for img in newest.values():
        for note in img.notes:
            console.print(f"[yellow]note[/] ({img.arch}): {escape(note)}")
