"""The one clock of a run: the event loop's monotonic time.

Every deadline, age and latency inside a run is measured with `now()`, which
reads the running loop's clock (``time.monotonic`` in production). Tests then
run the supervisor on a loop whose clock is virtual, and a one-hour hang
timeout takes microseconds, without a single sleep being patched.
"""

from __future__ import annotations

import asyncio
import time


def now() -> float:
    """The running loop's time, or ``time.monotonic()`` outside a loop."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()
