"""Statuses over sequences of runs: the rules of soak.history.status, through the store and without it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from soak.history import (
    Chronicle,
    HistoryLocation,
    HistoryStore,
    Policy,
    RunPoint,
    import_runs,
    read_facts,
    run_statuses,
)
from soak.history.listing import chronicle
from soak.history.status import status_of
from tests.history.journals import CRASH, DAY, LOCKUP, T0, WARN, write_run

KEY = ("kernel-warning", "WARNING in foo")


def statuses_over(pattern: str, policy: Policy | None = None) -> str:
    """One profile's runs, oldest first: ``S`` saw the signature, ``.`` did not, ``x`` booted nothing.
    Returns the status in each run that saw it (first letter), the pattern's letter elsewhere."""
    policy = policy or Policy()
    runs = [RunPoint(f"r{i:03d}", "p", T0 + i * DAY, c != "x") for i, c in enumerate(pattern)]
    history = Chronicle(runs, {KEY: [r.run_id for r, c in zip(runs, pattern, strict=True) if c == "S"]})
    return "".join(history.status(KEY, r, policy)[0] if c == "S" else c for r, c in zip(runs, pattern, strict=True))


@pytest.mark.parametrize(("pattern", "expected"), [
    ("S", "n"),
    ("SS", "nk"),
    ("SSSS", "nkkk"),
    ("S..S", "n..k"),            # two quiet runs: not yet a regression (K = 3)
    ("S...S", "n...r"),          # three quiet runs, then back: regressed
    ("SSSSS......S", "nkkkk......r"),   # a regular that was fixed for six runs and came back
    ("S...S...S", "n...r...f"),  # it keeps coming back with gaps: flaky, not regressed again
    ("S.S.S.S", "n.k.k.k"),      # every other run: seen in half, a regular (known)
    ("S.x.S", "n.x.k"),          # a run that booted nothing could not have seen it
    ("S.xxx.S", "n.xxx.k"),
    ("S..xx.S", "n..xx.r"),
    (".........S", ".........n"),
])
def test_statuses_over_a_sequence_of_runs(pattern: str, expected: str) -> None:
    assert statuses_over(pattern) == expected


def test_k_and_the_window_are_the_users() -> None:
    assert statuses_over("S..S", Policy(regressed_after=2)) == "n..r"
    assert statuses_over("S...S...S", Policy(regressed_after=3, window=4)) == "n...r...r"  # window too short to see 2
    with pytest.raises(ValueError, match="regressed-after"):
        Policy(regressed_after=11, window=10)


def test_flaky_needs_two_sightings_in_the_window_and_fewer_than_half() -> None:
    assert status_of(seen_before=True, seen_in_profile_before=True, recent=[True, False, False, False, True],
                     policy=Policy()) == "flaky"
    assert status_of(seen_before=True, seen_in_profile_before=True, recent=[True, False, False, True],
                     policy=Policy()) == "known"  # 2 of 4: half is not fewer than half
    assert status_of(seen_before=True, seen_in_profile_before=False, recent=[False] * 10,
                     policy=Policy()) == "known"  # known from another profile, never failed here


def test_a_signature_known_from_another_profile_is_not_new() -> None:
    runs = [RunPoint("a", "selftest", T0, True), RunPoint("b", "nightly", T0 + DAY, True)]
    assert Chronicle(runs, {KEY: ["a", "b"]}).status(KEY, runs[1], Policy()) == "known"


def test_statuses_depend_on_earlier_runs_only(tmp_path: Path) -> None:
    """Rated the night it ran, after later runs, re-imported, or imported in any order: the same."""
    plan = [[WARN], [], [WARN, LOCKUP], [], [], [], [WARN], [CRASH], [], [WARN]]
    dirs = [write_run(tmp_path / "runs", f"run{i}", started=T0 + i * DAY, failures=f) for i, f in enumerate(plan)]
    facts = [read_facts(d)[0] for d in dirs]

    with HistoryStore.open(HistoryLocation(tmp_path / "nightly.db", True)) as store:  # type: ignore[union-attr]
        that_night = []
        for d, f in zip(dirs, facts, strict=True):
            that_night.append(run_statuses(f, store, Policy()))  # before it is recorded: "as if"
            assert import_runs(store, [d])[0].outcome == "added"
            assert run_statuses(f, store, Policy()) == that_night[-1]  # recorded: the same
        assert {r.outcome for r in import_runs(store, dirs)} == {"unchanged"}
        later = [run_statuses(f, store, Policy()) for f in facts]
    shuffled = dirs[:]
    random.Random(4).shuffle(shuffled)
    with HistoryStore.open(HistoryLocation(tmp_path / "shuffled.db", True)) as store:  # type: ignore[union-attr]
        import_runs(store, shuffled)
        in_any_order = [run_statuses(f, store, Policy()) for f in facts]

    assert that_night == later == in_any_order
    statuses = [[s for _, s in sorted(r.items())] for r in later]
    assert statuses == [["new"], [], ["known", "new"], [], [], [], ["regressed"], ["new"], [], ["flaky"]]
    assert later[2] == {("kernel-warning", "WARNING in foo"): "known", ("soft-lockup", "BUG: soft lockup in bar"): "new"}


def test_expected_failures_never_make_a_signature_known(tmp_path: Path) -> None:
    """A self-test's declared crash must not hide the same title failing for real in the nightly."""
    selftest = write_run(tmp_path, "self", started=T0, profile="selftest", expected=[CRASH])
    nightly = write_run(tmp_path, "night", started=T0 + DAY, failures=[CRASH])
    with HistoryStore.open(HistoryLocation(tmp_path / "h.db", True)) as store:  # type: ignore[union-attr]
        import_runs(store, [selftest, nightly])
        sightings = store.sightings()
        history = chronicle(store.runs(), sightings)
        assert run_statuses(read_facts(selftest)[0], store, Policy()) == {(CRASH[0].value, CRASH[1]): "expected"}
        assert run_statuses(read_facts(nightly)[0], store, Policy()) == {(CRASH[0].value, CRASH[1]): "new"}
    assert {s.run_id: (s.count, s.expected) for s in sightings} == {"self": (1, 1), "night": (1, 0)}
    assert history.runs.keys() == {"self", "night"}
