"""The QEMU process: spawned so that it can never outlive soak.

QEMU is started from the event-loop thread with PR_SET_PDEATHSIG=SIGKILL: if
soak dies, even by SIGKILL, the kernel kills every QEMU it started (a worker
thread would not do: the signal fires when the *spawning thread* exits). Each
QEMU also gets its own session, so a Ctrl-C in the terminal reaches soak only,
and soak can stop its guests in order.

stdout is the guest's serial console (a pipe soak must drain); stderr goes
straight to a file, where it costs nothing and survives any crash of soak.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import signal
from pathlib import Path

import psutil

from soak.errors import LaunchError

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent(parent_pid: int, core_limit: int | None = None) -> None:
    """Runs in the child between fork and exec."""
    _libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    if core_limit is not None:  # soak.vm.coredump reads the core; the hard limit stays as it was
        hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
        soft = core_limit if hard == resource.RLIM_INFINITY else min(core_limit, hard)
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


class QemuProcess:
    """A running QEMU; `wait` returns its exit status, negative for a signal."""

    def __init__(self, process: asyncio.subprocess.Process, argv: list[str]) -> None:
        self._process = process
        self.argv = argv
        self.pid: int = process.pid
        stdout = process.stdout
        assert stdout is not None
        self.console: asyncio.StreamReader = stdout

    @classmethod
    async def spawn(cls, argv: list[str], *, stderr_path: Path, cwd: Path | None = None,
                    core_limit: int | None = None) -> QemuProcess:
        """Start QEMU; must be called from the event-loop thread.

        ``cwd`` (the VM's folder) is where a core dump lands with ``core_pattern = core``;
        ``core_limit`` is QEMU's RLIMIT_CORE in bytes (None: inherit soak's, often 0).

        :raise LaunchError: the binary cannot be executed.
        """
        parent = os.getpid()
        with open(stderr_path, "ab") as stderr:
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=stderr,
                    preexec_fn=lambda: _die_with_parent(parent, core_limit),
                    start_new_session=True,
                    cwd=cwd,
                    limit=1 << 20,
                )
            except OSError as exc:
                raise LaunchError(f"cannot start {argv[0]}: {exc}", argv=argv) from exc
        return cls(process, argv)

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def wait(self) -> int:
        return await self._process.wait()

    def send_signal(self, sig: int) -> None:
        """Signal QEMU unless it is already gone."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(sig)

    async def kill(self, timeout: float = 10.0) -> int | None:
        """SIGKILL (after SIGCONT, so a stopped QEMU dies too) and reap it."""
        self.send_signal(signal.SIGKILL)
        self.send_signal(signal.SIGCONT)
        try:
            async with asyncio.timeout(timeout):
                return await self._process.wait()
        except TimeoutError:
            return None

    def state(self) -> str:
        """The kernel's process state letter (R, S, T stopped, Z zombie ...), or "gone"."""
        try:
            return str(psutil.Process(self.pid).status())
        except psutil.Error:
            return "gone"


def describe_exit(code: int | None) -> tuple[str, str | None]:
    """A readable exit and the signal name, for titles: ("killed by SIGSEGV", "SIGSEGV")."""
    if code is None:
        return "still running", None
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}", name
    return f"exit code {code}", None
