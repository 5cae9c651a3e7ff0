"""What the runner of one VM and the watchers of its boots share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from soak import events as ev
from soak.faults.driver import FaultDriver
from soak.guest.recording import FailureRecorder
from soak.machine import MachineLauncher
from soak.profile import VmSpec, WatchSettings


@dataclass
class RunControl:
    """The run's stop switch, shared by the supervisor and every runner."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = "deadline"
    """Why the run stops: ``deadline``, ``signal``, ``disk-full`` ..."""

    def request_stop(self, reason: str) -> None:
        if not self.stop.is_set():
            self.reason = reason
            self.stop.set()


@dataclass(frozen=True, slots=True)
class VmContext:
    """One VM, as each of its boots sees it."""

    spec: VmSpec
    watch: WatchSettings
    seed: int
    control: RunControl
    failures: FailureRecorder
    faults: FaultDriver
    launcher: MachineLauncher
    """Starts the machines of this VM: one per boot, and a migration's destination."""
    emit: Callable[[ev.Event], None]
    on_ready: Callable[[], None]
    """A boot became ready: wakes the fault timeline and anyone waiting for a ready boot."""
