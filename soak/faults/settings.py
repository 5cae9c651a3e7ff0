"""How a profile declares faults: which, when, on which VMs, for how long, with what outcome.

Example, in a group::

    [[group.fault]]
    type = "pause"
    every = "90s"       # repeat (seeded jitter); or at = ["30s", "5m"] (once each)
    start = "20s"       # first one this long after the VM is first ready
    duration = "5s"     # pause/sigstop/vcpu-hotplug/snapshot window
    jitter = 0.2        # +-20% on every interval, drawn from the run's seed
    vms = [0, 2]        # indexes within the group (default: all)
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from soak.faults.catalog import FAULT_TYPES, fault_type
from soak.units import Bytes, Seconds, between

MAX_WINDOW_S = 86400.0
"""A pause or SIGSTOP longer than a day is not a fault window but a stopped run."""
MAX_INJECTIONS = 1_000_000
MIGRATE_ONLY = ("mode", "timeout", "bandwidth", "mismatch")
BALLOON_ONLY = ("target",)
MIN_BALLOON_TARGET = 0.1
"""Less than a tenth of its memory leaves a guest nothing to run on: an OOM by design, not a finding."""


class FaultSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    every: Annotated[Seconds, between(1.0)] | None = None
    at: list[Seconds] = Field(default_factory=list, max_length=10_000)
    start: Seconds = 30.0
    duration: Annotated[Seconds, between(0.1, MAX_WINDOW_S)] = 5.0
    jitter: float = Field(default=0.2, ge=0.0, le=0.9)
    count: int = Field(default=0, ge=0, le=MAX_INJECTIONS)
    """At most this many injections per VM (0: no limit)."""
    vms: list[int] | None = Field(default=None, min_length=1, max_length=1000)
    """Indexes within the group; the group checks that each names one of its VMs."""
    expect: Literal["survive", "fail"] | None = None
    """Override the fault's default outcome (see ``soak.faults.catalog``)."""
    secs: int | None = Field(default=None, ge=1, le=600)
    """Guest faults: how long the fault lasts in the guest (a spin, a sleep)."""
    mode: Literal["live", "paused"] = "live"
    """migrate: ``live`` (the guest runs while its memory is copied) or ``paused`` (stop, migrate,
    continue on the destination)."""
    timeout: Annotated[Seconds, between(1.0, 3600.0)] = 60.0
    """migrate: how long a migration may take before it is cancelled and reported."""
    bandwidth: Bytes = Field(default=8 << 30, gt=0)
    """migrate: the migration's bandwidth cap per second (``"1G"``); QEMU's own default, 128 MiB/s,
    never converges for a guest writing memory hard under TCG."""
    target: float = Field(default=0.5, ge=MIN_BALLOON_TARGET, le=1.0)
    """balloon: the guest's memory while the balloon is inflated, as a share of its size."""
    mismatch: Literal["memory"] | None = None
    """migrate: start the destination with a different memory size, so the migration must fail
    (a self-test of ``migration-failure``; the outcome is then ``fail`` unless ``expect`` says otherwise)."""

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in FAULT_TYPES:
            shown = repr(value) if len(value) <= 40 else repr(value[:37]) + "..."
            raise ValueError(f"unknown fault {shown}; known: {', '.join(sorted(FAULT_TYPES))}")
        return value

    @field_validator("vms")
    @classmethod
    def _indexes(cls, value: list[int] | None) -> list[int] | None:
        for v in value or ():
            if v < 0:
                raise ValueError(f"VM index {v} is negative: `vms` are indexes within the group, from 0")
        if value is not None and len(set(value)) != len(value):
            raise ValueError("a VM index is listed twice")
        return value

    @model_validator(mode="after")
    def _when(self) -> FaultSettings:
        if self.every is None and not self.at:
            raise ValueError("say when: `every` (repeat) or `at` (offsets after the VM is ready)")
        for owner, names in (("migrate", MIGRATE_ONLY), ("balloon", BALLOON_ONLY)):
            given = [name for name in names if name in self.model_fields_set]
            if self.type != owner and given:
                raise ValueError(f"`{given[0]}` is a setting of the {owner} fault only")
        return self

    @property
    def outcome_expected(self) -> str:
        if self.mismatch is not None:
            return self.expect or "fail"
        return self.expect or fault_type(self.type).expect
