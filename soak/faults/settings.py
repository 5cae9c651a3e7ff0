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

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from soak.faults.catalog import fault_type
from soak.units import Seconds


class FaultSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    every: Seconds | None = None
    at: list[Seconds] = Field(default_factory=list)
    start: Seconds = 30.0
    duration: Seconds = 5.0
    jitter: float = Field(default=0.2, ge=0.0, le=0.9)
    count: int = Field(default=0, ge=0)
    """At most this many injections per VM (0: no limit)."""
    vms: list[int] | None = None
    expect: Literal["survive", "fail"] | None = None
    """Override the fault's default outcome (see ``soak.faults.catalog``)."""
    secs: int | None = Field(default=None, ge=1, le=600)
    """Guest faults: how long the fault lasts in the guest (a spin, a sleep)."""

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        fault_type(value)
        return value

    @model_validator(mode="after")
    def _when(self) -> FaultSettings:
        if self.every is None and not self.at:
            raise ValueError("say when: `every` (repeat) or `at` (offsets after the VM is ready)")
        if self.every is not None and self.every < 1:
            raise ValueError("`every` must be at least 1s")
        return self

    @property
    def outcome_expected(self) -> str:
        return self.expect or fault_type(self.type).expect
