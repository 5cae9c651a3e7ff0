"""`soak profile check FILE`: validate a profile without running it."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from soak.arch import ARCHES
from soak.errors import ProfileError
from soak.image.faults import FAULTS as GUEST_FAULTS
from soak.image.faults import MODULE
from soak.profile import Profile, expand_fleet, load_profile
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
        _check_fault_module(path, loaded)
        _check_disks(path, loaded)
        fleet = expand_fleet(loaded)
        shapes = ", ".join(f"{vm.name} {vm.vcpus}x{vm.memory_mib}M" for vm in fleet[:12])
        more = f" (+{len(fleet) - 12} more)" if len(fleet) > 12 else ""
        console.print(
            f"{path}: ok · {loaded.run.name} · {format_duration(loaded.run.duration)} · seed {loaded.run.seed}"
            f" · {len(fleet)} VMs: {shapes}{more}"
        )


def _check_fault_module(path: Path, loaded: Profile) -> None:
    """A group's kernel faults need soak's fault module in its architecture's default image.

    :raise ProfileError: the module cannot be built for that architecture on this host.
    """
    from soak.image.cache import ImageCache, cache_root
    from soak.image.faultbuild import module_problem

    cache = ImageCache(cache_root())
    for i, group in enumerate(loaded.group):
        needs = [f.type for f in group.fault if f.type in GUEST_FAULTS and GUEST_FAULTS[f.type].source == MODULE]
        if not needs or not group.image.is_default:
            continue
        arch = ARCHES[group.arch]
        if problem := module_problem(arch, cache.read_resolved(arch.name).compiler):
            raise ProfileError(str(path), f"group[{i}].fault", f"group {group.name} ({arch.name}): fault "
                               f"{needs[0]!r} needs soak's fault module, which cannot be built here: {problem}")


def _check_disks(path: Path, loaded: Profile) -> None:
    """A group's own disk image must be a file qemu-img can read (soak's disks are built on first use).

    :raise ProfileError: naming the group's ``image.disk`` and what qemu-img said.
    """
    from soak.errors import ImageError
    from soak.image.disk import inspect_disk, soak_disk_name

    for i, group in enumerate(loaded.group):
        disk = group.image.disk
        if disk is None or soak_disk_name(disk) is not None:
            continue
        try:
            inspect_disk(Path(disk), group.image.format)
        except ImageError as exc:
            raise ProfileError(str(path), f"group[{i}].image.disk", str(exc)) from None
