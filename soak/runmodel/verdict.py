"""The verdict of a run: one function, used by the summary and by the `RunFinished` record.

    infra-error  soak itself crashed (finish reason ``error``), or the journals of a run
                 group do not make one whole run (``soak.runmodel.group``: a shard
                 missing, unfinished, torn or of another profile): nothing it says
                 can be trusted as the verdict of the run
    failures     an unexpected guest failure, or a declared expectation not met in time
    infra-error  soak's machinery had problems (QEMU would not start, a channel died ...)
    clean        none of the above

checked in that order. `VerdictFacts` are the inputs; they add up, so the
verdict of several journals (shards of one run) is the same function over
their summed facts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from soak.events import RunFinished, now
from soak.runmodel.model import RunModel

VERDICT_EXIT = {"clean": 0, "failures": 1, "infra-error": 3}
"""Exit code of ``soak run`` / ``soak summary`` for each verdict."""


@dataclass(frozen=True, slots=True)
class VerdictFacts:
    """What a verdict is decided from (module docstring)."""

    soak_crashed: bool = False
    unexpected_failures: int = 0
    missed_expectations: int = 0
    infra_problems: int = 0
    group_problems: int = 0
    """Why several journals are not one whole run (`soak.runmodel.group.RunGroup.problems`)."""

    def __add__(self, other: VerdictFacts) -> VerdictFacts:
        return VerdictFacts(
            self.soak_crashed or other.soak_crashed,
            self.unexpected_failures + other.unexpected_failures,
            self.missed_expectations + other.missed_expectations,
            self.infra_problems + other.infra_problems,
            self.group_problems + other.group_problems,
        )

    @property
    def verdict(self) -> str:
        if self.soak_crashed or self.group_problems:
            return "infra-error"
        if self.unexpected_failures or self.missed_expectations:
            return "failures"
        if self.infra_problems:
            return "infra-error"
        return "clean"

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT[self.verdict]


def verdict_facts(model: RunModel, finish_reason: str | None = None) -> VerdictFacts:
    """The facts of one run; ``finish_reason`` defaults to its `RunFinished` reason (None
    while the run goes on, or when soak died before it could write one)."""
    if finish_reason is None and model.finished is not None:
        finish_reason = model.finished.reason
    return VerdictFacts(
        soak_crashed=finish_reason == "error",
        unexpected_failures=model.unexpected_failures,
        missed_expectations=sum(not e.met for e in model.expectation_results()),
        infra_problems=model.infra_total,
    )


def combined_facts(models: Iterable[RunModel]) -> VerdictFacts:
    """The facts of several journals of one run (shards, attempts), added up."""
    total = VerdictFacts()
    for model in models:
        total += verdict_facts(model)
    return total


def run_finished(model: RunModel, reason: str, *, t: float | None = None) -> RunFinished:
    """The `RunFinished` record of a live run, its verdict decided as the summary will decide it."""
    return RunFinished(
        t=now() if t is None else t,
        reason=reason,
        verdict=verdict_facts(model, reason).verdict,
        failures=model.failures_total,
        infra_problems=model.infra_total,
    )
