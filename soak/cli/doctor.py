"""`soak doctor`: can soak run on this machine, and how well? Exit 1 when it cannot."""

from __future__ import annotations

import os
import shutil
import sys

import click
import psutil
from rich.console import Console
from rich.table import Table

from soak.accel import choose_accel, qemu_version, run_kvm_probe
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
    images = ImageCache(root).list() if root.exists() else []
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
