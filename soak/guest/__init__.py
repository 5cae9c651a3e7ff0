"""One VM for the whole run: boot it, watch it, record its failures, restart it.

- `runner`: `GuestRunner`, the boot loop, the restart policy, the fault timeline;
- `bootrun`: one boot's watchers under one task group, its failure flow and its end;
- `watchers`, `watchdog`: console, exit, QMP, agent, process; the deadline watchdog;
- `boot`: the state of one boot (an explicit lifecycle) and its boot slot;
- `hang`: why heartbeats stopped, found out before anything is killed;
- `recording`: a failure's journal record and its evidence folder;
- `handle`: a ready boot as fault injectors see it.
"""

from soak.guest.context import RunControl
from soak.guest.runner import GuestRunner, GuestSetup

__all__ = ["GuestRunner", "GuestSetup", "RunControl"]
