"""Human units in profiles: durations ("90s", "2h", "1h30m", "3d") and sizes ("256M", "1GiB").

Pure parsing functions; they raise ValueError with a message fit for a user,
which the profile loader turns into a one-line ProfileError.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.ASCII)
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*$", re.ASCII | re.IGNORECASE)
_SIZE_MIB = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def parse_duration(value: str | int | float) -> float:
    """Seconds in a duration: a number of seconds, or parts like ``1h30m``, ``90s``, ``3d``.

    :raise ValueError: not a duration.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '90s', '2h' or '3d'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"{value!r} is not a duration such as '90s', '2h' or '3d'")
            seconds = sum(float(n) * _DURATION_SECONDS[u] for n, u in parts)
    if seconds < 0:
        raise ValueError(f"{value!r}: a duration cannot be negative")
    return seconds


def parse_size_mib(value: str | int) -> int:
    """MiB in a memory size: a number of MiB, or ``512M``, ``1G``, ``2GiB``, ``1048576K``.

    :raise ValueError: not a size, or not a whole number of MiB.
    """
    if isinstance(value, bool):
        raise ValueError("expected a size such as '256M' or '1G'")
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a size such as '256M' or '1G'")
    mib = float(match.group(1)) * _SIZE_MIB[match.group(2).upper()]
    if mib != int(mib):
        raise ValueError(f"{value!r} is not a whole number of MiB")
    return int(mib)


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


Seconds = Annotated[float, BeforeValidator(parse_duration)]
"""A profile field holding a duration, in seconds."""
MiB = Annotated[int, BeforeValidator(parse_size_mib)]
"""A profile field holding a memory size, in MiB."""
