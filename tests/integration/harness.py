"""Running real soaks inside a test: a profile on disk, a Session, and an event probe.

The probe is an observer like the journal: tests wait on the events a run
emits (never on sleeps), with a deadline, and read the journal afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
from rich.console import Console

from soak import events as ev
from soak.guest import GuestRunner
from soak.profile import load_profile
from soak.session import RunOptions, Session
from soak.summary import Summary


class Probe:
    """Collects every event; `wait` returns once a predicate holds for enough of them."""

    def __init__(self) -> None:
        self.events: list[ev.Event] = []
        self._changed = asyncio.Event()

    def observe(self, event: ev.Event) -> None:
        self.events.append(event)
        self._changed.set()

    def matching(self, predicate: Callable[[ev.Event], bool]) -> list[ev.Event]:
        return [e for e in self.events if predicate(e)]

    async def wait(self, predicate: Callable[[ev.Event], bool], *, count: int = 1, timeout: float = 90.0) -> list[ev.Event]:
        async with asyncio.timeout(timeout):
            while len(found := self.matching(predicate)) < count:
                self._changed.clear()
                await self._changed.wait()
        return found


def write_profile(path: Path, body: str, *, duration: str = "10m", hang_timeout: str = "12s") -> Path:
    """A test profile: fast watch settings, no restarts unless the body says otherwise."""
    header = f"""
        [run]
        name = "test"
        duration = "{duration}"
        accel = "tcg"
        metrics_listen = ""
        max_parallel_boots = 2

        [watch]
        boot_timeout = "120s"
        heartbeat_interval = "1s"
        hang_timeout = "{hang_timeout}"
        console_grace = "3s"
        qmp_timeout = "3s"
        shutdown_timeout = "10s"
    """
    path.write_text(textwrap.dedent(header) + textwrap.dedent(body))
    return path


@dataclass
class LiveRun:
    session: Session
    probe: Probe
    task: asyncio.Task[Summary]

    def stop(self) -> None:
        if self.session.supervisor is not None:
            self.session.supervisor.request_stop("signal")

    def runner(self, vm: str) -> GuestRunner:
        assert self.session.supervisor is not None
        return next(r for r in self.session.supervisor.runners if r.spec.name == vm)

    def qemu_pid(self, vm: str) -> int:
        machine = self.runner(vm).machine
        assert machine is not None, f"{vm} has no running boot"
        return machine.pid


@contextlib.asynccontextmanager
async def live_run(profile_path: Path, run_dir: Path) -> AsyncIterator[LiveRun]:
    """A soak running in this event loop; stopped (and its QEMUs reaped) on exit."""
    probe = Probe()
    options = RunOptions(profile_path=profile_path, profile=load_profile(profile_path), run_dir=run_dir,
                         observers=[probe], command=["pytest"])
    session = Session(options, Console(quiet=True))
    await asyncio.to_thread(session.prepare)
    task = asyncio.create_task(session.run())
    run = LiveRun(session, probe, task)
    try:
        yield run
    finally:
        run.stop()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(60):
                await asyncio.shield(task)
        assert not qemu_children(), "a QEMU outlived its run"


def qemu_children() -> list[psutil.Process]:
    """QEMU processes started by this test process that are still alive."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "qemu" in child.name() or (child.name().startswith("soak-") and child.status() != psutil.STATUS_ZOMBIE):
                alive.append(child)
        except psutil.Error:
            continue
    return alive
