"""A run group: the journals of one run's shards and their attempts, placed, and what is wrong.

A run sharded N ways leaves one journal per attempt of each shard
(``runs/NAME-GROUP/shard-I-of-N-attempt-K/``). Each is folded into its own
model (`load_runs`); `group_runs` places them by their `RunStarted` records:
which shard and attempt each is, and for each shard the attempt that *counts*,
its newest (highest attempt number, then latest start). The shard's earlier
attempts are *superseded*: a requeue after its node died, a retried pod.

A superseded attempt still adds its unexpected guest failures to the verdict
(a host that died may itself be the bug). Its soak problems, a crash of its
soak and its missed expectations are why the engine retried it, and the
attempt that replaced it decides those (`RunGroup.verdict_facts`).

The group cannot be trusted as a whole, and its verdict is ``infra-error``,
when (`RunGroup.problems`, one line each, naming the shard and its directory):

    missing      a shard 0..N-1 has no journal
    unfinished   a shard's newest attempt has no run-finished record (still
                 running, or its soak died)
    torn         a shard's newest attempt's journal ends in a cut line
    mismatched   a journal of another profile (profile hash), seed, shard count
                 or run group than the group's
    unplaced     a journal without a run-started record (its first lines were lost)

The group's own values are those most journals agree on (on a tie, the first
journal's, in the order given), so one stray journal is the one named.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from soak.events import RunStarted
from soak.runmodel.facts import RunFacts, run_facts
from soak.runmodel.merge import merged_signature_facts
from soak.runmodel.model import RunModel
from soak.runmodel.replay import LoadedRun
from soak.runmodel.verdict import VerdictFacts, combined_facts, verdict_facts

Slot = tuple[int, int]
"""(shard, shard count) as a journal's `RunStarted` says."""


@dataclass
class Attempt:
    """One journal of a run group: an attempt of a shard."""

    loaded: LoadedRun
    label: str = ""
    """``shard I/N attempt K`` (unique in its group); the directory for an unplaced journal."""
    superseded: bool = False
    """A later attempt of the same shard replaced it."""

    @property
    def model(self) -> RunModel:
        return self.loaded.model

    @property
    def run_dir(self) -> Path:
        return self.loaded.journal.parent

    @property
    def started(self) -> RunStarted | None:
        return self.loaded.model.run

    @property
    def slot(self) -> Slot | None:
        run = self.started
        return None if run is None else (run.shard, run.shards)

    @property
    def host(self) -> str:
        return self.started.host if self.started else ""

    @property
    def finished(self) -> bool:
        return self.model.finished is not None


@dataclass(frozen=True, slots=True)
class _Identity:
    """What the journals of one run group must share."""

    run_group: str
    profile: str
    """The profile hash (the profile's name for a journal written before hashes)."""
    seed: int
    shards: int

    @staticmethod
    def of(run: RunStarted) -> _Identity:
        return _Identity(run.run_group or run.run_id, run.profile_hash or run.profile, run.seed, run.shards)


@dataclass
class RunGroup:
    """The journals of one run group, placed (module docstring)."""

    attempts: list[Attempt]
    """By shard, each shard's attempts oldest first; unplaced journals last."""
    run_group: str = ""
    """The group's id (a run that stands alone: its run id)."""
    profile: str = ""
    seed: int | None = None
    shards: int = 0
    """The group's shard count (0: no journal said)."""
    profile_hash: str = ""
    """`soak.shard.profile_hash` of the group's profile (its name for journals without one)."""
    problems: list[str] = field(default_factory=list)
    """Why the group cannot be trusted as a whole, one line each; empty when complete."""

    @property
    def counted(self) -> list[Attempt]:
        """The attempts whose VMs, soak problems and expectations are the group's."""
        return [a for a in self.attempts if not a.superseded]

    @property
    def superseded(self) -> list[Attempt]:
        return [a for a in self.attempts if a.superseded]

    def by_shard(self) -> list[tuple[int | None, list[Attempt]]]:
        """Each shard 0..N-1 with its attempts (none: missing), then strays (another shard
        count, unplaced: shard None when it cannot be told)."""
        slots: dict[Slot | None, list[Attempt]] = {}
        for attempt in self.attempts:
            slots.setdefault(attempt.slot, []).append(attempt)
        shards: list[tuple[int | None, list[Attempt]]] = [
            (i, slots.pop((i, self.shards), [])) for i in range(self.shards)]
        strays = slots.pop(None, [])
        shards += [(slot[0], attempts) for slot, attempts in slots.items() if slot is not None]
        return shards + [(None, [a]) for a in strays]

    def models(self) -> dict[str, RunModel]:
        """Every attempt's model by label, superseded ones included (their failures count)."""
        return {a.label: a.model for a in self.attempts}

    def verdict_facts(self) -> VerdictFacts:
        """The counted attempts' facts, the superseded ones' unexpected failures, and the
        group's own problems (module docstring)."""
        facts = combined_facts(a.model for a in self.counted)
        for attempt in self.superseded:
            facts += VerdictFacts(unexpected_failures=verdict_facts(attempt.model).unexpected_failures)
        return facts + VerdictFacts(group_problems=len(self.problems))

    def run_facts(self) -> RunFacts:
        """The group as one run for the history's statuses: every attempt's failure signatures,
        the counted attempts' VMs and VM-hours, the group's id, span and verdict."""
        parts = [run_facts(a.model) for a in self.attempts]
        counted = [run_facts(a.model) for a in self.counted]
        first = next((p for p in parts if p.started is not None), parts[0] if parts else None)
        starts = [p.started for p in parts if p.started is not None]
        reasons = sorted({p.finish_reason for p in counted if p.finish_reason})
        return RunFacts(
            run_id=self.run_group,
            profile=first.profile if first else "",
            profile_path=first.profile_path if first else "",
            seed=self.seed,
            accel=first.accel if first else "",
            version=first.version if first else "",
            qemu_version=first.qemu_version if first else "",
            started=min(starts) if starts else None,
            ended=max((p.ended for p in parts), default=0.0),
            finish_reason="+".join(reasons) if reasons and not self.problems else None,
            verdict=self.verdict_facts().verdict,
            vm_hours=sum(p.vm_hours for p in counted),
            vms=sum(p.vms for p in counted),
            boots=sum(p.boots for p in parts),
            signatures=merged_signature_facts(parts),
        )


def group_runs(loaded: Sequence[LoadedRun]) -> RunGroup:
    """Place the journals of a run group (module docstring); the order given breaks ties."""
    placed = [Attempt(run) for run in loaded if run.model.run is not None]
    unplaced = [Attempt(run, label=str(run.journal.parent)) for run in loaded if run.model.run is None]
    identities = [_Identity.of(a.started) for a in placed if a.started is not None]
    group, mine = RunGroup([]), None
    if identities:
        mine = _Identity(*(Counter(getattr(i, name) for i in identities).most_common(1)[0][0]
                           for name in ("run_group", "profile", "seed", "shards")))
        group = RunGroup([], mine.run_group, _profile_name(placed, mine), mine.seed, mine.shards, mine.profile)
    slots: dict[Slot, list[Attempt]] = {}
    for attempt in placed:
        slot = attempt.slot
        assert slot is not None
        slots.setdefault(slot, []).append(attempt)
    for slot in sorted(slots):
        attempts = sorted(slots[slot], key=_age)
        _label(attempts, slot)
        for attempt in attempts[:-1]:
            attempt.superseded = True
        group.attempts += attempts
    group.attempts += unplaced
    group.problems = _problems(group, mine, len(loaded))
    return group


def _age(attempt: Attempt) -> tuple[int, float]:
    run = attempt.started
    assert run is not None
    return run.attempt, run.t


def _label(attempts: list[Attempt], slot: Slot) -> None:
    seen: Counter[int] = Counter()
    for attempt in attempts:
        number = attempt.started.attempt if attempt.started else 0
        seen[number] += 1
        repeat = f" ({seen[number]})" if seen[number] > 1 else ""  # an attempt number an engine repeated
        attempt.label = f"shard {slot[0]}/{slot[1]} attempt {number}{repeat}"


def _profile_name(placed: list[Attempt], mine: _Identity) -> str:
    for attempt in placed:
        if attempt.started is not None and _Identity.of(attempt.started).profile == mine.profile:
            return attempt.started.profile
    return ""


def _problems(group: RunGroup, mine: _Identity | None, found: int) -> list[str]:
    """One line per problem, shard by shard (module docstring)."""
    problems: list[str] = []
    for shard, attempts in group.by_shard():
        if not attempts:
            problems.append(f"shard {shard}/{group.shards}: missing: no journal of it among the {found} found")
        for attempt in attempts:
            where = f"{attempt.label} ({attempt.run_dir})"
            run = attempt.started
            if run is None:
                problems.append(f"{attempt.run_dir}: unplaced: its journal has no run-started record "
                                "(its first lines were lost), so which shard it is cannot be told")
                continue
            if not attempt.superseded and not attempt.finished:
                problems.append(f"{where}: unfinished: no run-finished record (still running, or its soak died)")
            if not attempt.superseded and attempt.loaded.torn_tail:
                problems.append(f"{where}: torn: its journal's last line is cut short (soak was killed writing it)")
            if mine is not None:
                problems += [f"{where}: {text}" for text in _mismatches(run, mine, group.profile)]
    return problems


def _mismatches(run: RunStarted, mine: _Identity, profile: str) -> list[str]:
    theirs = _Identity.of(run)
    texts = []
    if theirs.profile != mine.profile:
        texts.append(f"another profile ({run.profile}, hash {run.profile_hash or '-'}; "
                     f"the group's is {profile}, hash {mine.profile or '-'})")
    if theirs.seed != mine.seed:
        texts.append(f"another seed ({theirs.seed}; the group's is {mine.seed})")
    if theirs.shards != mine.shards:
        texts.append(f"another shard count ({theirs.shards}; the group's is {mine.shards})")
    if theirs.run_group != mine.run_group:
        texts.append(f"another run group ({theirs.run_group}; the group's is {mine.run_group})")
    return texts
