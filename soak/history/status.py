"""The status of a failure signature in a run, decided from the runs before it.

A signature is *seen* in a run when it failed there unexpectedly at least
once: a failure a profile declared as a fault's intended outcome (a self-test's
``qemu-crash``) never makes a signature known, or it would hide the same title
failing for real in another profile. *Comparable* runs are the runs of the same
profile that booted at least one guest (a run whose QEMU never started could
not have seen anything). Runs are ordered by start time, ties by run id.

For a signature seen in run R, with the ``window`` (N, default 10) comparable
runs right before R, checked in this order:

    new        no run of the history before R saw it (in any profile)
    flaky      the window saw it at least twice, and in fewer than half of the
               window's runs up to the newest one that saw it (so a trailing
               quiet stretch does not make a regular look intermittent)
    regressed  an earlier comparable run saw it, and the ``regressed_after``
               (K, default 3) comparable runs right before R did not
    known      anything else: seen recently, or known from another profile

A signature whose every occurrence in R was expected is ``expected``: it
failed nothing. The status depends on R and the runs that started before it
only, so a re-import or a later run never changes what last night was; a run
imported later that started *earlier* does, because the history then knows more.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Status = Literal["new", "known", "regressed", "flaky", "expected"]
STATUSES: tuple[Status, ...] = ("new", "regressed", "flaky", "known", "expected")
"""Every status, most alarming first (the order the views sort by)."""

REGRESSED_AFTER = 3
WINDOW = 10
Key = tuple[str, str]
"""A signature: (kind, title)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """The two numbers the statuses depend on (module docstring)."""

    regressed_after: int = REGRESSED_AFTER
    """K: comparable runs in a row without the signature before it counts as regressed."""
    window: int = WINDOW
    """N: the comparable runs looked at for flakiness."""

    def __post_init__(self) -> None:
        if not 1 <= self.regressed_after <= self.window <= 1000:
            raise ValueError(f"need 1 <= regressed-after ({self.regressed_after}) <= flaky-window "
                             f"({self.window}) <= 1000")


def status_of(*, seen_before: bool, seen_in_profile_before: bool, recent: Sequence[bool], policy: Policy) -> Status:
    """The status of a signature seen in a run (module docstring).

    ``recent``: whether each of the comparable runs right before it saw the
    signature, oldest first, at most ``policy.window`` of them.
    """
    if not seen_before:
        return "new"
    window = list(recent)[-policy.window:]
    hits = [i for i, seen in enumerate(window) if seen]
    if len(hits) >= 2 and 2 * len(hits) < hits[-1] + 1:
        return "flaky"
    quiet = len(window) - (hits[-1] + 1) if hits else len(window)
    if seen_in_profile_before and (quiet >= policy.regressed_after or not hits):
        return "regressed"
    return "known"


@dataclass(frozen=True, slots=True)
class RunPoint:
    """A run as the statuses see it."""

    run_id: str
    profile: str
    started: float
    comparable: bool
    """It booted at least one guest."""

    @property
    def order(self) -> tuple[float, str]:
        return self.started, self.run_id


class Chronicle:
    """Every run of a history in order, and which runs saw each signature; answers statuses
    in O(log runs + window) each."""

    def __init__(self, runs: Iterable[RunPoint], seen: Mapping[Key, Iterable[str]]) -> None:
        self.runs = {run.run_id: run for run in runs}
        self._by_profile: dict[str, list[RunPoint]] = {}
        for run in sorted(self.runs.values(), key=lambda r: r.order):
            if run.comparable:
                self._by_profile.setdefault(run.profile, []).append(run)
        self._orders = {profile: [r.order for r in runs] for profile, runs in self._by_profile.items()}
        self._seen: dict[Key, frozenset[str]] = {}
        self._first: dict[Key, tuple[float, str]] = {}
        self._first_in: dict[tuple[Key, str], tuple[float, str]] = {}
        for key, ids in seen.items():
            saw = self._seen[key] = frozenset(ids) & self.runs.keys()
            for run in (self.runs[i] for i in saw):
                self._first[key] = min(self._first.get(key, run.order), run.order)
                if run.comparable:
                    where = (key, run.profile)
                    self._first_in[where] = min(self._first_in.get(where, run.order), run.order)

    def status(self, key: Key, run: RunPoint, policy: Policy) -> Status:
        """The status of ``key`` seen in ``run`` (which need not be in the chronicle)."""
        saw = self._seen.get(key, frozenset())
        runs = self._by_profile.get(run.profile, [])
        before = bisect.bisect_left(self._orders.get(run.profile, []), run.order)
        never = (math.inf, "")
        return status_of(
            seen_before=self._first.get(key, never) < run.order,
            seen_in_profile_before=self._first_in.get((key, run.profile), never) < run.order,
            recent=[r.run_id in saw for r in runs[max(0, before - policy.window):before]],
            policy=policy,
        )
