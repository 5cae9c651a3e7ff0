"""QEMU's guest agent as a soak `GuestAgent`: a full OS image watched and loaded without soak's /init.

A disk image that runs ``qemu-guest-agent`` (Debian, Ubuntu, Fedora, RHEL and
virtio-win for Windows ship it) answers commands on its virtio-serial channel
(`soak.vm.qgawire`). This module turns that conversation into the events and
commands the guest runner already speaks:

- **Hello**: ``guest-info`` (which commands the guest enabled: each one used is
  checked against it), ``guest-get-osinfo`` (kernel release),
  ``guest-get-cpustats`` (vCPUs online), ``/proc/meminfo`` and the boot id
  ``/proc/sys/kernel/random/boot_id`` read with ``guest-file-open``/``-read``,
  and whether ``stress-ng`` is installed.
- **Heartbeats**: the agent never speaks first, so soak asks: every heartbeat
  interval one ``guest-get-time`` (proof the guest's user space answers; unlike
  ``guest-ping`` it is not written to the guest's syslog) and, every
  `FIGURES_EVERY_S` where the guest allows file reads, ``/proc/uptime``,
  ``/proc/loadavg`` and ``/proc/meminfo`` through handles kept open (a seek and a
  read each, pipelined). This is the one per-VM timer in soak, and it is there
  because the agent does not push.
  A guest that stalls simply produces no heartbeat: the runner's watchdog
  decides what that means, as for soak's own agent.
- **Reboots**: a rebooted guest runs a new agent, which knows none of soak's
  file handles; and uptime going backwards says the same. Either way the boot
  id is read again, and a new one is a new `Hello`: a silent reboot is caught.
- **Jobs**: ``guest-exec`` starts the load (`JOB_WRAPPER`: its own session, so
  a stop reaches every stress-ng worker; output kept in ``/run/soak-qga`` and cut
  to 64 KiB in the guest); its status is polled with ``guest-exec-status`` at
  most every `JOB_POLL_S` while it runs, and its output arrives when it exits
  (the agent has no streaming). A guest without stress-ng runs `FALLBACK_LOAD`.
- **Faults and shutdown**: the user-space guest faults (``oom``,
  ``sysrq-crash``, ``corrupt`` through `run`) by ``guest-exec``; soak's kernel
  fault module is not in such an image. ``guest-shutdown`` powers off.

Every command has a deadline; after one is missed the channel is resynchronised
(`QgaChannel.sync`) before the next command.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import math
import shlex
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak import clock
from soak.errors import AgentError, AgentRefused
from soak.vm.agent import (
    AgentEvent,
    CommandResult,
    Disconnected,
    Heartbeat,
    Hello,
    JobExit,
    JobOutput,
)
from soak.vm.agentio import EventQueue, stop_task
from soak.vm.qgashell import (
    GUEST_FAULTS,
    JOB_WRAPPER,
    MAX_JOB_LINES,
    STOP_JOB,
    bounded_lines,
    exit_of,
    fallback_load,
    first_float,
    parse_meminfo,
)
from soak.vm.qgawire import QgaChannel

PROTO = 0
"""`Hello.proto` of a QEMU guest agent (soak's own agent speaks 1)."""
CALL_TIMEOUT_S = 5.0
GREET_RETRY_S = 1.0
"""While the guest boots, how often the agent is asked again (a sync nobody answered is dropped)."""
FIGURES_EVERY_S = 5.0
"""The guest's uptime, load and memory are read this often (six more commands); the heartbeats in
between carry the last figures, uptime advanced by the host's clock. The journal keeps one
heartbeat a minute and the leak detector buckets memory, so 5 s loses nothing. Either way the
cost is within noise (bench/osdisk.py: a settled guest's QEMU spends 0.9-1.0 % of a core with a
beat a second, 1.0-1.4 % reading the figures at every beat, 1.2-1.3 % unwatched)."""
JOB_POLL_S = 2.0
"""Each running job's status is asked at most this often (each ask is a line in the guest's syslog)."""
RUN_POLL_S = 0.25
RUN_GRACE_S = 5.0
SHUTDOWN_ANSWER_S = 3.0
"""How long guest-shutdown may take to fail (qemu-ga answers then; it never answers success)."""
FILE_READ_BYTES = 64 * 1024
UPTIME, LOADAVG, MEMINFO, BOOT_ID = ("/proc/uptime", "/proc/loadavg", "/proc/meminfo",
                                     "/proc/sys/kernel/random/boot_id")
FILE_COMMANDS = frozenset({"guest-file-open", "guest-file-seek", "guest-file-read", "guest-file-close"})
EXEC_COMMANDS = frozenset({"guest-exec", "guest-exec-status"})
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Figures:
    """The guest's own figures as last read, and when (the host's clock)."""

    at: float
    uptime: float
    load1: float
    mem_free_kib: int
    mem_available_kib: int


@dataclass
class _Jobs:
    """Jobs running in the guest (soak's job id -> guest pid); shared by both sides of a migration.

    Only ``owner`` polls them, so an exit is reported once, on the channel the runner listens to.
    """

    pids: dict[int, int] = field(default_factory=dict)
    silent: set[int] = field(default_factory=set)
    """Helpers (a stop's SIGKILL timer) reaped without events: the agent keeps every exit until asked."""
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    owner: object | None = None


class QgaAgent:
    """The `soak.vm.channels.GuestAgent` of a guest running QEMU's guest agent.

    ``resume``: the agent of the same guest on the machine this one replaces (a migration): the
    conversation's state (hello, boot id, open files, jobs) moves over once this one is answered.
    """

    def __init__(self, socket_path: Path | str, *, name: str, heartbeat_s: float,
                 call_timeout: float = CALL_TIMEOUT_S, max_events: int = 2 * MAX_JOB_LINES + 64,
                 resume: QgaAgent | None = None) -> None:
        self.name = name
        self.channel = QgaChannel(socket_path, name=name)
        self.heartbeat_s = heartbeat_s
        self.call_timeout = call_timeout
        self.log = log.getChild(name)
        self._queue = EventQueue(max_events)
        self._task: asyncio.Task[None] | None = None
        self._synced = False
        self._resumed_from = resume
        self.hello: Hello | None = resume.hello if resume else None
        self.enabled: frozenset[str] = resume.enabled if resume else frozenset()
        """The commands the guest allows (``guest-info``)."""
        self._handles: dict[str, int] = resume._handles if resume else {}
        """Open guest files by path: a migration's two sides share them (they are the guest's)."""
        self._jobs: _Jobs = resume._jobs if resume else _Jobs()
        self._jobs.owner = self  # polled here from now on; a source's jobs wait for the switch
        self._seq: int = resume._seq if resume else 0
        self._figures: _Figures | None = resume._figures if resume else None
        self._next_poll = 0.0
        self._handed_over = False

    # ------------------------------------------------------------ connection

    async def connect(self, timeout: float) -> None:
        """Open the channel and start the heartbeat timer; the `Hello` follows once the guest's
        agent answers (it starts late in a booting OS).

        :raise AgentError: no channel within ``timeout``.
        """
        await self.channel.connect(timeout)
        self._task = asyncio.create_task(self._run(), name=f"qga-timer-{self.name}")

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)
        if self._resumed_from is not None and not self._handed_over and self._jobs.owner is self:
            self._jobs.owner = self._resumed_from  # the migration failed: the source keeps its jobs
        await self.channel.close()
        self._emit(Disconnected(clock.now(), self.channel.closed or "closed by the host"))

    def events(self) -> AsyncIterator[AgentEvent]:
        """Events in arrival order until `Disconnected` (one consumer)."""
        return self._queue.events()

    def _emit(self, event: AgentEvent) -> None:
        self._queue.put(event)

    # ------------------------------------------------------------ the timer

    async def _run(self) -> None:
        """Greet, then beat every interval; skipped ticks are not made up (no bursts after a stall)."""
        try:
            tick = clock.now()
            while self.channel.closed is None:
                interval = self.heartbeat_s
                try:
                    await self._once()
                except AgentRefused as exc:
                    self.log.info("guest agent refused: %s", exc)
                    self._handles.clear()  # a restarted agent knows none of them
                    self._synced = False
                except AgentError as exc:
                    if self.channel.closed is not None:
                        break
                    self.log.debug("guest agent: %s", exc)
                    self._synced = False
                    if self.hello is None:
                        interval = min(interval, GREET_RETRY_S)
                tick = max(tick + interval, clock.now())
                await asyncio.sleep(tick - clock.now())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave the runner waiting on a silent channel
            self.log.exception("guest agent timer failed")
            self._emit(Disconnected(clock.now(), f"guest agent timer failed: {exc!r}"))
        finally:
            if self.channel.closed is not None:
                self._emit(Disconnected(clock.now(), self.channel.closed))

    async def _once(self) -> None:
        resync = not self._synced
        if resync:
            await self.channel.sync(timeout=GREET_RETRY_S if self.hello is None else self.call_timeout)
            self._synced = True
        self._take_over()
        if self.hello is None:
            self._emit(await self._greet())
            return
        if resync or (self.files and not self._handles):  # it may have rebooted while it did not answer
            await self._check_boot()
        self._emit(await self._beat())
        if self._jobs.owner is self and self._jobs.pids and clock.now() >= self._next_poll:
            self._next_poll = clock.now() + max(JOB_POLL_S, self.heartbeat_s)
            await self._poll_jobs()

    def _take_over(self) -> None:
        """The first answer on a migration's destination: the source's agent stops beating."""
        old = self._resumed_from
        if old is not None and not self._handed_over:
            self._handed_over = True
            self._resumed_from = None  # a guest migrated every minute for days keeps no chain of agents
            if old._task is not None:
                old._task.cancel()

    async def _call(self, command: str, arguments: dict[str, Any] | None = None,
                    timeout: float | None = None) -> Any:
        if self.enabled and command not in self.enabled:
            raise AgentError(f"{self.name}: the guest's agent does not allow {command}")
        return await self.channel.call(command, arguments, timeout=timeout or self.call_timeout)

    # ------------------------------------------------------------ facts

    async def _greet(self) -> Hello:
        info = await self.channel.call("guest-info", timeout=self.call_timeout)
        self.enabled = frozenset(c["name"] for c in info.get("supported_commands", ()) if c.get("enabled"))
        release = ""
        if "guest-get-osinfo" in self.enabled:
            release = str((await self._call("guest-get-osinfo")).get("kernel-release", ""))
        nproc = 0
        if "guest-get-cpustats" in self.enabled:
            nproc = len(await self._call("guest-get-cpustats"))
        elif "guest-get-vcpus" in self.enabled:
            nproc = sum(1 for cpu in await self._call("guest-get-vcpus") if cpu.get("online"))
        boot_id = (await self._read_once(BOOT_ID)).strip()
        meminfo = parse_meminfo(await self._read_kept(MEMINFO)) if self.files else {}
        features = {"qga"} | ({"exec"} if self.exec else set()) | ({"files"} if self.files else set())
        if self.exec and (await self.run("command -v stress-ng", timeout=10)).rc == 0:
            features.add("stress-ng")
        if self.hello is None or boot_id != self.hello.boot_id:
            self._seq = 0
            self._figures = None
        self.hello = Hello(clock.now(), PROTO, release, nproc, meminfo.get("MemTotal", 0), boot_id,
                           f"qemu-ga {info.get('version', '?')}", frozenset(features), self.heartbeat_s)
        return self.hello

    async def _check_boot(self) -> None:
        """Read the boot id again; a new one is a new boot: greet again (the runner sees a Hello)."""
        assert self.hello is not None
        if (self.files or self.exec) and (await self._read_once(BOOT_ID)).strip() != self.hello.boot_id:
            self._handles.clear()
            self._emit(await self._greet())

    async def _beat(self) -> Heartbeat:
        await self._call("guest-get-time" if "guest-get-time" in self.enabled else "guest-ping")
        now = clock.now()
        if self.files and (self._figures is None or now - self._figures.at >= FIGURES_EVERY_S):
            texts = await asyncio.gather(*(self._read_kept(p) for p in (UPTIME, LOADAVG, MEMINFO)),
                                         return_exceptions=True)
            for text in texts:
                if isinstance(text, BaseException):
                    raise text
            up_text, load_text, mem_text = (str(t) for t in texts)
            memory = parse_meminfo(mem_text)
            figures = _Figures(clock.now(), first_float(up_text), first_float(load_text),
                               memory.get("MemFree", 0), memory.get("MemAvailable", 0))
            if self._figures is not None and figures.uptime < self._figures.uptime:  # rebooted in between
                self._figures = None
                await self._check_boot()
            self._figures = figures
        self._seq += 1
        f = self._figures
        if f is None:
            return Heartbeat(clock.now(), self._seq, 0.0, 0.0, 0, 0)
        return Heartbeat(clock.now(), self._seq, round(f.uptime + clock.now() - f.at, 2), f.load1, f.mem_free_kib,
                         f.mem_available_kib)

    @property
    def files(self) -> bool:
        return self.enabled >= FILE_COMMANDS

    @property
    def exec(self) -> bool:
        return self.enabled >= EXEC_COMMANDS

    async def _read_kept(self, path: str) -> str:
        """A /proc file through a handle kept open (a seek and a read): no syslog line per beat."""
        handle = self._handles.get(path)
        if handle is None:
            handle = self._handles[path] = int(await self._call("guest-file-open", {"path": path, "mode": "r"}))
        else:
            await self._call("guest-file-seek", {"handle": handle, "offset": 0, "whence": "set"})
        reply = await self._call("guest-file-read", {"handle": handle, "count": FILE_READ_BYTES})
        return base64.b64decode(reply.get("buf-b64", "")).decode("utf-8", "replace")

    async def _read_once(self, path: str) -> str:
        """A small file: open, read, close; through ``cat`` when only guest-exec is allowed."""
        if self.files:
            handle = int(await self._call("guest-file-open", {"path": path, "mode": "r"}))
            try:
                reply = await self._call("guest-file-read", {"handle": handle, "count": FILE_READ_BYTES})
            finally:
                with contextlib.suppress(AgentError):
                    await self._call("guest-file-close", {"handle": handle})
            return base64.b64decode(reply.get("buf-b64", "")).decode("utf-8", "replace")
        if self.exec:
            return (await self.run(f"cat {shlex.quote(path)}", timeout=10)).output
        return ""

    # ------------------------------------------------------------ commands

    async def request_hello(self, timeout: float = 10.0) -> Hello:
        """Read the guest's facts again; the `Hello` is also an event."""
        async with asyncio.timeout(timeout):
            if not self._synced:
                await self.channel.sync(timeout=self.call_timeout)
                self._synced = True
            hello = await self._greet()
        self._emit(hello)
        return hello

    async def _exec(self, script: str, *args: str) -> int:
        if self.enabled and not self.exec:  # before the hello, the agent itself says no
            raise AgentError(f"{self.name}: the guest's agent does not allow guest-exec")
        reply = await self._call("guest-exec", {"path": "/bin/sh", "arg": ["-c", script, *args],
                                                "capture-output": True})
        return int(reply["pid"])

    async def run(self, cmd: str, timeout: float) -> CommandResult:
        """Run a shell command in the guest; killed after ``timeout`` seconds (rc 137, as soak's agent).

        :raise AgentError: the guest does not allow guest-exec, or no answer in time.
        """
        secs = max(1, math.ceil(timeout))
        name = f"run{next(self._jobs.ids)}"
        pid = await self._exec(JOB_WRAPPER, cmd, name, f"timeout -s KILL {secs}")
        started = clock.now()
        while True:
            status = await self._call("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                rc, output, truncated = exit_of(status)
                return CommandResult(rc, output, truncated, timed_out=rc == 137 and clock.now() - started >= secs)
            if clock.now() - started > secs + RUN_GRACE_S:
                raise AgentError(f"{self.name}: `{cmd[:60]}` still running {secs + RUN_GRACE_S:.0f} s after start")
            await asyncio.sleep(RUN_POLL_S)

    async def start_job(self, cmd: str, timeout: float = 10.0) -> int:
        """Start a background job; its output and exit arrive as events once it ends."""
        job = next(self._jobs.ids)
        if "stress-ng" not in (self.hello.features if self.hello else ()) and cmd.startswith("stress-ng "):
            cmd = fallback_load(cmd)
        async with asyncio.timeout(timeout):
            self._jobs.pids[job] = await self._exec(JOB_WRAPPER, cmd, f"job{job}", "setsid")
        return job

    async def stop_job(self, job: int, timeout: float = 10.0) -> None:
        """SIGTERM to the job's process group (SIGKILL 5 s later); its `JobExit` follows as an event."""
        async with asyncio.timeout(timeout):
            helper = next(self._jobs.ids)
            self._jobs.pids[helper] = await self._exec(STOP_JOB, f"job{job}")
            self._jobs.silent.add(helper)

    async def _poll_jobs(self) -> None:
        for job, pid in list(self._jobs.pids.items()):
            try:
                status = await self._call("guest-exec-status", {"pid": pid})
            except AgentRefused:  # the agent forgot it (it restarted): the job died with it
                status = {"exited": True, "exitcode": 137, "out-data": ""}
            if not status.get("exited"):
                continue
            del self._jobs.pids[job]
            if job in self._jobs.silent:
                self._jobs.silent.discard(job)
                continue
            rc, output, truncated = exit_of(status)
            now = clock.now()
            for line in bounded_lines(output):
                self._emit(JobOutput(now, job, line))
            self._emit(JobExit(now, job, rc, truncated))

    async def sysrq(self, ch: str, timeout: float = 10.0) -> None:
        if len(ch) != 1 or not ch.isalnum():
            raise ValueError(f"sysrq takes one letter or digit, not {ch!r}")
        async with asyncio.timeout(timeout):
            await self._exec(f"sleep 0.2; echo {ch} >/proc/sysrq-trigger")

    async def poweroff(self, timeout: float = 10.0) -> None:
        """``guest-shutdown``: the agent answers only when it fails (QEMU's exit is the answer otherwise).

        :raise AgentRefused: the guest could not shut down (e.g. ``shutdown`` found no logind).
        """
        if "guest-shutdown" not in self.enabled and self.enabled:
            raise AgentError(f"{self.name}: the guest's agent does not allow guest-shutdown")
        try:
            await self.channel.call("guest-shutdown", {"mode": "powerdown"}, timeout=min(timeout, SHUTDOWN_ANSWER_S))
        except AgentRefused:
            raise
        except AgentError:
            return  # no answer within the wait (or QEMU already gone): it is shutting down

    async def fault(self, name: str, secs: int | None = None, timeout: float = 10.0) -> int:
        """Provoke one of `GUEST_FAULTS` as a job (its exit follows, if the guest survives).

        :raise AgentError: a fault only soak's agent can provoke (its kernel module), or no answer.
        """
        script = GUEST_FAULTS.get(name)
        if script is None:
            raise AgentError(f"{self.name}: fault {name!r} needs soak's agent and fault module; "
                             f"QEMU's guest agent can provoke {', '.join(sorted(GUEST_FAULTS))}")
        return await self.start_job(script, timeout)
