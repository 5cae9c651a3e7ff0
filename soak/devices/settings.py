"""How a profile group declares its devices.

Example, in a group::

    disks = [{ size = "256M", format = "qcow2", cache = "none" }]
    network = "pair"      # or "user"
    rng = true

Every disk gets a verified I/O load (`soak.load.devload`): soak writes a
pattern through the guest's block device with O_DIRECT and reads it back, so
data corrupted anywhere between the guest and the image file is found. A
network gets verified traffic the same way (echoed and compared).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from soak.units import Bytes, Seconds, between, format_bytes

MIN_DISK_BYTES = 1 << 20
MAX_DISK_BYTES = 1 << 41
"""2 TiB: a soak disk is a scratch area; more is a typo."""
MAX_DISKS = 8
IO_CHUNK_BYTES = 256 << 10
"""One O_DIRECT write or read of the verified load: a request of this size through virtio-blk."""
DEFAULT_IO_BYTES = 32 << 20


class DiskSettings(BaseModel):
    """One virtio-blk disk of each VM of the group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: Bytes = Field(ge=MIN_DISK_BYTES, le=MAX_DISK_BYTES)
    format: Literal["qcow2", "raw"] = "qcow2"
    cache: Literal["none", "writeback", "writethrough", "directsync", "unsafe"] = "none"
    """QEMU's cache mode: ``none`` is O_DIRECT on the host, what cloud hypervisors use."""
    backing: Literal["run", "tmpfs"] = "run"
    """Where the image lives: the VM's folder in the run directory, or a tmpfs of the VM's own
    (mounted by soak, size of its disks; needs root). The ``disk-full`` fault fills that tmpfs."""
    on_error: Literal["report", "enospc", "stop"] = "report"
    """QEMU's ``werror``/``rerror``: ``report`` passes every error to the guest; ``enospc`` pauses
    the VM when the host's disk is full (QEMU's default); ``stop`` pauses it on any error."""
    io_size: Bytes = Field(default=DEFAULT_IO_BYTES, ge=IO_CHUNK_BYTES, le=MAX_DISK_BYTES)
    """Bytes the verified load writes and reads back per pass (at most the disk's size)."""
    io_idle: Annotated[Seconds, between(0.0, 3600.0)] = 5.0
    """Pause between passes: the load is bursts, so the disk is busy without starving the guest."""

    @model_validator(mode="after")
    def _consistent(self) -> DiskSettings:
        if self.io_size > self.size:
            raise ValueError(f"io_size {format_bytes(self.io_size)} is more than the disk "
                             f"({format_bytes(self.size)})")
        if self.backing == "tmpfs" and self.cache in ("none", "directsync"):
            raise ValueError(f"cache = {self.cache!r} opens the image with O_DIRECT, which tmpfs does not "
                             "support on Debian 12's kernel: use cache = 'writeback' with backing = 'tmpfs'")
        return self

    @property
    def io_chunks(self) -> int:
        return max(1, self.io_size // IO_CHUNK_BYTES)


Network = Literal["user", "pair"]
"""``user``: QEMU's user-mode network, verified traffic to an echo on 10.0.2.100; ``pair``: VMs
0-1, 2-3 ... of the group linked back to back (an odd last VM gets ``user``)."""

