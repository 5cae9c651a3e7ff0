"""`soak doctor`: can soak run on this machine, and how well? Exit 1 when it cannot.

Besides the x86_64 essentials it lists every guest architecture and firmware
of `soak.arch` with what this host has for it: the QEMU binary, the firmware
files, a cached image, and whether the fault module can be built.
"""

from __future__ import annotations

import os
import shutil
import sys

import click
import psutil
from rich.console import Console
from rich.table import Table

from soak.accel import choose_accel, qemu_for, qemu_version, run_kvm_probe
from soak.arch import ARCHES, DEFAULT_ARCH
from soak.errors import AccelError, ImageError


@click.command()
@click.option("--qemu", default="qemu-system-x86_64", show_default=True, help="The QEMU binary to check.")
def doctor(qemu: str) -> None:
    """Check QEMU, KVM, the guest image cache and the host's resources."""
    console = Console(highlight=False)
    table = Table(show_header=False, box=None, padding=(0, 2))
    fatal: list[str] = []

    try:
        table.add_row("QEMU", f"[green]{qemu_version(qemu)}[/] ({shutil.which(qemu)})")
    except AccelError as exc:
        table.add_row("QEMU", f"[red]{exc}[/]")
        fatal.append("no QEMU")

    probe = run_kvm_probe()
    verdict = str(probe.get("verdict"))
    backend = probe.get("backend", {})
    modules = ", ".join(backend.get("modules", [])) or "none"
    style = "green" if verdict == "USABLE" else "yellow"
    table.add_row("KVM", f"[{style}]{verdict}[/]: {probe.get('why', '')} (modules: {modules})")
    choice = choose_accel("auto", probe)
    table.add_row("accel = auto", f"{choice.accel}: {choice.reason}")

    table.add_row("guest image", _image_status(fatal))
    for label, status in _guest_rows(qemu):
        table.add_row(label, status)
    table.add_row("soak:debian", _disk_status())
    memory = psutil.virtual_memory()
    table.add_row("host", f"{os.cpu_count()} CPUs, {memory.available / 2**30:.1f} GiB free of {memory.total / 2**30:.1f} GiB")
    if memory.available < 512 * 2**20:
        fatal.append("less than 512 MiB of free memory")
    console.print(table)
    if fatal:
        console.print(f"[red]soak cannot run here:[/] {'; '.join(fatal)}")
        sys.exit(1)
    console.print("[green]soak can run here.[/]")


def _image_status(fatal: list[str]) -> str:
    from soak.image import cache_root
    from soak.image.apt import check_tools
    from soak.image.cache import ImageCache

    root = cache_root()
    images = [im for im in ImageCache(root).list() if im[0].arch == DEFAULT_ARCH] if root.exists() else []
    if images:
        image, _ = images[0]
        return (f"[green]cached[/] {image.kernel_release} key {image.key[:12]} "
                f"features {', '.join(sorted(image.features))} ({root})")
    try:
        check_tools()
    except ImageError as exc:
        fatal.append("no guest image and none can be built")
        return f"[red]none cached, cannot build: {exc}[/]"
    return f"[yellow]not built yet[/]: `soak image build` or the first `soak run` builds it into {root}"


def _disk_status() -> str:
    """The full OS disk image: cached, or can it be built (mmdebstrap, mke2fs, qemu-img)?"""
    from soak.image.osdisk import cached_disks

    disks = cached_disks()
    if disks:
        disk, meta = disks[0]
        return (f"[green]cached[/] {disk.label} {meta.get('kernel_release')} "
                f"({disk.disk.path.stat().st_size / 2**20:.0f} MiB, {disk.disk.path.parent})")
    missing = [tool for tool in ("mmdebstrap", "mke2fs", "qemu-img") if shutil.which(tool) is None]
    if missing:
        return f"[yellow]cannot be built: no {', '.join(missing)}[/] (apt-get install mmdebstrap e2fsprogs qemu-utils)"
    return "[yellow]not built yet[/]: `soak image build --disk debian` or the first run that uses it"


def _guest_rows(qemu: str) -> list[tuple[str, str]]:
    """One row per architecture and firmware: can this host boot it, and is its image cached?"""
    from soak.image import cache_root
    from soak.image.cache import ImageCache
    from soak.image.faultbuild import module_problem

    cache = ImageCache(cache_root())
    newest = {img.arch: img for img, _ in reversed(cache.list())} if cache.root.exists() else {}
    rows = []
    for arch in ARCHES.values():
        binary = qemu_for(arch, qemu)
        try:
            have_qemu = f"[green]{binary} {qemu_version(binary, arch.qemu_package)}[/]"
        except AccelError:
            have_qemu = f"[red]no {binary}[/] (apt-get install {arch.qemu_package})"
        image = newest.get(arch.name)
        if image is None:
            cached = f"[yellow]no image cached[/] (soak image build --arch {arch.name})"
        else:
            cached = f"image {image.key[:12]} {image.kernel_release} ({', '.join(sorted(image.features))})"
        module = module_problem(arch, cache.read_resolved(arch.name).compiler)
        faults = f" · [yellow]no fault module: {module}[/]" if module else ""
        for fw in arch.firmwares:
            missing = fw.missing()
            firmware = (f"[red]missing {', '.join(map(str, missing))}[/] (apt-get install {fw.package})" if missing
                        else f"{fw.name} from {fw.package} · " if fw.package else "")
            rows.append((f"{arch.name} {fw.name}", f"{have_qemu} · {firmware}{cached}{faults}"))
    return rows
