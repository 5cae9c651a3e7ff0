"""QEMU killed by the host's OOM killer is told apart from any other SIGKILL.

The real case: a QEMU booting the default image inside a memory cgroup capped
below what the guest touches (a cgroup of its own, removed afterwards; nothing
else is in it). The kernel kills it; `host_oom_killed` must find the kernel's
line for that pid, and nothing for a QEMU killed by ``kill -9``.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from soak.errors import ImageError
from soak.hostoom import _KILLED, _OOM_KILL, host_oom_killed, oom_baseline, wait_host_oom_kill
from soak.image import GuestImage, ensure_default_image
from soak.session import host_tsc_khz
from soak.vm.argv import QemuConfig, build_argv
from soak.vm.process import QemuProcess

CGROUP = Path("/sys/fs/cgroup")
LIMIT = 96 << 20
"""Below what a 256 MiB guest touches while the kernel unpacks its initramfs."""

# The kernel's lines for the real test below (host kernel 6.18, cgroup v1), and the global form.
KERNEL_LINES = [
    "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
    "oom_memcg=/process_api/3c666199f96fea253b04400aa9aff4f6/soak-oom-test-27212,"
    "task_memcg=/process_api/3c666199f96fea253b04400aa9aff4f6/soak-oom-test-27212,task=soak-oom,pid=27263,uid=0",
    "Memory cgroup out of memory: Killed process 27263 (soak-oom) total-vm:644804kB, anon-rss:97652kB,"
    " file-rss:33228kB, shmem-rss:0kB, UID:0 pgtables:404kB oom_score_adj:0",
    "Out of memory: Killed process 27263 (qemu-system-x86) total-vm:1187032kB, anon-rss:89012kB, file-rss:0kB,"
    " shmem-rss:0kB, UID:0 pgtables:440kB oom_score_adj:0",
]


def test_kernel_lines_name_the_pid() -> None:
    for line in KERNEL_LINES:
        match = _KILLED.search(line) or _OOM_KILL.search(line)
        assert match is not None and match["pid"] == "27263", line
    assert _KILLED.search("Killed process 27263 (sh) total-vm") is None  # not the OOM killer's words


def test_nothing_for_a_process_that_was_not_killed() -> None:
    assert host_oom_killed(os.getpid(), time.monotonic() - 3600, baseline=oom_baseline(os.getpid())) is None


def _memory_cgroup() -> Path:
    """A fresh memory cgroup: v2 under the root, else v1 under our own memory cgroup."""
    name = f"soak-oom-test-{os.getpid()}"
    controllers = CGROUP / "cgroup.controllers"
    if controllers.exists() and "memory" in controllers.read_text().split():
        path = CGROUP / name
        path.mkdir()
        (path / "memory.max").write_text(str(LIMIT))
        if (path / "memory.swap.max").exists():
            (path / "memory.swap.max").write_text("0")
        return path
    own = next(line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
               if "memory" in line.split(":")[1].split(","))
    path = CGROUP / "memory" / own.lstrip("/") / name
    path.mkdir()
    (path / "memory.limit_in_bytes").write_text(str(LIMIT))
    return path


@pytest.fixture
def cgroup() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("creating a memory cgroup needs root (CI runs as root)")
    path = _memory_cgroup()
    try:
        yield path
    finally:
        for _ in range(50):  # the killed QEMU leaves the cgroup once reaped
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.1)


@pytest.fixture(scope="module")
def image() -> GuestImage:
    try:
        return ensure_default_image()
    except ImageError as exc:
        pytest.skip(f"the default guest image cannot be built here: {exc}")


async def _qemu_in(cgroup: Path | None, image: GuestImage, work: Path) -> QemuProcess:
    config = QemuConfig(name="oom", memory_mib=256, kernel=image.kernel, initrd=image.initrd,
                        tsc_khz=host_tsc_khz(), qmp_socket=work / "qmp", agent_socket=work / "agent")
    argv = build_argv(config)
    if cgroup is not None:  # join the cgroup, then become QEMU (same pid)
        argv = ["sh", "-c", f"echo $$ > {shlex.quote(str(cgroup / 'cgroup.procs'))} && exec "
                + " ".join(shlex.quote(a) for a in argv)]
    qemu = await QemuProcess.spawn(argv, stderr_path=work / "stderr")
    asyncio.get_running_loop().create_task(_drain(qemu))
    return qemu


async def _drain(qemu: QemuProcess) -> None:
    while await qemu.console.read(65536):
        pass


@pytest.mark.qemu
@pytest.mark.timeout(240)
async def test_qemu_killed_by_the_oom_killer(cgroup: Path, image: GuestImage) -> None:
    since = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-t-", dir="/tmp") as work:
        qemu = await _qemu_in(cgroup, image, Path(work))
        try:
            code = await asyncio.wait_for(qemu.wait(), 180)
        finally:
            await qemu.kill()
    assert code == -signal.SIGKILL
    line = await wait_host_oom_kill(qemu.pid, since)
    assert line is not None and f"Killed process {qemu.pid} (" in line, line


@pytest.mark.qemu
@pytest.mark.timeout(120)
async def test_a_plain_kill_is_not_an_oom_kill(image: GuestImage) -> None:
    since = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-t-", dir="/tmp") as work:
        qemu = await _qemu_in(None, image, Path(work))
        baseline = oom_baseline(qemu.pid)
        await asyncio.sleep(1)
        os.kill(qemu.pid, signal.SIGKILL)
        assert await asyncio.wait_for(qemu.wait(), 60) == -signal.SIGKILL
    assert await wait_host_oom_kill(qemu.pid, since, baseline=baseline, deadline_s=0.5) is None
