"""Human units in profiles: durations ("90s", "2h", "1h30m", "3d") and sizes ("256M", "1GiB").

Pure parsing functions; they raise ValueError with a message fit for a user,
which the profile loader turns into a one-line ProfileError.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.ASCII)
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

MAX_DURATION_S = 366 * 86400.0
"""No duration in a profile may exceed a year: longer ones are typos (``1000d``), and
asyncio's timers overflow on absurd values (``1e300s``)."""
MAX_TEXT = 64
"""The longest duration or size text worth parsing; more is not a human's unit."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*$", re.ASCII | re.IGNORECASE)
_SIZE_MIB = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
_SIZE_BYTES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_duration(value: object) -> float:
    """Seconds in a duration: a number of seconds, or parts like ``1h30m``, ``90s``, ``3d``.

    Finite, not negative, at most `MAX_DURATION_S`.

    :raise ValueError: not a duration, or out of those bounds.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a duration such as '90s', '2h' or '3d', not {_kind(value)}")
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if len(text) > MAX_TEXT:
            raise ValueError(f"{_short(value)} is not a duration such as '90s', '2h' or '3d'")
        if re.fullmatch(r"\d+(\.\d+)?", text, re.ASCII):
            seconds = float(text)
        else:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"{_short(value)} is not a duration such as '90s', '2h' or '3d'")
            seconds = sum(float(n) * _DURATION_SECONDS[u] for n, u in parts)
    else:
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            seconds = math.inf
    if math.isnan(seconds):
        raise ValueError("a duration must be a number, not NaN")
    if seconds < 0:
        raise ValueError(f"{_short(value)}: a duration cannot be negative")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"{_short(value)} is too long: at most {_human(MAX_DURATION_S)}")
    return seconds


def between(low: float, high: float = MAX_DURATION_S) -> AfterValidator:
    """A bound on a `Seconds` field, with a message in the units a user wrote:
    ``Annotated[Seconds, between(1, 86400)]``."""

    def check(seconds: float) -> float:
        if not low <= seconds <= high:
            if seconds < low:
                raise ValueError(f"must be at least {_human(low)} (got {_human(seconds)})")
            raise ValueError(f"must be at most {_human(high)} (got {_human(seconds)})")
        return seconds

    return AfterValidator(check)


def parse_size_mib(value: object) -> int:
    """MiB in a memory size: a number of MiB, or ``512M``, ``1G``, ``2GiB``, ``1048576K``.

    :raise ValueError: not a size, or not a whole number of MiB.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected a size such as '256M' or '1G', not {_kind(value)}")
    if isinstance(value, int):
        return value
    match = _SIZE.match(value) if len(value) <= MAX_TEXT else None
    if match is None:
        raise ValueError(f"{_short(value)} is not a size such as '256M' or '1G'")
    mib = float(match.group(1)) * _SIZE_MIB[match.group(2).upper()]
    if not math.isfinite(mib) or mib != int(mib):
        raise ValueError(f"{_short(value)} is not a whole number of MiB")
    return int(mib)


def parse_size_bytes(value: str | int) -> int:
    """Bytes in a size: a number of bytes, or ``512K``, ``256M``, ``1GiB`` (powers of 1024).

    :raise ValueError: not a size.
    """
    if isinstance(value, bool):
        raise ValueError("expected a size such as '256M' or '1G'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value}: a size cannot be negative")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a size such as '512K', '256M' or '1G', got {type(value).__name__}")
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a size such as '512K', '256M' or '1G'")
    return int(float(match.group(1)) * _SIZE_BYTES[match.group(2).upper()])


def format_bytes(n: float) -> str:
    """A short human form in powers of 1024: ``812 B``, ``64.0 KiB``, ``1.5 GiB``."""
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if abs(n) < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} TiB"


def format_duration(seconds: float) -> str:
    """A short human form: ``2m05s``, ``3h12m``, ``1d04h``."""
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _human(seconds: float) -> str:
    """``0.5s``, ``90s``, ``2h``, ``1d``: the bound as a user would write it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _kind(value: object) -> str:
    """How a wrong type reads in a message: ``a list``, ``a table``, ``true``."""
    if isinstance(value, bool):
        return str(value).lower()
    names: dict[type, str] = {list: "a list", dict: "a table", float: "a float"}
    return names.get(type(value), f"a {type(value).__name__}")


def _short(value: object, limit: int = 40) -> str:
    """A value quoted for a one-line message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


Seconds = Annotated[float, BeforeValidator(parse_duration)]
"""A profile field holding a duration, in seconds."""
MiB = Annotated[int, BeforeValidator(parse_size_mib)]
"""A profile field holding a memory size, in MiB."""
Bytes = Annotated[int, BeforeValidator(parse_size_bytes)]
"""A profile field holding a size in bytes (a console or disk budget)."""
