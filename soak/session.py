"""One `soak run`, from profile to summary: prepare, supervise, always finish.

Preparation can fail (bad profile, no QEMU, no image): that raises before any
guest starts. Once the journal is open, the run *always* finishes the same
way, whatever happened: a RunFinished record, the journal flushed, the summary
written. A bug in soak becomes reason ``error`` and exit code 3; the guests'
QEMUs are gone either way (their runners kill them, and the kernel would).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import shlex
import shutil
import socket
import sys
import traceback
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from soak import __version__
from soak import events as ev
from soak.accel import AccelChoice, choose_accel, qemu_for, qemu_version
from soak.arch import ARCHES
from soak.diskio import RESERVE_NAME, DiskAlarm, disk_low_stopper, release_reserve, watch_free_disk
from soak.errors import ImageError, UsageError
from soak.journal import Journal
from soak.live import LiveView
from soak.machine import BootImage, Host, host_tsc_khz
from soak.machine.qemu import QemuLauncher
from soak.preflight import (
    check_devices,
    check_disk,
    check_guest_faults,
    check_initrd_fits,
    check_memory,
    estimate_disk,
    host_facts,
)
from soak.profile import Profile, VmSpec, expand_fleet
from soak.recorder import Observer, Recorder
from soak.render import render_summary
from soak.rundir import RunDir
from soak.runmodel import RunModel, run_finished
from soak.shard import Placement, Shard, profile_hash
from soak.summary import Statuses, Summary, load_summary
from soak.supervisor import Supervisor
from soak.units import format_bytes

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    profile_path: Path
    profile: Profile
    run_dir: Path
    only_vms: list[str] = field(default_factory=list)
    placement: Placement | None = None
    """Shard, attempt, host and run group (soak.shard); None: the whole fleet, this host."""
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    observers: list[Observer] = field(default_factory=list)
    """Extra observers (metrics) that see every event."""


def select_fleet(profile: Profile, only: list[str], shard: Shard | None = None) -> list[VmSpec]:
    """The profile's fleet, or this shard's share of it, or the named VMs of that (``--vm``).

    :raise UsageError: a name that is not in the fleet (or the shard), an empty shard.
    """
    fleet = expand_fleet(profile)
    where = "this profile"
    if shard is not None and shard.count > 1:
        if shard.count > len(fleet):
            raise UsageError(f"--shard {shard}: the fleet has only {len(fleet)} VMs, so shard "
                             f"{shard.index} of {shard.count} would have none")
        fleet, where = shard.select(fleet), f"shard {shard}"
    if not only:
        return fleet
    names = {vm.name for vm in fleet}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise UsageError(f"no VM named {', '.join(unknown)} in {where} (VMs: {', '.join(sorted(names))})")
    return [vm for vm in fleet if vm.name in only]


def resolve_images(fleet: list[VmSpec], progress: Callable[[str], None]) -> dict[str, BootImage]:
    """What each group boots: the user's kernel and initrd, a disk image, or soak's default image
    of its architecture.

    Each architecture's default image is looked up (or built) once; whether it can provoke the
    group's guest faults is `soak.preflight.check_guest_faults`'s question.

    :raise ImageError: the image cannot be built.
    :raise UsageError: a user's file is missing, or a disk qemu-img cannot read.
    """
    from soak.image import GuestImage, ensure_default_image, image_from_files

    images: dict[str, BootImage] = {}
    defaults: dict[str, GuestImage] = {}
    for spec in fleet:
        if spec.group in images:
            continue
        settings = spec.image
        extra = tuple(settings.append.split())
        if settings.disk is not None:
            images[spec.group] = disk_boot_image(spec, progress)
            continue
        if settings.kernel is not None and settings.initrd is not None:
            try:
                own = image_from_files(settings.kernel, settings.initrd)
            except ImageError as exc:  # the user's own file: their mistake, not soak's
                raise UsageError(f"group {spec.group!r}: {exc}") from None
            images[spec.group] = BootImage(own.kernel, own.initrd, extra, f"{own.kernel.name}",
                                           agent=own.has("agent"), features=own.features, notes=own.notes)
            continue
        if spec.arch not in defaults:
            defaults[spec.arch] = ensure_default_image(arch=spec.arch, progress=progress)
        default = defaults[spec.arch]
        label = f"default:{default.kernel_release or default.key[:12]}"
        images[spec.group] = BootImage(default.kernel, default.initrd, extra, label, agent=True,
                                       features=default.features, notes=default.notes)
    return images


def disk_boot_image(spec: VmSpec, progress: Callable[[str], None]) -> BootImage:
    """A group's full OS disk: soak's own (built on first use) or the user's file, checked by qemu-img.

    :raise ImageError: soak's disk cannot be built.
    :raise UsageError: the user's disk, kernel or initrd is missing or unreadable.
    """
    from soak.image import image_from_files
    from soak.image.disk import inspect_disk, soak_disk_name
    from soak.image.osdisk import ensure_os_disk

    settings = spec.image
    assert settings.disk is not None
    extra = tuple(settings.append.split())
    agent = settings.disk_agent
    name = soak_disk_name(settings.disk)
    if name is not None:
        own = ensure_os_disk(name, progress=progress)
        return BootImage(own.kernel, own.initrd, own.kernel_args + extra, own.label, agent=agent == "qga",
                         features=own.features if agent == "qga" else frozenset(), notes=own.notes,
                         disk=own.disk.path, disk_format=own.disk.format, agent_kind=agent or "none")
    try:
        disk = inspect_disk(Path(settings.disk), settings.format)
        kernel = initrd = None
        if settings.kernel is not None and settings.initrd is not None:
            files = image_from_files(settings.kernel, settings.initrd)
            kernel, initrd = files.kernel, files.initrd
    except ImageError as exc:  # the user's own file: their mistake, not soak's
        raise UsageError(f"group {spec.group!r}: {exc}") from None
    return BootImage(kernel, initrd, extra, f"disk:{disk.path.name}", agent=agent == "qga",
                     features=frozenset({"qga"}) if agent == "qga" else frozenset(), disk=disk.path,
                     disk_format=disk.format, agent_kind=agent or "none")


def check_host_can_boot(fleet: list[VmSpec], configured_qemu: str) -> dict[str, str]:
    """Each architecture's QEMU and each firmware's files are here; returns each QEMU binary's version.

    :raise AccelError: a QEMU binary is missing (the message names its Debian package).
    :raise ImageError: firmware files are missing (the message names their package).
    """
    versions: dict[str, str] = {}
    for name in dict.fromkeys(spec.arch for spec in fleet):
        arch = ARCHES[name]
        qemu = qemu_for(arch, configured_qemu)
        versions[qemu] = qemu_version(qemu, arch.qemu_package)
    for arch_name, fw_name in dict.fromkeys((spec.arch, spec.firmware) for spec in fleet):
        fw = ARCHES[arch_name].firmware(fw_name)
        if missing := fw.missing():
            raise ImageError(f"firmware {fw.name} for {arch_name} guests needs {', '.join(map(str, missing))}: "
                             f"apt-get install {fw.package}")
    return versions


class Session:
    """Prepares and runs one soak; `run` returns the finished summary."""

    def __init__(self, options: RunOptions, console: Console) -> None:
        self.options = options
        self.profile = options.profile
        self.console = console
        self.run_dir = RunDir(options.run_dir)
        self.run_id = uuid.uuid4().hex[:12]
        self.placement = options.placement or Placement(Shard(), 0, socket.gethostname(), "")
        self.fleet = select_fleet(self.profile, options.only_vms, self.placement.shard)
        self.accel: AccelChoice | None = None
        self.images: dict[str, BootImage] = {}
        self.qemu_version = ""
        self.supervisor: Supervisor | None = None
        self.disk_reserve: Path | None = None
        """Space held for the end of a run that fills its disk (give it to soak.diskio.DiskAlarm)."""

    def prepare(self) -> None:
        """Everything that can fail before a guest starts (soak.preflight: memory, disk, faults).

        :raise AccelError: no QEMU, or KVM demanded but unusable.
        :raise CapacityError: the fleet needs more memory or disk than this host has.
        :raise ImageError: no guest image.
        :raise ProfileError: a guest fault the image cannot provoke.
        :raise UsageError: the run directory cannot be created.
        """
        versions = check_host_can_boot(self.fleet, self.profile.run.qemu)
        self.qemu_version = versions.get(self.profile.run.qemu) or next(iter(versions.values()), "")
        version = ", ".join(f"{v} ({q})" for q, v in versions.items()) if len(versions) > 1 else self.qemu_version
        self.accel = choose_accel(self.profile.run.accel)
        if self.accel.warning:
            self.console.print(f"[yellow]warning:[/] {self.accel.warning}", highlight=False)
            self.console.print(f"QEMU {version}, accel {self.accel.accel}", highlight=False)
        else:
            self.console.print(f"QEMU {version}, accel {self.accel.accel}: {self.accel.reason}", highlight=False)
        source = str(self.options.profile_path)
        try:
            facts = host_facts(self.run_dir.root)
        except OSError as exc:
            raise UsageError(f"run directory {self.run_dir.root}: {exc.strerror or exc}") from exc
        check_memory(source, self.profile, self.fleet, facts, self.accel.accel)
        check_disk(source, self.profile, self.fleet, facts, self.run_dir.root)
        check_devices(source, self.fleet, root=os.geteuid() == 0)
        estimate = estimate_disk(self.profile, self.fleet)
        self.console.print(f"disk: {estimate.describe(len(self.fleet))}; {format_bytes(facts.disk_free)} free",
                           highlight=False)
        self.images = resolve_images(self.fleet, lambda line: self.console.print(f"image: {line}", highlight=False))
        check_guest_faults(source, self.profile, self.images)
        check_initrd_fits(source, self.fleet, {group: image.initrd.stat().st_size
                                               for group, image in self.images.items() if image.initrd})
        try:
            self.run_dir.create()
            shutil.copyfile(self.options.profile_path, self.run_dir.root / "profile.toml")
        except OSError as exc:
            raise UsageError(f"cannot write the run directory {self.run_dir.root}: {exc.strerror or exc}") from exc
        self.disk_reserve = self.run_dir.make_reserve()

    def soak_command(self, spec: VmSpec) -> str:
        return shlex.join([
            "soak", "run", str(self.options.profile_path.resolve()), "--seed", str(self.profile.run.seed),
            "--vm", spec.name,
        ])

    async def run(self) -> Summary:
        """Run the fleet to its deadline; always leaves a finished journal and a summary."""
        if self.accel is None:
            self.prepare()
        assert self.accel is not None
        journal = Journal(self.run_dir.journal)
        model = RunModel()  # the live run's fold: the live view shows it, RunFinished's verdict is its
        live = LiveView(self.console, model)
        recorder = Recorder([model, journal, *self.options.observers, live])
        host = Host(qemu=self.profile.run.qemu, accel=self.accel.accel, tsc_khz=host_tsc_khz())
        with QemuLauncher.open(images=self.images, host=host, run_dir=self.run_dir,
                               heartbeat_interval=self.profile.watch.heartbeat_interval,
                               qmp_timeout=self.profile.watch.qmp_timeout,
                               cores=self.profile.run.qemu_cores) as launcher:
            supervisor = self.supervisor = Supervisor(
                self.profile, self.fleet, self.run_dir, recorder, launcher, self.soak_command)
            try:
                await self._supervise(supervisor, recorder, journal, live, model)
            except* Exception as group:  # a bug in soak: keep the evidence, say so, exit 3
                log.error("soak failed", exc_info=group)
                self._report_crash(group)
        return self.finish_summary()

    async def _supervise(self, supervisor: Supervisor, recorder: Recorder, journal: Journal, live: LiveView,
                         model: RunModel) -> None:
        """The fleet, the journal writer and the live view in one task group; RunFinished always."""
        live_stop = asyncio.Event()
        alarm = supervisor.disk_alarm = DiskAlarm(recorder.emit, supervisor.request_stop, reserve=self.disk_reserve)
        journal.on_write_error = alarm.trip

        async def guarded(part: Coroutine[Any, Any, None], name: str, *, essential: bool) -> None:
            try:
                await part
            except Exception as exc:  # soak's own part failed: not a signal, not the guests' doing
                log.error("%s failed", name, exc_info=exc)
                self._report_crash(exc)
                if essential:
                    supervisor.request_stop("error")

        async with asyncio.TaskGroup() as tg:  # the journal writer and the live view end with the run
            tg.create_task(guarded(journal.writer(), "the journal writer", essential=True))
            tg.create_task(guarded(live.show(live_stop), "the live view", essential=False))
            disk_watch = tg.create_task(guarded(watch_free_disk(
                self.run_dir.root, self.profile.run.min_free_disk.of,
                disk_low_stopper(recorder.emit, supervisor.request_stop)), "the free-disk watch", essential=False))
            recorder.emit(self._run_started())
            reason = "error"
            try:
                reason = (await supervisor.run(self.profile.run.duration)).reason
            except asyncio.CancelledError:
                # a second Ctrl-C: the runners killed their guests on the way out; finish the record
                reason = "signal"
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
            finally:
                disk_watch.cancel()
                live_stop.set()
                recorder.emit(run_finished(model, reason))
                journal.close()

    def _report_crash(self, exc: BaseException) -> None:
        path = self.run_dir.root / "soak-error.txt"
        with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as f:
            f.write("".join(traceback.format_exception(exc)))
        self.console.print(f"[red]soak itself failed[/]: see {path}")

    def _run_started(self) -> ev.RunStarted:
        assert self.accel is not None
        return ev.RunStarted(
            run_id=self.run_id,
            profile=self.profile.run.name,
            profile_path=str(self.options.profile_path),
            seed=self.profile.run.seed,
            accel=self.accel.accel,
            accel_reason=self.accel.reason,
            version=__version__,
            qemu_version=self.qemu_version,
            duration_s=self.profile.run.duration,
            command=self.options.command,
            vms=[
                ev.VmInfo(name=s.name, group=s.group, vcpus=s.vcpus, memory_mib=s.memory_mib,
                          machine=s.machine, image=self.images[s.group].label, arch=s.arch,
                          firmware=s.firmware, expect=list(s.expect),
                          tolerate=list(s.tolerate), expect_within_s=s.expect_within_s)
                for s in self.fleet
            ],
            **_placement_fields(self.placement, self.profile),
        )

    def finish_summary(self) -> Summary:
        """Rebuild the summary from the journal (the one source of truth) and save it."""
        summary = load_summary(self.run_dir.journal)
        for problem in write_summary_files(summary, self.run_dir.root):
            self.console.print(f"[yellow]warning:[/] {problem}", highlight=False)
        return summary


def _placement_fields(placement: Placement, profile: Profile) -> dict[str, Any]:
    """The RunStarted fields that place this run among the shards of its run group."""
    return {
        "host": placement.host, "shard": placement.shard.index, "shards": placement.shard.count,
        "fleet_size": len(expand_fleet(profile)), "profile_hash": profile_hash(profile),
        "run_group": placement.run_group, "attempt": placement.attempt,
        "engine": placement.engine, "engine_job": placement.engine_job,
    }


def write_summary_files(summary: Summary, root: Path, statuses: Statuses | None = None,
                        fail_on: str = "any") -> list[str]:
    """``summary.json`` and ``summary.txt`` next to the journal, each on its own (with the
    failures' statuses in the history, once ``soak run`` has recorded the run).

    The disk reserve (soak.diskio.make_reserve) is released first: the summary
    is the last thing a run writes. Each file is written whole or not at all
    (a temporary file, then a rename), and one the disk refuses does not keep
    the other from being tried; the printed summary never depends on either.

    :return: one line per file that could not be written (empty when both were).
    """
    release_reserve(root / RESERVE_NAME)
    text = io.StringIO()
    render_summary(summary, Console(file=text, width=160, color_system=None), root, statuses=statuses,
                   fail_on=fail_on)
    problems: list[str] = []
    for name, content in (("summary.json", json.dumps(summary.to_json(statuses, fail_on), indent=2) + "\n"),
                          ("summary.txt", text.getvalue())):
        target = root / name
        partial = target.with_name(f".{name}.partial")
        try:
            partial.write_text(content, encoding="utf-8")
            partial.replace(target)
        except OSError as exc:
            problems.append(f"cannot write {target}: {exc.strerror or exc} "
                            f"(soak summary {root} rebuilds it from the journal)")
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
    return problems
