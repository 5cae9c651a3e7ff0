"""One VM for the whole run: boot it, watch it, record its failures, restart it.

- `runner`: `GuestRunner`, the boot loop and the watchers of one boot;
- `boot`: the state of one boot (one QEMU process) and its boot slot;
- `hang`: why heartbeats stopped, found out before anything is killed;
- `recording`: a failure's journal record and its evidence folder;
- `handle`: a ready boot as fault injectors see it.
"""

from soak.guest.runner import GuestRunner, GuestSetup, RunControl

__all__ = ["GuestRunner", "GuestSetup", "RunControl"]
