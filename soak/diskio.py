"""Writing the run directory without stalling the event loop, and disk trouble reported once.

`WriterThread` runs file jobs in order on one daemon thread. The event loop
only appends to a queue (a few microseconds), so a disk that stalls, for a
second or for ever, stalls the journal or one console, never the watchers of
every guest. The queue is bounded in bytes: a job that would overflow it is
refused (the caller counts what it drops), unless it is *forced* (records that
must never be dropped; their owner bounds them). The thread is a daemon: a
write stuck in the kernel cannot keep soak from exiting.

What SIGKILL of soak can lose: only jobs still queued. A job's ``os.write``
hands the bytes to the kernel, which keeps them whatever happens to soak; the
thread wakes within microseconds, so the queue is empty except during a burst
or a disk stall (see bench/console.py for the figures).

`DiskAlarm` is the run's one reaction to a directory it can no longer write
(full, read-only, failing): one `InfraProblem`, space released from a reserve
file so the journal's last records and the summary still fit, and a request to
stop the run cleanly. `watch_free_disk` stops the run *before* that happens,
when free space falls under ``run.min_free_disk``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import errno
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from soak import events as ev
from soak.units import format_bytes

log = logging.getLogger(__name__)

T = TypeVar("T")

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
"""The directory takes no more writes: the run cannot go on recording."""

RESERVE_NAME = ".soak-reserve"


def write_problem(what: str, exc: OSError) -> tuple[str, str]:
    """The `InfraProblem` word and one-line message for a failed write of ``what``."""
    problem = "disk-full" if exc.errno in FULL_ERRNOS else "disk-error"
    reason = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    return problem, f"cannot write {what}{where}: {reason}"


class WriterThread:
    """One daemon thread running submitted jobs in order; the queue is bounded in bytes."""

    def __init__(self, name: str, *, max_pending_bytes: int) -> None:
        self.name = name
        self.max_pending_bytes = max_pending_bytes
        self.pending_bytes = 0
        self._jobs: collections.deque[tuple[Callable[[], None], int]] = collections.deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        if not self._thread.is_alive() and not self._stopping:
            self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, job: Callable[[], None], size: int = 0, *, force: bool = False) -> bool:
        """Queue ``job``; False (not queued) when ``size`` more bytes would overflow the queue."""
        with self._wake:
            if self._stopping:
                return False
            if not force and self.pending_bytes + size > self.max_pending_bytes:
                return False
            self.pending_bytes += size
            self._jobs.append((job, size))
            self._wake.notify()
        return True

    def call(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``fn`` on the thread after every job queued before; its result as a future."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # handed to the caller, who decides
                    future.set_exception(exc)

        if not self.submit(job, force=True):
            future.set_exception(RuntimeError(f"{self.name}: writer thread stopped"))
        return future

    async def run_after_pending(self, fn: Callable[[], T], timeout: float) -> T:
        """`call` from the event loop, waiting at most ``timeout`` seconds.

        :raise TimeoutError: the disk did not get through the queue in time.
        """
        async with asyncio.timeout(timeout):
            return await asyncio.wrap_future(self.call(fn))

    def stop(self) -> None:
        """No more jobs; the thread finishes the queued ones, then ends."""
        with self._wake:
            self._stopping = True
            self._wake.notify()

    def join(self, timeout: float) -> bool:
        """Block until the thread ended (True) or ``timeout`` passed; for the very end of a run."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._jobs and not self._stopping:
                    self._wake.wait()
                if not self._jobs:
                    return
                job, size = self._jobs.popleft()
            try:
                job()
            except Exception:  # a bug in a job must not end the thread: later jobs still run
                log.exception("%s: a write job failed", self.name)
            finally:
                with self._wake:
                    self.pending_bytes -= size


class DiskAlarm:
    """The run directory's disk trouble, reported once: an InfraProblem, space freed, a clean stop.

    `trip` must be called on the event loop's thread (writers marshal their errors there).
    ``stop`` is the run's stop switch, e.g. ``RunControl.request_stop``.
    """

    def __init__(self, emit: Callable[[ev.Event], None], stop: Callable[[str], None],
                 reserve: Path | None = None) -> None:
        self.emit = emit
        self.stop = stop
        self.reserve = reserve
        self.problem: str | None = None

    @property
    def tripped(self) -> bool:
        return self.problem is not None

    def trip(self, problem: str, message: str, vm: str | None = None) -> None:
        if self.problem is not None:
            return
        self.problem = problem
        if self.reserve is not None:  # room for the journal's last records and the summary
            release_reserve(self.reserve)
        log.error("%s: %s", problem, message)
        self.emit(ev.InfraProblem(vm=vm, problem=problem, message=f"{message}; stopping the run"))
        self.stop(problem)

    def write_failed(self, what: str, exc: OSError, vm: str | None = None) -> None:
        """`trip` for a write of ``what`` that raised ``exc``."""
        self.trip(*write_problem(what, exc), vm=vm)


def make_reserve(directory: Path, size: int) -> Path | None:
    """A file holding ``size`` bytes of the disk for the end of a run that filled it (best effort)."""
    path = directory / RESERVE_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                os.write(fd, b"\0" * size)  # a file system without fallocate
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("no disk reserve in %s: %s", directory, exc.strerror or exc)
        path.unlink(missing_ok=True)
        return None
    return path


def release_reserve(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("cannot release the disk reserve %s: %s", path, exc.strerror or exc)


def free_bytes(path: Path) -> tuple[int, int]:
    """(free bytes for an unprivileged writer, total bytes) of the file system holding ``path``.

    :raise OSError: ``path`` cannot be examined.
    """
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


async def watch_free_disk(
    path: Path,
    floor_of: Callable[[int], int],
    on_low: Callable[[str], None],
    *,
    every_s: float = 5.0,
    stat: Callable[[Path], tuple[int, int]] = free_bytes,
) -> None:
    """Call ``on_low(message)`` once when free space at ``path`` falls under ``floor_of(total)``.

    One watcher per run, not per VM: a statvfs every few seconds costs nothing
    (a flood of 100 MB/s fills at most ``every_s`` x 100 MB between two looks).
    Returns after ``on_low``; cancel it to stop watching.
    """
    # statvfs can block on a dead network file system: keep it off the loop, on a daemon thread
    thread = WriterThread("soak free-disk watch", max_pending_bytes=0)
    thread.start()
    try:
        while True:
            try:
                free, total = await thread.run_after_pending(lambda: stat(path), timeout=every_s * 4)
            except (OSError, TimeoutError) as exc:
                log.warning("cannot check the free space of %s: %s", path, exc or "no answer")
            else:
                floor = floor_of(total)
                if free < floor:
                    on_low(f"{format_bytes(free)} free on the disk of {path}, under run.min_free_disk "
                           f"({format_bytes(floor)})")
                    return
            await asyncio.sleep(every_s)
    finally:
        thread.stop()


def disk_low_stopper(emit: Callable[[ev.Event], None], stop: Callable[[str], None]) -> Callable[[str], None]:
    """The ``on_low`` of `watch_free_disk` for a run: an InfraProblem ``disk-low``, then a clean stop."""

    def on_low(message: str) -> None:
        emit(ev.InfraProblem(problem="disk-low", message=f"{message}; stopping the run"))
        stop("disk-low")

    return on_low
