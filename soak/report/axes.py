"""Axis ticks and labels: round numbers for values, round durations for elapsed time.

Pure functions, so the plots' scales are tested without drawing anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable

TIME_STEPS = (
    1, 2, 5, 10, 15, 30,
    60, 120, 300, 600, 900, 1800,
    3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600,
    86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400,
)
"""Seconds between ticks of an elapsed-time axis: steps a person counts in."""

Formatter = Callable[[float], str]


def value_ticks(low: float, high: float, target: int = 5, *, binary: bool = False) -> list[float]:
    """About ``target`` round ticks (1, 2, 5 times a power of ten) covering ``[low, high]``;
    ``binary``: round in the largest binary unit below ``high`` (KiB, MiB, GiB) for sizes."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0]
    if binary:
        unit = float(1024 ** max(0, min(4, int(math.log(max(abs(high), 1.0), 1024)))))
        return [round(t * unit, 6) for t in value_ticks(low / unit, high / unit, target)]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, target)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    count = math.ceil((high - first) / step - 1e-9)
    return [round(first + i * step, 12) for i in range(count + 1)]


def time_ticks(span_s: float, target: int = 8) -> list[float]:
    """Elapsed-time ticks from 0 covering ``span_s`` seconds, about ``target`` of them."""
    span_s = max(span_s, 1.0)
    step = next((s for s in TIME_STEPS if span_s / s <= target), None)
    if step is None:
        step = TIME_STEPS[-1] * math.ceil(span_s / target / TIME_STEPS[-1])
    return [float(i * step) for i in range(int(span_s // step) + 1)]


def px(value: float) -> float | int:
    """A pixel coordinate, rounded to 0.1 (and written without ``.0``): SVG stays small."""
    rounded = round(value, 1)
    return int(rounded) if rounded == int(rounded) else rounded


def elapsed(seconds: float) -> str:
    """``0``, ``45s``, ``12m``, ``1h30m``, ``2d6h``: two units at most (an axis, not a stopwatch)."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds else "0"
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    whole = round(seconds)
    for i, (name, size) in enumerate(units[:-1]):
        if whole >= size:
            first, rest = divmod(whole, size)
            below_name, below_size = units[i + 1]
            below = rest // below_size
            return f"{first}{name}{below}{below_name}" if below else f"{first}{name}"
    return f"{whole}s"


def plain(value: float) -> str:
    """A count or rate: ``950``, ``12.5k``, ``3.2M`` (three significant digits)."""
    for suffix, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def size_bytes(value: float) -> str:
    """Bytes in binary units: ``512 MiB``, ``1.5 GiB``."""
    for suffix, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= size:
            return f"{value / size:.3g} {suffix}"
    return f"{value:.0f} B"


def seconds(value: float) -> str:
    """A duration that is usually short: ``15ms``, ``1.2s``, ``95s``."""
    if value == 0:
        return "0"
    if abs(value) < 1:
        return f"{value * 1000:.3g}ms"
    return f"{value:.3g}s"
