"""Running soak's supervisor on a virtual clock, with fake machines.

`VirtualClockLoop` is an asyncio loop whose clock jumps straight to the next
timer instead of sleeping: a 20 s hang timeout passes in microseconds, and the
order of events is exactly the order of their deadlines. Real I/O still works
(it is polled without blocking); a test that waits on I/O that never comes
blocks, and pytest-timeout ends it.
"""

from __future__ import annotations

import asyncio
import selectors
import textwrap
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from soak import events as ev
from soak.machine.fake import FakeLauncher
from soak.profile import Profile, expand_fleet, validate_profile
from soak.recorder import Recorder
from soak.rundir import RunDir
from soak.supervisor import Supervisor

T = TypeVar("T")


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__(selectors.DefaultSelector())
        self._virtual_now = 0.0
        real_select = self._selector.select  # type: ignore[attr-defined]

        def select(timeout: float | None = None) -> list[Any]:
            ready = real_select(0)
            if ready or timeout == 0:
                return list(ready)
            if timeout is None:
                return list(real_select(None))
            self._virtual_now += timeout
            return []

        self._selector.select = select  # type: ignore[attr-defined]

    def time(self) -> float:
        return self._virtual_now


def run_virtual(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    loop = VirtualClockLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


class Probe:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def observe(self, event: ev.Event) -> None:
        self.events.append(event)

    def of(self, cls: type[T], vm: str | None = None) -> list[T]:
        return [e for e in self.events if isinstance(e, cls) and (vm is None or getattr(e, "vm", None) == vm)]


def fake_profile(body: str, *, duration: str = "5m", hang_timeout: str = "10s") -> Profile:
    text = f"""
        [run]
        name = "fake"
        duration = "{duration}"
        metrics_listen = ""

        [watch]
        boot_timeout = "30s"
        heartbeat_interval = "1s"
        hang_timeout = "{hang_timeout}"
        console_grace = "3s"
        qmp_timeout = "2s"
        shutdown_timeout = "5s"
    """
    import tomllib

    return validate_profile(tomllib.loads(textwrap.dedent(text) + textwrap.dedent(body)), "test.toml")


@dataclass
class FleetRun:
    probe: Probe
    launcher: FakeLauncher
    reason: str
    ended_at: float

    def failures(self, vm: str | None = None) -> list[ev.Failure]:
        return self.probe.of(ev.Failure, vm)

    def titles(self, vm: str | None = None) -> list[tuple[str, str]]:
        return [(f.kind.value, f.title) for f in self.failures(vm)]


def run_fleet(profile: Profile, launcher: FakeLauncher, tmp_path: Path,
              during: Callable[[Supervisor], Coroutine[Any, Any, None]] | None = None) -> FleetRun:
    """Run the profile's fleet of fake machines to its deadline (or until ``during`` stops it).

    The supervisor runs in a task named ``supervise``, which ``during`` may cancel.
    """
    probe = Probe()
    launcher.qmp_timeout = profile.watch.qmp_timeout

    async def main() -> FleetRun:
        run_dir = RunDir(tmp_path / "run")
        run_dir.create()
        supervisor = Supervisor(profile, expand_fleet(profile), run_dir, Recorder([probe]), launcher,
                                lambda spec: f"soak run fake.toml --vm {spec.name}")
        task = asyncio.create_task(supervisor.run(profile.run.duration), name="supervise")
        helper = asyncio.create_task(during(supervisor)) if during is not None else None
        try:
            reason = (await task).reason
        except asyncio.CancelledError:  # the test cancelled it (a second Ctrl-C)
            reason = "cancelled"
        if helper is not None:
            await helper
        return FleetRun(probe, launcher, reason, asyncio.get_running_loop().time())

    fleet_run = run_virtual(main)
    assert all(m.returncode is not None for m in launcher.launched), "a machine outlived its run"
    return fleet_run
