"""The ``[run]``, ``[watch]`` and ``[restart]`` tables and a group's ``image``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from soak.profile.fields import (
    DAY_S,
    MAX_SEED,
    MIN_CONSOLE_LIMIT,
    RUN_NAME_PATTERN,
    DiskFloor,
    Strict,
    Timeout,
    checked_name,
    disk_floor,
    printable,
    quoted,
)
from soak.units import Bytes, Seconds, between


class RunSettings(Strict):
    name: str = "soak"
    duration: Annotated[Seconds, between(1.0)] = 120.0
    seed: int = Field(default=1, ge=0, le=MAX_SEED)
    accel: Literal["auto", "tcg", "kvm"] = "auto"
    qemu: str = Field(default="qemu-system-x86_64", min_length=1, max_length=4096)
    max_parallel_boots: int = Field(default=2, ge=1, le=64)
    """Guests booting at once: a boot storm on a small host makes boots time out."""
    metrics_listen: str | None = Field(default="127.0.0.1:9464", max_length=300)
    """``host:port`` for /metrics; port 0 picks a free port; empty string disables."""
    qemu_cores: Literal["backtrace", "keep", "off"] = "backtrace"
    """A crashed QEMU's core dump: ``backtrace`` (gdb's backtrace of all threads into the
    evidence, the core deleted), ``keep`` (the core too, at most two per VM in
    ``vms/VM/cores/``), ``off`` (no core dump)."""
    console_limit: Bytes = Field(default=256 << 20, ge=MIN_CONSOLE_LIMIT, le=1 << 40)
    """Console bytes kept per VM over all its boots: each boot's head and the newest output."""
    evidence_per_signature: int = Field(default=3, ge=1, le=1000)
    """Evidence folders kept per failure signature (kind + title) per VM; repeats are counted only."""
    memory_overcommit: float = Field(default=1.0, gt=0.0, le=64.0)
    """The fleet's memory (guests + QEMU) may be this multiple of the host's memory."""
    min_free_disk: Annotated[DiskFloor, BeforeValidator(disk_floor)] = DiskFloor(size=1 << 30)
    """The run stops cleanly when its disk has less free space (``"1G"``, or ``"5%"`` of the disk)."""

    @field_validator("name")
    @classmethod
    def _run_name(cls, value: str) -> str:
        return checked_name(value, RUN_NAME_PATTERN,
                     "1-64 letters, digits, '.', '-' or '_', starting with a letter or digit")

    @field_validator("qemu")
    @classmethod
    def _qemu_printable(cls, value: str) -> str:
        return printable(value)

    @field_validator("metrics_listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if not value:
            return value
        host, sep, port = value.strip().rpartition(":")
        if not sep or not host or not re.fullmatch(r"\d{1,5}", port, re.ASCII) or int(port) > 65535 \
                or any(ch.isspace() or not ch.isprintable() for ch in host):
            raise ValueError(f"{quoted(value)} is not host:port (e.g. 127.0.0.1:9464; port 0 = any free port)")
        return value


class WatchSettings(Strict):
    boot_timeout: Annotated[Seconds, between(1.0, DAY_S)] = 120.0
    heartbeat_interval: Annotated[Seconds, between(0.1, 3600.0)] = 1.0
    hang_timeout: Timeout = 20.0
    """No heartbeat for this long means the guest (or QEMU) hangs."""
    console_grace: Annotated[Seconds, between(0.0, 3600.0)] = 10.0
    """After a crash line, how long the rest of the report may take to arrive."""
    qmp_timeout: Annotated[Seconds, between(0.1, 3600.0)] = 5.0
    shutdown_timeout: Annotated[Seconds, between(0.1, 3600.0)] = 15.0
    """Per step of the stop ladder (agent poweroff, QMP quit) before escalating."""
    sample_interval: Annotated[Seconds, between(0.1, 3600.0)] = 5.0
    """How often each QEMU process is sampled (CPU, RSS, threads, fds)."""

    @model_validator(mode="after")
    def _hang_after_interval(self) -> WatchSettings:
        if self.hang_timeout <= 2 * self.heartbeat_interval:
            raise ValueError("hang_timeout must be more than twice heartbeat_interval")
        return self


class RestartSettings(Strict):
    policy: Literal["never", "on-failure", "always"] = "on-failure"
    """``on-failure``: reboot a guest after a failure; ``always``: also after it powered off."""
    max_restarts: int = Field(default=10, ge=0, le=1_000_000)
    """Per VM; once reached, the VM is retired for the rest of the run."""
    backoff: Annotated[Seconds, between(0.0, DAY_S)] = 2.0


class ImageSettings(Strict):
    """The guest image; by default soak builds its own from Debian packages.

    ``kernel`` + ``initrd``: the user's own pair (booted by QEMU). ``disk``: a full OS on a disk
    image (a path, or ``soak:debian`` built by soak), booted by its bootloader through the
    group's firmware, or by ``kernel`` + ``initrd`` with the disk as their root; each VM writes
    to its own overlay, never to the file (`soak.image.disk`).
    """

    kernel: Path | None = None
    initrd: Path | None = None
    append: str = Field(default="", max_length=4096)
    """Extra kernel command line arguments."""
    disk: str | None = Field(default=None, min_length=1, max_length=4096)
    """A disk image file, or ``soak:NAME`` (`soak.image.disk.SOAK_DISKS`)."""
    format: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,15}$")
    """The disk's format as qemu-img names it (qcow2, raw, vmdk ...); default: what qemu-img finds."""
    agent: Literal["qga", "none"] | None = None
    """What runs in a disk's OS for soak to talk to: ``qga`` (QEMU's guest agent) or ``none``
    (console, QMP and process only); default ``qga`` for ``soak:`` disks, ``none`` for others."""

    @field_validator("kernel", "initrd", mode="before")
    @classmethod
    def _path_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value:
                raise ValueError("the path is empty")
            printable(value)
        return value

    @field_validator("append", "disk")
    @classmethod
    def _append_printable(cls, value: str | None) -> str | None:
        return value if value is None else printable(value)

    @field_validator("disk")
    @classmethod
    def _known_soak_disk(cls, value: str | None) -> str | None:
        from soak.image.disk import SOAK_DISKS, soak_disk_name

        name = soak_disk_name(value or "")
        if name is not None and name not in SOAK_DISKS:
            raise ValueError(f"no disk image {value!r}; soak builds {', '.join('soak:' + d for d in SOAK_DISKS)}")
        return value

    @model_validator(mode="after")
    def _both_or_neither(self) -> ImageSettings:
        if (self.kernel is None) != (self.initrd is None):
            raise ValueError("set both kernel and initrd, or neither (to use the default image)")
        if self.disk is None:
            if self.format is not None or self.agent is not None:
                raise ValueError(f"{'format' if self.format else 'agent'} applies to a disk image: set disk too")
            return self
        if self.soak_disk and self.kernel is not None:
            raise ValueError(f"{self.disk} boots its own kernel: drop kernel and initrd")
        if self.soak_disk and self.format not in (None, "qcow2"):
            raise ValueError(f"{self.disk} is a qcow2 image: drop format")
        if self.kernel is None and self.append and not self.soak_disk:
            raise ValueError("append needs kernel and initrd: a disk without them boots its bootloader's "
                             "command line")
        return self

    @property
    def is_default(self) -> bool:
        return self.kernel is None and self.disk is None

    @property
    def soak_disk(self) -> bool:
        """The disk is one soak builds (``soak:debian``)."""
        return self.disk is not None and self.disk.startswith("soak:")

    @property
    def disk_agent(self) -> str | None:
        """``qga`` or ``none`` for a disk image (its default decided), None without a disk."""
        if self.disk is None:
            return None
        return self.agent or ("qga" if self.soak_disk else "none")


