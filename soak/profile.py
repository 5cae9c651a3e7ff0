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

from __future__ import annotations

import random
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from soak.errors import ProfileError
from soak.faults.catalog import fault_type
from soak.faults.settings import FaultSettings
from soak.kinds import Kind
from soak.load.settings import LoadSettings
from soak.units import Seconds, parse_size_mib

MIN_MEMORY_MIB = 96
"""The default guest kernel needs 72 MiB to boot; leave it room for its agent."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunSettings(_Strict):
    name: str = "soak"
    duration: Seconds = 120.0
    seed: int = 1
    accel: Literal["auto", "tcg", "kvm"] = "auto"
    qemu: str = "qemu-system-x86_64"
    max_parallel_boots: int = Field(default=2, ge=1, le=64)
    """Guests booting at once: a boot storm on a small host makes boots time out."""
    metrics_listen: str | None = "127.0.0.1:9464"
    """``host:port`` for /metrics; port 0 picks a free port; empty string disables."""


class WatchSettings(_Strict):
    boot_timeout: Seconds = 120.0
    heartbeat_interval: Seconds = Field(default=1.0, gt=0)
    hang_timeout: Seconds = 20.0
    """No heartbeat for this long means the guest (or QEMU) hangs."""
    console_grace: Seconds = 10.0
    """After a crash line, how long the rest of the report may take to arrive."""
    qmp_timeout: Seconds = 5.0
    shutdown_timeout: Seconds = 15.0
    """Per step of the stop ladder (agent poweroff, QMP quit) before escalating."""
    sample_interval: Seconds = Field(default=5.0, gt=0)
    """How often each QEMU process is sampled (CPU, RSS, threads, fds)."""

    @model_validator(mode="after")
    def _hang_after_interval(self) -> WatchSettings:
        if self.hang_timeout <= 2 * self.heartbeat_interval:
            raise ValueError("hang_timeout must be more than twice heartbeat_interval")
        return self


class RestartSettings(_Strict):
    policy: Literal["never", "on-failure", "always"] = "on-failure"
    """``on-failure``: reboot a guest after a failure; ``always``: also after it powered off."""
    max_restarts: int = Field(default=10, ge=0)
    """Per VM; once reached, the VM is retired for the rest of the run."""
    backoff: Seconds = 2.0


class ImageSettings(_Strict):
    """The guest image; by default soak builds its own from Debian packages."""

    kernel: Path | None = None
    initrd: Path | None = None
    append: str = ""
    """Extra kernel command line arguments."""

    @model_validator(mode="after")
    def _both_or_neither(self) -> ImageSettings:
        if (self.kernel is None) != (self.initrd is None):
            raise ValueError("set both kernel and initrd, or neither (to use the default image)")
        return self

    @property
    def is_default(self) -> bool:
        return self.kernel is None


def _int_choices(value: Any) -> Any:
    """Accept ``4``, ``[1, 2, 4]`` or a range string ``"1-8"``."""
    if isinstance(value, str):
        low, sep, high = value.partition("-")
        if not sep or not low.strip().isdigit() or not high.strip().isdigit():
            raise ValueError(f"{value!r} is not a number, a list or a range like '1-8'")
        return {"low": int(low), "high": int(high)}
    return value


class IntRange(_Strict):
    low: int = Field(ge=1)
    high: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.low > self.high:
            raise ValueError(f"range {self.low}-{self.high} is empty")
        return self


def _size_choices(value: Any) -> Any:
    if isinstance(value, list):
        return [parse_size_mib(v) for v in value]
    return parse_size_mib(value)


class GroupSettings(_Strict):
    """A group of VMs of the same kind; vCPUs and memory may vary inside it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    count: int = Field(default=1, ge=1, le=1000)
    vcpus: Annotated[int | list[int] | IntRange, BeforeValidator(_int_choices)] = 1
    """One count, a list cycled over the group's VMs, or a range drawn with the run's seed."""
    memory: Annotated[int | list[int], BeforeValidator(_size_choices)] = 256
    machine: Literal["pc", "q35"] = "pc"
    max_vcpus: int | None = Field(default=None, ge=1, le=255)
    """vCPU slots for hotplug; defaults to one spare slot when a vcpu-hotplug fault is declared."""
    image: ImageSettings = ImageSettings()
    load: LoadSettings | None = None
    """stress-ng inside the guests; absent: they idle."""
    fault: list[FaultSettings] = Field(default_factory=list)
    expect: list[str] = Field(default_factory=list)
    """Failure kinds each VM of the group must produce (``a|b``: either); a self-test declares them."""
    tolerate: list[str] = Field(default_factory=list)
    """Failure kinds that may happen without failing the run (side effects of an expected one)."""
    expect_within: Seconds = 120.0
    """Deadline for ``expect``, from the VM's first fault (or its first ready, without faults)."""

    @field_validator("expect", "tolerate")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        known = {k.value for k in Kind}
        for entry in value:
            for kind in entry.split("|"):
                if kind not in known:
                    raise ValueError(f"unknown failure kind {kind!r}; known: {', '.join(sorted(known))}")
        return value

    @field_validator("vcpus")
    @classmethod
    def _vcpus_in_range(cls, value: int | list[int] | IntRange) -> int | list[int] | IntRange:
        values = value if isinstance(value, list) else [value] if isinstance(value, int) else []
        if isinstance(value, list) and not value:
            raise ValueError("the list of vCPU counts is empty")
        for v in values:
            if not 1 <= v <= 255:
                raise ValueError(f"{v} vCPUs: must be between 1 and 255")
        if isinstance(value, IntRange) and value.high > 255:
            raise ValueError(f"{value.high} vCPUs: must be between 1 and 255")
        return value

    @field_validator("memory")
    @classmethod
    def _memory_enough(cls, value: int | list[int]) -> int | list[int]:
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ValueError("the list of memory sizes is empty")
        for v in values:
            if v < MIN_MEMORY_MIB:
                raise ValueError(f"{v} MiB is too little: guests need at least {MIN_MEMORY_MIB} MiB")
        return value


class Profile(_Strict):
    run: RunSettings = RunSettings()
    watch: WatchSettings = WatchSettings()
    restart: RestartSettings = RestartSettings()
    group: list[GroupSettings] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_groups(self) -> Profile:
        names = [g.name for g in self.group]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"group names must be unique: {', '.join(duplicates)}")
        return self


class VmSpec(_Strict):
    """One VM of the fleet, fully decided: what the supervisor launches."""

    name: str
    group: str
    index: int
    vcpus: int
    memory_mib: int
    machine: str
    max_vcpus: int | None = None
    image: ImageSettings
    index_in_group: int = 0
    load: LoadSettings | None = None
    faults: list[FaultSettings] = Field(default_factory=list)
    expect: list[str] = Field(default_factory=list)
    tolerate: list[str] = Field(default_factory=list)
    expect_within_s: float = 120.0

    @property
    def needs_snapshot_disk(self) -> bool:
        return any(fault_type(f.type).needs == "snapshot" for f in self.faults)

    @property
    def allowed_kinds(self) -> frozenset[str]:
        """Kinds that are expected outcomes on this VM, not findings."""
        return frozenset(k for entry in (*self.expect, *self.tolerate) for k in entry.split("|"))


def expand_fleet(profile: Profile) -> list[VmSpec]:
    """The VMs a profile describes, with varied shapes decided by the run's seed.

    Pure: the same profile and seed always give the same fleet.
    """
    rng = random.Random(profile.run.seed)
    fleet: list[VmSpec] = []
    for group in profile.group:
        hotplug = any(fault_type(f.type).needs == "hotplug" for f in group.fault)
        for i in range(group.count):
            vcpus = _pick_int(group.vcpus, i, rng)
            max_vcpus = group.max_vcpus or (vcpus + 1 if hotplug else None)
            fleet.append(
                VmSpec(
                    name=f"{group.name}-{i}",
                    group=group.name,
                    index=len(fleet),
                    index_in_group=i,
                    vcpus=vcpus,
                    memory_mib=_pick_int(group.memory, i, rng),
                    machine=group.machine,
                    max_vcpus=max(max_vcpus, vcpus) if max_vcpus else None,
                    image=group.image,
                    load=group.load,
                    faults=group.fault,
                    expect=group.expect,
                    tolerate=group.tolerate,
                    expect_within_s=group.expect_within,
                )
            )
    return fleet


def _pick_int(choice: int | list[int] | IntRange, i: int, rng: random.Random) -> int:
    if isinstance(choice, int):
        return choice
    if isinstance(choice, list):
        return choice[i % len(choice)]
    return rng.randint(choice.low, choice.high)


def load_profile(path: Path, overrides: dict[str, Any] | None = None) -> Profile:
    """Read and validate a profile file; ``overrides`` replace ``run.*`` settings.

    :raise ProfileError: unreadable file, bad TOML, or an invalid field.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(str(path), "", f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ProfileError(str(path), "", "not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(str(path), "", f"not valid TOML: {exc}") from exc
    if overrides:
        run = dict(data.get("run", {}))
        run.update({k: v for k, v in overrides.items() if v is not None})
        data["run"] = run
    return validate_profile(data, str(path))


def validate_profile(data: dict[str, Any], source: str) -> Profile:
    """Validate parsed TOML; the first problem becomes a ProfileError.

    :raise ProfileError: naming the field (``group[1].vcpus``) and the problem.
    """
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # In a union (vcpus = 4 | [..] | "1-8") our own explanation beats "not an int".
        error = next((e for e in errors if e["type"] == "value_error"), errors[0])
        raise ProfileError(source, _field_path(error["loc"]), _problem(error)) from None


_UNION_TAGS = frozenset({"int", "list[int]", "IntRange", "str"})


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]" if parts else f"[{item}]"]
        elif str(item) in _UNION_TAGS or "(" in str(item):
            continue  # pydantic's names for union members and validators, not a user's field
        else:
            parts.append(str(item))
    return ".".join(parts) or "(top level)"


def _problem(error: Any) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if error["type"] == "extra_forbidden":
        return "unknown field (check the spelling)"
    if error["type"] == "missing":
        return "required field is missing"
    if "input" in error and error["type"] not in ("value_error",) and not isinstance(
        error["input"], dict | list
    ):
        message = f"{message} (got {error['input']!r})"
    return message
