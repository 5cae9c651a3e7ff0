"""A live migration of a VM's guest to a new QEMU process on this host (the ``migrate`` fault).

The destination is launched with the VM's own configuration (plus ``-incoming``;
its sockets are its own, disks are shared by path) and adopted by the boot at
once, so it never outlives the boot whatever happens. The source migrates to it
(``live``: while the guest runs; ``paused``: stopped first). On success the boot
goes on with the destination (`BootRun.replace_machine`): the VM keeps its name,
console log, agent conversation, metrics and journal. A migration that fails or
times out is a ``migration-failure`` finding with QEMU's words; the source keeps
the guest when it can, else the boot fails. A source that dies meanwhile is its
own failure (its exit watcher records it), never a migration failure on top.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from soak import events as ev
from soak.detect.migration import migration_verdict
from soak.detect.verdict import Verdict
from soak.errors import AgentError, LaunchError, MigrationError, QMPError
from soak.faults.inject import FaultError
from soak.faults.settings import FaultSettings
from soak.guest.watchers import QmpWatch
from soak.kinds import Kind
from soak.machine import Machine, MigrationStats
from soak.vm.process import describe_exit

if TYPE_CHECKING:
    from soak.guest.bootrun import BootRun

DEST_EXIT_S = 2.0
"""After a failed migration, how long the destination may take to exit (its exit names the cause)."""
MISMATCH_MIB = 64
"""``mismatch = "memory"``: the destination gets this much more memory than the source."""


async def migrate(run: BootRun, settings: FaultSettings, seq: int) -> str:
    """Migrate the boot's guest; returns what happened (the fault's detail).

    :raise FaultError: the destination could not be started (soak's or the host's problem).
    """
    spec = run.vm.spec
    if settings.mismatch == "memory":
        spec = spec.model_copy(update={"memory_mib": spec.memory_mib + MISMATCH_MIB})
    source = run.machine
    try:
        dest = await run.vm.launcher.launch(spec, run.boot.number, incoming=True)
    except LaunchError as exc:
        raise FaultError(f"the migration's destination did not start: {exc}") from exc
    run.adopt(dest)
    moved = False
    try:
        qmp = QmpWatch(run, dest)
        if not await qmp.connect():
            raise FaultError("no QMP on the migration's destination")
        if dest.has_agent:  # listening before the switch: nothing the guest says right after it is lost
            try:
                await dest.connect_agent(timeout=run.watch.qmp_timeout, resume=source.agent)
            except AgentError as exc:
                raise FaultError(f"no agent channel on the migration's destination: {exc}") from exc
        uri = await dest.accept_migration()
        try:
            stats = await source.migrate_to(uri, paused=settings.mode == "paused", timeout=settings.timeout,
                                            bandwidth=settings.bandwidth)
        except MigrationError as exc:
            if not run.boot.watching:  # the boot ended meanwhile (the run stops): soak broke it, no finding
                return f"{settings.mode} migration abandoned: the boot ended"
            await _failed(run, source, dest, settings, seq, exc)
            return f"{settings.mode} migration failed: {exc.qemu_error or exc}"
        if not run.boot.watching:
            return f"{settings.mode} migration abandoned: the boot ended"
        if settings.mode == "paused" and dest.qmp is not None:
            await dest.qmp.execute("cont")
        await run.replace_machine(dest, qmp)
        moved = True
        _journal(run, settings, seq, stats, dest)
        return (f"{settings.mode} migration to pid {dest.pid} in {stats.total_s:.2f}s, "
                f"downtime {stats.downtime_s * 1000:.0f} ms")
    except QMPError as exc:
        if source.returncode is not None or not run.boot.alive:
            return f"{settings.mode} migration ended with its VM: {exc}"  # the crash (or the stop) says it all
        raise FaultError(f"migration: {exc}") from exc
    finally:
        if not moved:
            await dest.kill()
            await dest.close()
            run.release(dest)


def _journal(run: BootRun, settings: FaultSettings, seq: int, stats: MigrationStats, dest: Machine) -> None:
    run.emit(ev.Migrated(vm=run.vm.spec.name, seq=seq, mode=settings.mode, ok=True, total_s=round(stats.total_s, 3),
                         downtime_s=round(stats.downtime_s, 4), transferred_bytes=stats.transferred_bytes,
                         dirty_pages_rate=stats.dirty_pages_rate, pid=dest.pid))


async def _failed(run: BootRun, source: Machine, dest: Machine, settings: FaultSettings, seq: int,
                  exc: MigrationError) -> None:
    """Journal and record the failure; give the guest back to the source, or fail the boot."""
    with contextlib.suppress(TimeoutError):  # a destination that refused the state exits right away
        async with asyncio.timeout(DEST_EXIT_S):
            await dest.wait()
    dest_exit = describe_exit(dest.returncode)[0] if dest.returncode is not None else None
    timed_out = exc.qemu_error.startswith("status ")
    run.emit(ev.Migrated(vm=run.vm.spec.name, seq=seq, mode=settings.mode, ok=False, pid=source.pid,
                         error=str(exc)[:500]))
    await run.record(migration_verdict(exc.qemu_error, timed_out=timed_out, destination_exit=dest_exit),
                     "migration")
    if source.qmp is not None and source.returncode is None:
        with contextlib.suppress(QMPError):
            if await source.qmp.status() != "running":
                await source.qmp.execute("cont")  # a paused or half-switched source takes the guest back
            if await source.qmp.status() == "running":
                return
    if source.returncode is None:  # neither QEMU runs the guest any more
        await run.fail(Verdict(Kind.MIGRATION_FAILURE, "migration failed: the guest is lost",
                               message=f"the source could not continue after: {exc}"), "migration")
