"""Profiles: what a soak run is made of, read from TOML and validated with pydantic.

A profile names the run, its duration and seed, the watch thresholds, the
restart policy, and one or more VM groups. Every field has a default that makes
sense on a laptop; unknown fields are errors (a typo must never be ignored).
A bad profile becomes one ProfileError naming the file, the field and the problem.

Example::

    [run]
    name = "smoke"
    duration = "2m"
    seed = 7

    [[group]]
    name = "mixed"
    count = 4
    vcpus = [1, 2, 4, 8]
    memory = ["256M", "320M"]
"""

from soak.profile.fields import (
    MAX_MEMORY_MIB,
    MIN_CONSOLE_LIMIT,
    MIN_MEMORY_MIB,
    DiskFloor,
    IntRange,
)
from soak.profile.fleet import Profile, VmSpec, expand_fleet
from soak.profile.group import GroupSettings
from soak.profile.load import load_profile, validate_profile
from soak.profile.settings import ImageSettings, RestartSettings, RunSettings, WatchSettings

__all__ = [
    "MAX_MEMORY_MIB",
    "MIN_CONSOLE_LIMIT",
    "MIN_MEMORY_MIB",
    "DiskFloor",
    "GroupSettings",
    "ImageSettings",
    "IntRange",
    "Profile",
    "RestartSettings",
    "RunSettings",
    "VmSpec",
    "WatchSettings",
    "expand_fleet",
    "load_profile",
    "validate_profile",
]
