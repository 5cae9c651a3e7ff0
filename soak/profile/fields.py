"""The building blocks of profile fields: strict models, names, sizes, ranges, and their limits."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from soak.units import Seconds, between, format_bytes, parse_size_bytes, parse_size_mib

MIN_MEMORY_MIB = 96
"""The default guest kernel needs 72 MiB to boot; leave it room for its agent."""
MAX_MEMORY_MIB = 64 * 1024 * 1024
"""64 TiB: more than an x86-64 guest kernel with 4-level paging can use; a bigger size is a typo."""
MAX_PROFILE_BYTES = 1 << 20
"""A profile is a page of settings; a bigger file is a mistake (or a log) passed by accident."""
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
"""Group names: they become VM names, file names and metric labels."""
RUN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Run names: part of the default run directory's name, so no ``/``, no leading dot."""
DAY_S = 86400.0
MAX_SEED = 2**63 - 1

Timeout = Annotated[Seconds, between(0.1, DAY_S)]
"""A watch timeout or interval: from 100 ms (tighter misses the event loop's own jitter) to a day."""


MIN_CONSOLE_LIMIT = 64 * 1024
"""Below this a console limit cannot hold one boot log."""



class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def printable(value: str) -> str:
    """Text that goes into a command line or a file: no control characters, no NUL."""
    if any(not ch.isprintable() for ch in value):
        raise ValueError(f"{quoted(value)} contains control characters")
    return value


def quoted(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def checked_name(value: str, pattern: str, rule: str) -> str:
    if not re.fullmatch(pattern, value):
        raise ValueError(f"{quoted(value)} is not a name: {rule}")
    return value
def disk_floor(value: Any) -> Any:
    """Accept a size (``"1G"``) or a share of the disk (``"5%"``)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            percent = float(value.strip()[:-1])
        except ValueError:
            raise ValueError(f"{value!r} is not a share such as '5%'") from None
        if not 0 <= percent < 100:
            raise ValueError(f"{value!r}: a share of the disk must be from 0% to under 100%")
        return {"share": percent / 100}
    if isinstance(value, str | int) and not isinstance(value, bool):
        return {"size": parse_size_bytes(value)}
    if isinstance(value, DiskFloor):
        return value
    raise ValueError(f"expected a size such as '1G' or a share of the disk such as '5%', got {type(value).__name__}")


class DiskFloor(Strict):
    """Free space the run leaves on its disk: a size, or a share of the disk."""

    size: int = Field(default=0, ge=0)
    share: float = Field(default=0.0, ge=0.0, lt=1.0)

    def of(self, total_bytes: int) -> int:
        """The floor in bytes on a disk of ``total_bytes``."""
        return max(self.size, int(self.share * total_bytes))

    def __str__(self) -> str:
        return f"{self.share:.0%}" if self.share else format_bytes(self.size)



def int_choices(value: Any) -> Any:
    """Accept ``4``, ``[1, 2, 4]`` or a range string ``"1-8"``."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", value, re.ASCII)
        if match is None:
            raise ValueError(f"{quoted(value)} is not a number, a list or a range like '1-8'")
        if max(len(match[1]), len(match[2])) > 6:
            raise ValueError(f"{quoted(value)}: at most 255 vCPUs")
        return {"low": int(match[1]), "high": int(match[2])}
    return value


class IntRange(Strict):
    low: int = Field(ge=1)
    high: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.low > self.high:
            raise ValueError(f"range {self.low}-{self.high} is empty")
        return self


def size_choices(value: Any) -> Any:
    if isinstance(value, list):
        return [parse_size_mib(v) for v in value]
    return parse_size_mib(value)


