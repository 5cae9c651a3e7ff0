"""soak's own full-OS disk image, ``soak:debian``: Debian with systemd and QEMU's guest agent.

Built from Debian's packages with ``mmdebstrap`` (variant ``essential`` plus
`PACKAGES`: systemd, udev, dbus, the cloud kernel, ``qemu-guest-agent`` and
``stress-ng``; no man pages, docs or locales), written into an ext4 file
system by ``mke2fs -d`` and converted to qcow2 by ``qemu-img``: no loop
device, no partition table, no bootloader. The guest boots the image's own
kernel and initrd (copied out of its ``/boot``) with ``root=/dev/vda``, through
any firmware of x86_64 (QEMU hands the kernel to SeaBIOS and OVMF alike).
mmdebstrap runs as root when soak does, else in a user namespace (``unshare``
mode), so building needs no root.

Inside, set by `FILES`: the root and a tmpfs ``/tmp`` in fstab (stress-ng's
scratch stays off the disk), the journal in memory and bounded, an initramfs
with only the virtio drivers the root needs (5.7 MiB instead of ~30).

Cached in ``CACHE/disks/<key>/`` (``disk.qcow2``, ``vmlinuz``, ``initrd.img``,
``manifest.json``), the newest `KEEP_DISKS` kept. The key hashes the builder,
the files and options above, the mirrors, and the candidate version the host's
apt gives for every package the last build installed (as the default images'
keys do): a security update of any of them rebuilds. mmdebstrap fetches fresh
package lists from the same mirrors, so on a host whose own lists are stale the
image may hold newer versions than its key names until the host's next
``apt-get update``; the manifest lists exactly what was installed.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from soak.errors import ImageError
from soak.image.apt import Apt, host_arch
from soak.image.aptstate import host_sources, sources_list
from soak.image.cache import ImageCache, Resolved, cache_root, image_key
from soak.image.disk import SOAK_DISKS, DiskImage, inspect_disk
from soak.image.tools import run_tool

BUILDER_VERSION = 1
PACKAGES = ("systemd-sysv", "udev", "dbus", "linux-image-cloud-amd64", "qemu-guest-agent", "stress-ng")
"""dbus: ``guest-shutdown`` runs ``shutdown -P +0``, which asks logind over D-Bus."""
DISK_SIZE = "2G"
"""The guest's root file system (the overlay of a VM can grow to this)."""
KERNEL_ARGS = ("root=/dev/vda", "rw")
EXCLUDES = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*")
FILES = {
    "etc/fstab": "/dev/vda / ext4 defaults 0 1\ntmpfs /tmp tmpfs mode=1777,size=50% 0 0\n",
    "etc/hostname": "soak-debian\n",
    "etc/initramfs-tools/conf.d/soak.conf": "MODULES=list\n",
    "etc/initramfs-tools/modules": "virtio_pci\nvirtio_blk\n",
    "etc/systemd/journald.conf.d/soak.conf": "[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n",
}
"""Written into the image before its packages are configured (the initramfs is made with them)."""
KEEP_DISKS = 2
BUILD_TIMEOUT_S = 1800.0
CONVERT_TIMEOUT_S = 300.0
DISK, KERNEL, INITRD, MANIFEST = "disk.qcow2", "vmlinuz", "initrd.img", "manifest.json"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@functools.cache
def _mirrors() -> tuple[str, ...]:
    return tuple(sources_list("amd64", host_sources()).splitlines())


def inputs(name: str, versions: dict[str, str]) -> dict[str, Any]:
    """Everything the image is made of, for its key: ``versions`` by package name."""
    return {
        "builder": BUILDER_VERSION, "name": name, "variant": "essential", "suite": host_sources().suite,
        "mirrors": list(_mirrors()), "packages": sorted(f"{n}={v}" for n, v in versions.items()),
        "roots": list(PACKAGES), "files": FILES, "excludes": list(EXCLUDES), "size": DISK_SIZE,
        "kernel_args": list(KERNEL_ARGS),
    }


def _check_host() -> None:
    missing = [tool for tool in ("mmdebstrap", "mke2fs", "qemu-img", "apt-cache") if shutil.which(tool) is None]
    if missing:
        raise ImageError(f"building soak:debian needs {', '.join(missing)}: "
                         "apt-get install mmdebstrap e2fsprogs qemu-utils")
    if host_arch() != "amd64":
        raise ImageError(f"soak:debian is built on amd64 hosts, not {host_arch()}: use image.disk = PATH")


def _versions(apt: Apt, cache: ImageCache, name: str) -> dict[str, str]:
    """The host apt's candidate of each package the image holds (the last build's list)."""
    last = cache.read_resolved(f"disk-{name}").closure
    records = apt.candidates(PACKAGES)
    records.update(apt.candidates([n for n in last if n not in records], strict=False))
    return {n: r["Version"] for n, r in records.items()}


def disk_dir(cache: ImageCache) -> Path:
    return cache.root / "disks"


def load_disk(path: Path) -> DiskImage:
    """The image stored in ``path`` (a ``disks/<key>`` directory).

    :raise ImageError: it is incomplete.
    """
    try:
        meta = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ImageError(f"{path}: no readable {MANIFEST}: {exc}") from exc
    for part in (DISK, KERNEL, INITRD):
        if not (path / part).is_file():
            raise ImageError(f"{path}: {part} is missing")
    return DiskImage(
        disk=inspect_disk(path / DISK, "qcow2"), label=f"soak:{meta['name']}@{str(meta['key'])[:8]}", agent="qga",
        kernel=path / KERNEL, initrd=path / INITRD, kernel_args=tuple(meta.get("kernel_args", KERNEL_ARGS)),
        features=frozenset(meta.get("features", ())), notes=tuple(meta.get("notes", ())))


def ensure_os_disk(name: str = "debian", cache_dir: Path | None = None, *, force: bool = False,
                   progress: Progress | None = None) -> DiskImage:
    """``soak:NAME`` from the cache when its inputs are unchanged, else built now (about a minute).

    Synchronous: call it in a thread from async code.

    :raise ImageError: one line: what to install, or why the build failed.
    """
    if name not in SOAK_DISKS:
        raise ImageError(f"no disk image soak:{name}; soak builds {', '.join('soak:' + d for d in SOAK_DISKS)}")
    say = progress or _quiet
    _check_host()
    cache = ImageCache(cache_root(cache_dir))
    apt = Apt("amd64")
    key = image_key(inputs(name, _versions(apt, cache, name)))
    if not force and (disk_dir(cache) / key / MANIFEST).is_file():
        return load_disk(disk_dir(cache) / key)
    with cache.lock(say):
        for stale in disk_dir(cache).glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        key = image_key(inputs(name, _versions(apt, cache, name)))  # another soak may have built it
        if not force and (disk_dir(cache) / key / MANIFEST).is_file():
            return load_disk(disk_dir(cache) / key)
        say(f"building soak:{name} with mmdebstrap in {disk_dir(cache)} (about a minute)")
        image = _build(name, cache, apt, say)
        prune(cache)
    say(f"built soak:{name} {image.label}")
    return image


def _build(name: str, cache: ImageCache, apt: Apt, say: Progress) -> DiskImage:
    started = time.monotonic()
    disk_dir(cache).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=disk_dir(cache)))
    try:
        files = tmp / "files"
        for rel, text in FILES.items():
            (files / rel).parent.mkdir(parents=True, exist_ok=True)
            (files / rel).write_text(text)
        out = tmp / "out"
        out.mkdir()
        raw = tmp / "root.raw"
        run_tool(_mmdebstrap_argv(files, out, raw), timeout=BUILD_TIMEOUT_S,
                 hint="apt-get install mmdebstrap")
        say("converting the root file system to qcow2")
        run_tool([shutil.which("qemu-img") or "qemu-img", "convert", "-O", "qcow2", str(raw), str(out / DISK)],
                 timeout=CONVERT_TIMEOUT_S)
        raw.unlink()
        installed = dict(line.split("=", 1) for line in (out / "packages.txt").read_text().split() if "=" in line)
        versions = _versions_after(apt, installed)
        key = image_key(inputs(name, versions))
        release = (out / "release").read_text().strip().removeprefix("vmlinuz-")
        manifest = {
            "key": key, "name": name, "arch": "x86_64", "kernel_release": release, "kernel_args": list(KERNEL_ARGS),
            "features": ["qga", "stress-ng"], "packages": sorted(f"{n}={v}" for n, v in installed.items()),
            "inputs": inputs(name, versions), "built_at": time.time(),
            "build_seconds": round(time.monotonic() - started, 1),
            "disk_bytes": (out / DISK).stat().st_size,
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        cache.write_resolved(f"disk-{name}", Resolved(tuple(sorted(installed)), None))
        final = disk_dir(cache) / key
        if final.exists():
            shutil.rmtree(final)
        os.rename(out, final)
        return load_disk(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _versions_after(apt: Apt, installed: dict[str, str]) -> dict[str, str]:
    """The key's versions for what a build installed: the host's candidates, as every later lookup sees them."""
    records = apt.candidates(sorted(installed), strict=False)
    return {n: records[n]["Version"] for n in installed if n in records}


def _mmdebstrap_argv(files: Path, out: Path, raw: Path) -> list[str]:
    q = shlex.quote
    # /proc, /sys and /dev are mounted in the chroot during hooks: mke2fs copies a bind mount of
    # the root alone (as root, or as root of mmdebstrap's user namespace)
    make_fs = (
        f'cp -L "$1/vmlinuz" {q(str(out / KERNEL))} && cp -L "$1/initrd.img" {q(str(out / INITRD))} && '
        f'basename "$(readlink -f "$1/vmlinuz")" > {q(str(out / "release"))} && '
        f"dpkg-query --admindir=\"$1/var/lib/dpkg\" -W -f '${{Package}}=${{Version}}\\n' > {q(str(out / 'packages.txt'))} && "
        'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin && '
        'if mountpoint -q "$1/proc"; then d=$(mktemp -d) && mount --bind "$1" "$d"; else d="$1"; fi && '
        f'mke2fs -q -t ext4 -L root -d "$d" {q(str(raw))} {DISK_SIZE}; rc=$?; '
        '[ "$d" = "$1" ] || { umount "$d"; rmdir "$d"; }; exit $rc'
    )
    return [
        "mmdebstrap", "--variant=essential", f"--include={','.join(PACKAGES)}",
        *(f"--dpkgopt=path-exclude={p}" for p in EXCLUDES),
        '--aptopt=Acquire::Retries "3"',
        f"--essential-hook=sync-in {files} /",
        f"--customize-hook={make_fs}",
        host_sources().suite, "/dev/null", *_mirrors(),
    ]


def prune(cache: ImageCache, keep: int = KEEP_DISKS) -> None:
    """Keep the newest ``keep`` disk images."""
    built = sorted((d for d in disk_dir(cache).glob("*") if (d / MANIFEST).is_file()),
                   key=lambda d: (d / MANIFEST).stat().st_mtime, reverse=True)
    for old in built[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def cached_disks(cache_dir: Path | None = None) -> list[tuple[DiskImage, dict[str, Any]]]:
    """Every complete disk image in the cache with its manifest, newest first."""
    root = disk_dir(ImageCache(cache_root(cache_dir)))
    found = []
    for d in root.glob("*") if root.is_dir() else ():
        if d.name.startswith(".") or not (d / MANIFEST).is_file():
            continue
        try:
            found.append((load_disk(d), json.loads((d / MANIFEST).read_text())))
        except (ImageError, ValueError):
            continue
    return sorted(found, key=lambda im: float(im[1].get("built_at", 0)), reverse=True)
