"""soak: a long-running VM stress and soak harness.

An asyncio supervisor boots many QEMU guests from a profile, loads them with
stress-ng, injects faults from the host, watches consoles, agents, QMP and the
QEMU processes, and records every failure under a stable signature title.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
