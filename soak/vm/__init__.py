"""Running one QEMU guest: its command line, process, console, QMP and agent channels.

Nothing here knows about detection, metrics or the journal: the guest runner
(soak.guest) wires these parts to the watchers.
"""
