"""The one clock of a run: the event loop's monotonic time, and wall time derived from it.

Every deadline, age and latency inside a run is measured with `now()`, which
reads the running loop's clock (``time.monotonic`` in production). Tests then
run the supervisor on a loop whose clock is virtual, and a one-hour hang
timeout takes microseconds, without a single sleep being patched.

Event timestamps (`wall()`) are Unix time anchored once per loop and advanced
by the loop's clock: a run's journal never goes back in time when the host's
clock is stepped, and its durations agree with its deadlines.
"""

from __future__ import annotations

import asyncio
import time

_anchor: tuple[int, float, float] | None = None
"""(id of the loop, its time, the Unix time) when the anchor was taken."""


def now() -> float:
    """The running loop's time, or ``time.monotonic()`` outside a loop."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def wall() -> float:
    """Unix time, advancing with the running loop's clock (plain ``time.time()`` outside a loop)."""
    global _anchor
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return time.time()
    if _anchor is None or _anchor[0] != id(loop):
        _anchor = (id(loop), loop.time(), time.time())
    return _anchor[2] + (loop.time() - _anchor[1])
