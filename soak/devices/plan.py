"""What each VM of a group gets from its devices: network pairs, addresses, guest arguments (pure).

Pairs are VMs 0-1, 2-3 ... of a group, each an isolated two-host link, so
every pair uses the same two addresses. An odd last VM has no partner: it gets
QEMU's user-mode network, so it still carries verified traffic.
"""

from __future__ import annotations

USER_GUEST_IP = "10.0.2.15"
USER_ECHO_IP = "10.0.2.100"
"""Where QEMU's ``guestfwd`` runs an echo (``cat``) for each connection of a user-mode guest."""
PAIR_IPS = ("10.11.0.1", "10.11.0.2")
ECHO_PORT = 7
"""The echo port on both sides of a link (the guest's own echo server listens on it for its peer)."""


def pair_peer(index_in_group: int, count: int) -> int | None:
    """The index of the VM linked to ``index_in_group`` in a ``pair`` group of ``count``; None: the
    odd last VM."""
    peer = index_in_group ^ 1
    return peer if peer < count else None


def mac_address(fleet_index: int) -> str:
    """A locally administered MAC per VM of the fleet (QEMU's 52:54:00 prefix)."""
    return f"52:54:00:5a:{(fleet_index >> 8) & 0xFF:02x}:{fleet_index & 0xFF:02x}"


def net_kernel_arg(index_in_group: int, peer: int | None) -> str:
    """``soak_net=`` for the agent: ``user``, or ``pair:MY_IP:PEER_IP``."""
    if peer is None:
        return "soak_net=user"
    mine, theirs = (PAIR_IPS if index_in_group < peer else PAIR_IPS[::-1])
    return f"soak_net=pair:{mine}:{theirs}"


def echo_target(index_in_group: int, peer: int | None) -> str:
    """Where the VM's verified traffic goes: its peer, or the user-mode echo."""
    if peer is None:
        return USER_ECHO_IP
    return PAIR_IPS[1] if index_in_group < peer else PAIR_IPS[0]
