"""Was QEMU killed by the host's OOM killer? Then the host ran out of memory, not the guest.

A SIGKILL that soak did not send is either someone's ``kill -9`` or the host
kernel's OOM killer. The kernel says which in its log::

    Out of memory: Killed process 4242 (qemu-system-x86) total-vm:1425772kB, anon-rss:...
    Memory cgroup out of memory: Killed process 4242 (qemu-system-x86) total-vm:...
    oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,...,task=qemu-system-x86,pid=4242,uid=0

`host_oom_killed` reads those lines from ``/dev/kmsg`` (or ``dmesg`` when that is
not readable) and matches the pid and the time. Where no log is readable, the
``oom_kill`` counters of QEMU's cgroup (v2 ``memory.events``, v1
``memory.oom_control``) or of the whole host (``/proc/vmstat``) are compared
with a `OomBaseline` taken when QEMU started. Every read has a deadline and
nothing here raises: an unreadable log is simply no evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
KMSG_SLACK_S = 2.0
"""Kernel timestamps and time.monotonic() are both time since boot; allow a little drift."""
_KILLED = re.compile(r"(?:Memory cgroup out of memory|Out of memory)[^:]*: Killed process (?P<pid>\d+) \(")
_OOM_KILL = re.compile(r"\boom-kill:.*[,:]pid=(?P<pid>\d+)\b")
_DMESG_TIME = re.compile(r"^\[\s*(?P<t>\d+\.\d+)\]\s?")


@dataclass(frozen=True, slots=True)
class OomBaseline:
    """OOM kill counters when QEMU started, for when the kernel log cannot be read."""

    cgroup_events: Path | None = None
    """QEMU's cgroup's ``memory.events`` (v2) or ``memory.oom_control`` (v1)."""
    cgroup_kills: int | None = None
    host_kills: int | None = None
    """``oom_kill`` of /proc/vmstat."""


def oom_baseline(pid: int) -> OomBaseline:
    """The counters of ``pid``'s memory cgroup and of the host; call it right after spawning QEMU."""
    events = _cgroup_events_file(pid)
    return OomBaseline(events, _counter(events, "oom_kill") if events else None,
                       _counter(Path("/proc/vmstat"), "oom_kill"))


def host_oom_killed(pid: int, since: float, *, baseline: OomBaseline | None = None,
                    deadline_s: float = 1.0) -> str | None:
    """The kernel's word that its OOM killer killed ``pid`` after ``since`` (a
    ``time.monotonic()``), or None when there is no such evidence.

    The kernel's own line when its log is readable; else a counter that moved since
    ``baseline`` (weaker: it says an OOM kill happened in QEMU's cgroup or on the host).
    """
    deadline = time.monotonic() + deadline_s
    lines = _kmsg_lines(since, deadline)
    if lines is None:
        lines = _dmesg_lines(since, deadline)
    if lines is not None:
        found = [line for line in lines if _names(line, pid)]
        return (next((ln for ln in found if _KILLED.search(ln)), None) or found[0]) if found else None
    if baseline is None:
        return None
    if baseline.cgroup_events is not None and baseline.cgroup_kills is not None:
        now = _counter(baseline.cgroup_events, "oom_kill")
        if now is not None and now > baseline.cgroup_kills:
            return (f"the kernel log is not readable, but QEMU's cgroup counted an OOM kill"
                    f" ({baseline.cgroup_events}: oom_kill {baseline.cgroup_kills} -> {now})")
    if baseline.host_kills is not None:
        now = _counter(Path("/proc/vmstat"), "oom_kill")
        if now is not None and now > baseline.host_kills:
            return (f"the kernel log is not readable, but the host's OOM killer ran"
                    f" (/proc/vmstat oom_kill {baseline.host_kills} -> {now})")
    return None


async def wait_host_oom_kill(pid: int, since: float, *, baseline: OomBaseline | None = None,
                             deadline_s: float = 2.0) -> str | None:
    """`host_oom_killed`, asked again for up to ``deadline_s`` (the kernel prints its line
    right after sending the kill, which may race with soak reaping QEMU)."""
    end = time.monotonic() + deadline_s
    while True:
        budget = max(0.1, min(1.0, end - time.monotonic()))
        found = await asyncio.to_thread(host_oom_killed, pid, since, baseline=baseline, deadline_s=budget)
        if found is not None or time.monotonic() + 0.25 >= end:
            return found
        await asyncio.sleep(0.25)


def _names(line: str, pid: int) -> bool:
    match = _KILLED.search(line) or _OOM_KILL.search(line)
    return match is not None and int(match["pid"]) == pid


def _kmsg_lines(since: float, deadline: float) -> list[str] | None:
    """Records of /dev/kmsg since ``since`` (their messages), or None when it cannot be read."""
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    lines: list[str] = []
    try:
        while time.monotonic() < deadline:
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                return lines  # the end of the buffer
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten while reading: go on from the next one
                    continue
                return lines if lines else None
            if not record:
                return lines
            head, _, message = record.decode("utf-8", "replace").partition(";")
            fields = head.split(",")
            with contextlib.suppress(IndexError, ValueError):
                if int(fields[2]) / 1e6 >= since - KMSG_SLACK_S:
                    lines.append(message.split("\n", 1)[0])
        return lines
    finally:
        os.close(fd)


def _dmesg_lines(since: float, deadline: float) -> list[str] | None:
    try:
        done = subprocess.run(["dmesg"], capture_output=True, text=True, errors="replace",
                              timeout=max(0.1, deadline - time.monotonic()))
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    lines = []
    for line in done.stdout.splitlines():
        match = _DMESG_TIME.match(line)
        if match is None or float(match["t"]) >= since - KMSG_SLACK_S:
            lines.append(_DMESG_TIME.sub("", line))
    return lines


def _cgroup_events_file(pid: int) -> Path | None:
    try:
        entries = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for entry in entries:
        hierarchy, controllers, path = [*entry.split(":", 2), "", ""][:3]
        rel = path.lstrip("/")
        if hierarchy == "0" and controllers == "":
            candidate = CGROUP_ROOT / rel / "memory.events"  # v2, unified at the root
            if not candidate.exists():
                candidate = CGROUP_ROOT / "unified" / rel / "memory.events"  # hybrid hosts
        elif "memory" in controllers.split(","):
            candidate = CGROUP_ROOT / "memory" / rel / "memory.oom_control"
        else:
            continue
        if candidate.exists():
            return candidate
    return None


def _counter(path: Path, name: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    except (OSError, ValueError):
        return None
    return None
