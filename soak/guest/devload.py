"""Which verified device loads a VM runs, from its spec (`soak.load.devload` runs them)."""

from __future__ import annotations

from soak.devices.plan import echo_target
from soak.load.devload import STALL_S, DeviceJob, device_jobs
from soak.profile import VmSpec


def device_load_jobs(spec: VmSpec) -> list[DeviceJob]:
    """A verified load per disk, one for the network (to its peer or the user-mode echo), the RNG check."""
    net = None
    if spec.network is not None:
        net = echo_target(spec.index_in_group, spec.net_peer_index if spec.network == "pair" else None)
    return device_jobs(disks=[(i, d.io_chunks, d.io_idle) for i, d in enumerate(spec.disks)], net_target=net,
                       rng=spec.rng)


def network_stall_s(spec: VmSpec) -> float:
    """How long the network may move no verified byte: the stall bound past the longest link-down."""
    windows = [f.duration for f in spec.faults if f.type == "link-down"]
    return STALL_S + max(windows, default=0.0)
