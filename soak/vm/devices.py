"""A VM's virtio devices on QEMU's command line: disks, a NIC, an RNG and a balloon (pure).

Each device is a small frozen value; `device_argv` turns the list into
arguments. Node and device ids are fixed by the device's index, so faults can
name them over QMP without asking QEMU (``soak-disk0`` is the format node the
guest's first disk reads through, ``soak-disk0-file`` its protocol node,
``soak-nic0`` the NIC whose link ``set_link`` toggles).

Disks are ``-blockdev`` graphs (protocol node + format node) behind
``virtio-blk-pci``, with ``discard=unmap`` so the guest's discards punch holes
in the image (the verified load discards what it verified: the next pass
allocates afresh, and the image stays small on the host): a node graph is what ``blockdev-reopen`` can rewire at run
time, which is how the ``disk-error`` fault slips a blkdebug node under the
format node and takes it out again. The cache modes map onto the node options
the way QEMU's own ``-drive cache=`` does.

Why PCI on every architecture: ``virt`` (aarch64, riscv64) has a PCIe host
bridge, so one set of device names and guest drivers (``virtio_pci``) serves
all guests; the agent's virtio-serial stays on virtio-mmio where it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CACHE_MODES: dict[str, tuple[bool, bool, bool]] = {
    # mode: (O_DIRECT on the host, guest-visible write cache, flushes ignored)
    "none": (True, True, False),
    "writeback": (False, True, False),
    "writethrough": (False, False, False),
    "directsync": (True, False, False),
    "unsafe": (False, True, True),
}
"""QEMU's ``-drive cache=`` modes as node and device options (QEMU's manual, "cache")."""

ERROR_POLICIES = ("report", "enospc", "stop")
"""``werror``/``rerror`` of a disk: tell the guest, pause the VM on a full host disk only, or always."""

RNG_SOURCE = "/dev/urandom"
"""The host's entropy for virtio-rng: never blocks, so the guest's reads never stall QEMU."""


def disk_node(index: int) -> str:
    """The format node the guest's disk ``index`` reads through (QMP ``node-name``)."""
    return f"soak-disk{index}"


def disk_file_node(index: int) -> str:
    """The protocol node (the image file) under `disk_node`."""
    return f"soak-disk{index}-file"


def disk_serial(index: int) -> str:
    """The serial the guest sees in ``/sys/block/vdX/serial``: soak's agent finds its disks by it."""
    return f"soak-disk{index}"


NIC_ID = "soak-nic0"
BALLOON_ID = "soak-balloon"


@dataclass(frozen=True, slots=True)
class Disk:
    """One virtio-blk disk backed by an image file."""

    index: int
    path: Path
    format: str = "qcow2"
    """``qcow2`` or ``raw``."""
    cache: str = "none"
    """A key of `CACHE_MODES`."""
    on_error: str = "report"
    """A value of `ERROR_POLICIES`, for writes and reads alike."""

    def argv(self, bus: str) -> list[str]:
        direct, write_cache, no_flush = CACHE_MODES[self.cache]
        cache = f"cache.direct={'on' if direct else 'off'},cache.no-flush={'on' if no_flush else 'off'}"
        node, file_node = disk_node(self.index), disk_file_node(self.index)
        rerror = "report" if self.on_error == "enospc" else self.on_error  # enospc is a write policy only
        return [
            "-blockdev", f"driver=file,node-name={file_node},filename={self.path},{cache},discard=unmap",
            "-blockdev", f"driver={self.format},node-name={node},file={file_node},{cache},discard=unmap",
            "-device", f"virtio-blk-{bus},drive={node},id={node}-dev,serial={disk_serial(self.index)},"
                       f"write-cache={'on' if write_cache else 'off'},werror={self.on_error},rerror={rerror}",
        ]


@dataclass(frozen=True, slots=True)
class Nic:
    """One virtio-net NIC: QEMU's user-mode network, or one end of a datagram link to another VM."""

    mac: str
    user: bool = True
    """User-mode (slirp): the guest is 10.0.2.15 and ``echo_port`` on 10.0.2.100 echoes what it sends."""
    local_socket: Path | None = None
    """A link to another VM: this QEMU's unix datagram socket ..."""
    remote_socket: Path | None = None
    """... and the peer's, where every frame is sent."""
    echo_port: int = 7

    def argv(self, bus: str) -> list[str]:
        if self.user:
            # QEMU spawns `cat` for each connection to 10.0.2.100: an echo server with no host setup
            netdev = f"user,id=soak-net0,guestfwd=tcp:10.0.2.100:{self.echo_port}-cmd:cat"
        else:
            netdev = (f"dgram,id=soak-net0,local.type=unix,local.path={self.local_socket},"
                      f"remote.type=unix,remote.path={self.remote_socket}")
        return ["-netdev", netdev, "-device", f"virtio-net-{bus},netdev=soak-net0,id={NIC_ID},mac={self.mac}"]


@dataclass(frozen=True, slots=True)
class Rng:
    """virtio-rng fed from the host's `RNG_SOURCE`."""

    def argv(self, bus: str) -> list[str]:
        return ["-object", f"rng-random,id=soak-rng0,filename={RNG_SOURCE}",
                "-device", f"virtio-rng-{bus},rng=soak-rng0"]


@dataclass(frozen=True, slots=True)
class Balloon:
    """virtio-balloon: the ``balloon`` fault inflates it to take memory from the guest."""

    def argv(self, bus: str) -> list[str]:
        return ["-device", f"virtio-balloon-{bus},id={BALLOON_ID}"]


Device = Disk | Nic | Rng | Balloon


def device_argv(devices: Sequence[Device], bus: str = "pci") -> list[str]:
    """The arguments of ``devices``, in order (``bus``: ``pci``, or ``device`` for virtio-mmio)."""
    argv: list[str] = []
    for device in devices:
        argv += device.argv(bus)
    return argv


def guest_device_names(devices: Sequence[Device]) -> list[str]:
    """What the guest must load drivers for (the agent's ``soak_dev=`` kernel argument)."""
    names: list[str] = []
    for device in devices:
        name = {Disk: "blk", Nic: "net", Rng: "rng", Balloon: "balloon"}[type(device)]
        if name not in names:
            names.append(name)
    return names
