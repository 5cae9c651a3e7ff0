"""The real machine: a QEMU process, its QMP monitor and soak's agent channel.

`QemuLauncher` turns a VM spec into a running `QemuMachine` for each boot:
it names the boot's host-side files (sockets in a short temporary directory,
disks in the VM's run directory), creates what must exist before QEMU starts
(a qcow2 for the snapshot fault, a full OS image's overlay: ``qemu-img`` run
asynchronously under a deadline), computes the configuration
(`soak.machine.config`) and spawns QEMU (`soak.vm.process`: it dies with soak).
The agent channel speaks what the image runs: soak's agent
(`soak.vm.agent.AgentClient`) or QEMU's guest agent (`soak.vm.qga.QgaAgent`).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

from soak import hostoom
from soak.arch import ARCHES
from soak.errors import AgentError, LaunchError, QMPError
from soak.firmware import vars_store
from soak.machine.base import Machine, MachineLauncher, MigrationStats, Postmortem, ProcessFigures
from soak.machine.config import BootFiles, BootImage, Host, machine_config
from soak.machine.diskfiles import (
    MOUNT_TIMEOUT_S,
    OVERLAY_NAME,
    TMPFS_SLACK_BYTES,
    create_overlay,
    create_qcow2,
    mount_tmpfs,
)
from soak.machine.migrate import migrate
from soak.profile import VmSpec
from soak.rundir import RunDir
from soak.vm import coredump, evidence
from soak.vm.agent import AgentClient
from soak.vm.argv import build_argv
from soak.vm.channels import GuestAgent
from soak.vm.console import read_tail
from soak.vm.process import QemuProcess
from soak.vm.qga import QgaAgent
from soak.vm.qmp import QmpEvent, QmpSession

"""Room on a VM's disk tmpfs beside its images' full size: qcow2's header and tables (1/256 of the size
is more than their 64 KiB clusters need)."""
RESUME_ID_GAP = 1000
"""A resumed agent conversation's first command id is this far past the old channel's last."""
CORE_SIGNALS = frozenset(int(s) for s in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGILL,
                                         signal.SIGFPE, signal.SIGTRAP, signal.SIGSYS, signal.SIGQUIT))
"""Signals whose default action dumps core."""
CorePolicy = Literal["backtrace", "keep", "off"]


class QemuMachine:
    """One QEMU process and the channels soak opened to it (see `soak.machine.base.Machine`)."""

    def __init__(self, name: str, process: QemuProcess, files: BootFiles, *, has_agent: bool,
                 stderr: StderrLog, qmp_timeout: float, cores: CorePolicy, vm_dir: Path,
                 agent_kind: str = "soak", heartbeat_interval: float = 1.0) -> None:
        self._name = name
        self._process = process
        self._files = files
        self._has_agent = has_agent
        self._agent_kind = agent_kind
        """``soak`` or ``qga``: which agent `connect_agent` talks to."""
        self._heartbeat_interval = heartbeat_interval
        self._stderr = stderr
        self._qmp_timeout = qmp_timeout
        self._cores = cores
        self._vm_dir = vm_dir
        self._spawned_mono = time.monotonic()  # compared with the kernel log's clock, not the loop's
        self._spawned_wall = time.time()
        self._oom_baseline = hostoom.oom_baseline(process.pid)
        self._qmp: QmpSession | None = None
        self._agent: AgentClient | QgaAgent | None = None
        try:
            self._ps: psutil.Process | None = psutil.Process(process.pid)
        except psutil.Error:
            self._ps = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def argv(self) -> list[str]:
        return self._process.argv

    @property
    def disk_images(self) -> tuple[Path, ...]:
        return self._files.disks

    @property
    def has_agent(self) -> bool:
        return self._has_agent

    @property
    def console(self) -> asyncio.StreamReader:
        return self._process.console

    @property
    def qmp(self) -> QmpSession | None:
        return self._qmp

    @property
    def agent(self) -> AgentClient | QgaAgent | None:
        return self._agent

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def connect_qmp(self, on_event: Callable[[QmpEvent], None], *, timeout: float) -> QmpSession:
        session = QmpSession(self._name, on_event, timeout=self._qmp_timeout)
        try:
            await session.connect(self._files.qmp_socket, timeout=timeout)
        except QMPError:
            await session.close()
            raise
        self._qmp = session
        return session

    async def connect_agent(self, *, timeout: float, resume: GuestAgent | None = None) -> AgentClient | QgaAgent:
        agent: AgentClient | QgaAgent
        if self._agent_kind == "qga":  # the image says which agent it runs
            agent = QgaAgent(self._files.agent_socket, name=self._name, heartbeat_s=self._heartbeat_interval,
                             call_timeout=self._qmp_timeout, resume=resume if isinstance(resume, QgaAgent) else None)
        else:
            # the old channel may still send a command or two until the switch: leave it room
            first_id = resume.last_id + RESUME_ID_GAP if isinstance(resume, AgentClient) else 1
            agent = AgentClient(self._files.agent_socket, name=self._name, first_id=first_id)
        try:
            await agent.connect(timeout=timeout)
        except AgentError:
            await agent.close()
            raise
        self._agent = agent
        return agent

    async def wait(self) -> int:
        return await self._process.wait()

    async def accept_migration(self) -> str:
        if self._qmp is None or self._files.migration_socket is None:
            raise QMPError(f"{self._name}: not a migration destination with QMP connected")
        uri = f"unix:{self._files.migration_socket}"
        await self._qmp.execute("migrate-incoming", {"uri": uri})
        return uri

    async def migrate_to(self, uri: str, *, paused: bool, timeout: float, bandwidth: int) -> MigrationStats:
        if self._qmp is None:
            raise QMPError(f"{self._name}: QMP is not connected")
        return await migrate(self._qmp, uri, paused=paused, timeout=timeout, bandwidth=bandwidth)

    def send_signal(self, sig: int) -> None:
        self._process.send_signal(sig)

    async def kill(self) -> int | None:
        return await self._process.kill()

    async def shutdown(self, *, gently: bool, step_timeout: float) -> None:
        """Guest poweroff through the agent, then QMP ``quit``, then SIGKILL.

        Each step waits up to ``step_timeout`` for QEMU to exit before the next.
        """
        if gently and self._agent is not None and await self._exits_after(self._agent.poweroff, step_timeout):
            return
        if self._qmp is not None and await self._exits_after(self._quit, step_timeout):
            return
        await self._process.kill()

    async def _exits_after(self, action: Callable[[], Awaitable[object]], timeout: float) -> bool:
        """Run one step of the ladder; True once QEMU has exited within ``timeout``."""
        if self.returncode is not None:
            return True
        try:
            async with asyncio.timeout(timeout):
                await action()
                await self._process.wait()
            return True
        except (TimeoutError, AgentError, QMPError):
            return False

    async def _quit(self) -> None:
        assert self._qmp is not None
        with contextlib.suppress(QMPError):  # QEMU may exit before it answers
            await self._qmp.execute("quit")

    async def close(self) -> None:
        agent, self._agent = self._agent, None
        if agent is not None:
            await agent.close()
        qmp, self._qmp = self._qmp, None
        if qmp is not None:
            await qmp.close()

    def process_state(self) -> str:
        return self._process.state()

    def figures(self) -> ProcessFigures | None:
        if self._ps is None or self.returncode is not None:
            return None
        try:
            with self._ps.oneshot():
                cpu = self._ps.cpu_times()
                return ProcessFigures(cpu_s=round(cpu.user + cpu.system, 3), rss_bytes=self._ps.memory_info().rss,
                                      threads=self._ps.num_threads(), fds=self._ps.num_fds())
        except psutil.Error:
            return None

    def thread_times(self) -> evidence.ThreadTimes | None:
        return evidence.thread_times(self.pid)

    def stderr_tail(self, limit: int) -> str:
        return self._stderr.tail(limit)

    async def postmortem(self) -> Postmortem:
        """The host's OOM killer (from its kernel log or cgroup counters), then QEMU's core."""
        oom = await hostoom.wait_host_oom_kill(self.pid, self._spawned_mono, baseline=self._oom_baseline)
        if oom is not None:
            return Postmortem(host_oom=oom)
        code = self.returncode
        if self._cores == "off" or code is None or -code not in CORE_SIGNALS:
            return Postmortem()
        core = await coredump.collect_core(self._vm_dir, self.pid, self.argv[0], coredump.GDB_DEADLINE_S,
                                           keep=self._cores == "keep", since=self._spawned_wall)
        return Postmortem(backtrace=core.report, files=core.files, note=core.note)


class QemuLauncher:
    """Launches real QEMU guests; `open` gives one for the duration of a run."""

    def __init__(self, *, images: Mapping[str, BootImage], host: Host, run_dir: RunDir, socket_dir: Path,
                 heartbeat_interval: float, qmp_timeout: float, cores: CorePolicy = "backtrace") -> None:
        self.images = images
        self.host = host
        self.run_dir = run_dir
        self.socket_dir = socket_dir
        self.heartbeat_interval = heartbeat_interval
        self.qmp_timeout = qmp_timeout
        self.cores: CorePolicy = cores
        self._machines: dict[str, int] = {}
        """Machines launched per VM: numbers their sockets."""
        self._tmpfs: dict[str, Path] = {}
        """The VMs' own tmpfs mounts for ``backing = "tmpfs"`` disks, unmounted when the launcher closes."""

    @classmethod
    @contextlib.contextmanager
    def open(cls, *, images: Mapping[str, BootImage], host: Host, run_dir: RunDir, heartbeat_interval: float,
             qmp_timeout: float, cores: CorePolicy = "backtrace") -> Iterator[QemuLauncher]:
        """A launcher whose socket directory (unix socket paths must stay short) is removed at the end."""
        socket_dir = Path(tempfile.mkdtemp(prefix="soak-"))
        launcher = cls(images=images, host=host, run_dir=run_dir, socket_dir=socket_dir,
                       heartbeat_interval=heartbeat_interval, qmp_timeout=qmp_timeout, cores=cores)
        try:
            yield launcher
        finally:
            launcher.unmount_all()
            shutil.rmtree(socket_dir, ignore_errors=True)

    def disk_dir(self, spec: VmSpec, *, tmpfs: bool) -> Path:
        """Where the VM's disk images live: its run folder, or its own tmpfs (under the socket dir, so a
        crashed soak leaves no mount inside a run directory)."""
        return self.socket_dir / f"{spec.name}.disks" if tmpfs else self.run_dir.vm_dir(spec.name)

    def unmount_all(self) -> None:
        """Unmount every VM's disk tmpfs (lazily: a QEMU still dying never makes this fail)."""
        for mount in self._tmpfs.values():
            subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True,
                           timeout=MOUNT_TIMEOUT_S)
        self._tmpfs.clear()

    def files(self, spec: VmSpec, *, incoming: bool = False) -> BootFiles:
        """The host-side files of a machine of ``spec``; each machine of a VM gets its own sockets
        (a migration runs two at once), disks are shared by path."""
        n = self._machines[spec.name] = self._machines.get(spec.name, 0) + 1
        sockets = self.socket_dir
        # a full OS's overlay holds the snapshot fault's vmstate itself (its disk is saved with it)
        boot_disk = self.run_dir.vm_dir(spec.name) / OVERLAY_NAME if self.images[spec.group].disk else None
        snapshot = (self.run_dir.vm_dir(spec.name) / "snapshot.qcow2"
                    if spec.needs_snapshot_disk and boot_disk is None else None)
        uefi = ARCHES[spec.arch].firmware(spec.firmware).vars_template is not None
        disks = tuple(self.disk_dir(spec, tmpfs=d.backing == "tmpfs") / f"disk{i}.{d.format}"
                      for i, d in enumerate(spec.disks))
        pair = spec.network == "pair" and spec.net_peer is not None
        return BootFiles(qmp_socket=sockets / f"{spec.name}.{n}.qmp", agent_socket=sockets / f"{spec.name}.{n}.agent",
                         snapshot_disk=snapshot,
                         migration_socket=sockets / f"{spec.name}.{n}.mig" if incoming else None,
                         firmware_vars=self.run_dir.vm_dir(spec.name) / "efivars.fd" if uefi else None,
                         disks=disks, net_socket=sockets / f"{spec.name}.net" if pair else None,
                         net_peer_socket=sockets / f"{spec.net_peer}.net" if pair else None,
                         boot_disk=boot_disk)

    async def launch(self, spec: VmSpec, boot: int, *, incoming: bool = False) -> QemuMachine:
        """:raise LaunchError: a file QEMU needs cannot be made, or QEMU cannot be executed."""
        image = self.images[spec.group]
        files = self.files(spec, incoming=incoming)
        for sock in (files.qmp_socket, files.agent_socket, files.migration_socket):
            if sock is not None:
                sock.unlink(missing_ok=True)
        if files.snapshot_disk is not None and not incoming:  # a destination takes over the source's
            await create_qcow2(self.host.qemu, files.snapshot_disk, "4G")
        if not incoming:  # a fresh disk per boot: a boot after a failure starts from a sound image
            await self._make_disks(spec, files)
        if files.net_socket is not None:
            files.net_socket.unlink(missing_ok=True)
        if files.boot_disk is not None and image.disk is not None and not incoming:  # fresh at every boot
            await create_overlay(files.boot_disk, image.disk, image.disk_format)
        if files.firmware_vars is not None:  # made once per VM, kept across its boots like NVRAM
            try:
                vars_store(ARCHES[spec.arch].firmware(spec.firmware), files.firmware_vars)
            except OSError as exc:
                raise LaunchError(f"cannot copy the UEFI variable store to {files.firmware_vars}: {exc}") from exc
        config = machine_config(spec, image, self.host, files, boot=boot,
                                heartbeat_interval=self.heartbeat_interval)
        stderr = StderrLog.at_end_of(self.run_dir.stderr_log(spec.name))
        vm_dir = self.run_dir.vm_dir(spec.name)
        process = await QemuProcess.spawn(
            build_argv(config), stderr_path=stderr.path, cwd=vm_dir,  # a core dump lands in the VM's folder
            core_limit=None if self.cores == "off" else coredump.core_limit())
        return QemuMachine(spec.name, process, files, has_agent=image.agent, stderr=stderr,
                           qmp_timeout=self.qmp_timeout, cores=self.cores, vm_dir=vm_dir,
                           agent_kind=image.agent_kind, heartbeat_interval=self.heartbeat_interval)


    async def _make_disks(self, spec: VmSpec, files: BootFiles) -> None:
        """:raise LaunchError: the tmpfs cannot be mounted, or qemu-img fails."""
        tmpfs_bytes = sum(d.size + d.size // 256 for d in spec.disks if d.backing == "tmpfs")
        if tmpfs_bytes and spec.name not in self._tmpfs:
            mount = self.disk_dir(spec, tmpfs=True)
            mount.mkdir(exist_ok=True)
            await mount_tmpfs(mount, tmpfs_bytes + TMPFS_SLACK_BYTES)
            self._tmpfs[spec.name] = mount
        for disk, path in zip(spec.disks, files.disks, strict=True):
            await create_qcow2(self.host.qemu, path, str(disk.size), fmt=disk.format)


@dataclass(frozen=True, slots=True)
class StderrLog:
    """The part of a VM's ``qemu-stderr.log`` that one QEMU process wrote (the file spans boots)."""

    path: Path
    offset: int

    @classmethod
    def at_end_of(cls, path: Path) -> StderrLog:
        try:
            return cls(path, path.stat().st_size)
        except OSError:
            return cls(path, 0)

    def tail(self, limit: int) -> str:
        data = read_tail(self.path, limit)
        try:
            written = self.path.stat().st_size - self.offset
        except OSError:
            written = len(data)
        if written <= 0:
            return ""
        return data[-written:].decode("utf-8", "replace")


def _conforms(launcher: QemuLauncher, machine: QemuMachine) -> tuple[MachineLauncher, Machine]:
    """mypy checks here that the real machine keeps up with the interface."""
    return launcher, machine
