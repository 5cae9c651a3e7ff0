"""`soak profile check FILE`: validate a profile without running it."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from soak.profile import expand_fleet, load_profile
from soak.units import format_duration


@click.group()
def profile() -> None:
    """Work with profiles."""


@profile.command()
@click.argument("paths", metavar="FILE...", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(paths: tuple[Path, ...]) -> None:
    """Validate profiles; print the fleet each one describes. Exit 2 on the first bad one."""
    console = Console(highlight=False)
    for path in paths:
        loaded = load_profile(path)
        fleet = expand_fleet(loaded)
        shapes = ", ".join(f"{vm.name} {vm.vcpus}x{vm.memory_mib}M" for vm in fleet[:12])
        more = f" (+{len(fleet) - 12} more)" if len(fleet) > 12 else ""
        console.print(
            f"{path}: ok · {loaded.run.name} · {format_duration(loaded.run.duration)} · seed {loaded.run.seed}"
            f" · {len(fleet)} VMs: {shapes}{more}"
        )
