"""Sharding is a filter over the fleet: properties for every N and seed, and the placement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soak.errors import UsageError
from soak.profile import Profile, expand_fleet, load_profile, validate_profile
from soak.session import select_fleet
from soak.shard import Placement, Shard, parse_shard, profile_hash, resolve_placement

REPO = Path(__file__).resolve().parents[2]

vcpu_choices = st.one_of(
    st.integers(1, 16),
    st.lists(st.integers(1, 16), min_size=1, max_size=4),
    st.tuples(st.integers(1, 8), st.integers(0, 8)).map(lambda t: f"{t[0]}-{t[0] + t[1]}"),
)
memory_choices = st.one_of(
    st.sampled_from(["128M", "256M", "1G"]),
    st.lists(st.sampled_from(["128M", "256M", "512M", "1G"]), min_size=1, max_size=3),
)


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    groups = [
        {"name": f"g{i}", "count": draw(st.integers(1, 12)), "vcpus": draw(vcpu_choices),
         "memory": draw(memory_choices)}
        for i in range(draw(st.integers(1, 4)))
    ]
    return validate_profile({"run": {"seed": draw(st.integers(0, 2**32))}, "group": groups}, "drawn")


def _shape(vm: Any) -> tuple[Any, ...]:
    return (vm.name, vm.group, vm.index, vm.vcpus, vm.memory_mib, vm.machine, vm.max_vcpus)


@settings(max_examples=200, deadline=None)
@given(profile=profiles(), data=st.data())
def test_shards_are_disjoint_cover_the_fleet_and_keep_names_and_shapes(
    profile: Profile, data: st.DataObject
) -> None:
    fleet = expand_fleet(profile)
    count = data.draw(st.integers(1, len(fleet)), label="shards")
    shards = [select_fleet(profile, [], Shard(i, count)) for i in range(count)]
    names = [vm.name for share in shards for vm in share]
    assert len(names) == len(set(names)), "a VM is in two shards"
    assert sorted(names) == sorted(vm.name for vm in fleet), "the shards do not cover the fleet"
    whole = {vm.name: _shape(vm) for vm in fleet}
    for share in shards:
        assert share, "every shard has VMs when N <= fleet size"
        for vm in share:
            assert _shape(vm) == whole[vm.name], "a shard changed a VM's shape"
    sizes = [len(share) for share in shards]
    assert max(sizes) - min(sizes) <= 1, "round-robin keeps shards balanced"


@settings(max_examples=100, deadline=None)
@given(profile=profiles(), data=st.data())
def test_a_shard_run_alone_is_the_same_as_within_the_run(profile: Profile, data: st.DataObject) -> None:
    """Re-running one shard (a requeue on another host) gives the very same VMs."""
    count = data.draw(st.integers(1, len(expand_fleet(profile))), label="shards")
    index = data.draw(st.integers(0, count - 1), label="shard")
    first = select_fleet(profile, [], Shard(index, count))
    again = select_fleet(profile.model_copy(deep=True), [], Shard(index, count))
    assert [vm.model_dump() for vm in first] == [vm.model_dump() for vm in again]


def test_a_group_is_spread_over_the_shards() -> None:
    profile = validate_profile({"group": [{"name": "big", "count": 3}, {"name": "small", "count": 3}]}, "x")
    assert [vm.name for vm in Shard(0, 3).select(expand_fleet(profile))] == ["big-0", "small-0"]
    assert [vm.name for vm in Shard(2, 3).select(expand_fleet(profile))] == ["big-2", "small-2"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [("3/3", "0 to 2"), ("1/0", "at least 1"), ("x", "expected I/N"), ("-1/3", "expected I/N"),
     ("1", "expected I/N"), ("1/2/3", "expected I/N"), ("a/b", "expected I/N")],
)
def test_bad_shards_are_usage_errors(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        parse_shard(text)


def test_more_shards_than_vms_is_a_usage_error() -> None:
    profile = validate_profile({"group": [{"name": "a", "count": 2}]}, "x")
    with pytest.raises(UsageError, match="only 2 VMs"):
        select_fleet(profile, [], Shard(2, 3))


def test_vm_names_must_be_in_the_shard() -> None:
    profile = validate_profile({"group": [{"name": "a", "count": 4}]}, "x")
    assert [vm.name for vm in select_fleet(profile, ["a-3"], Shard(1, 2))] == ["a-3"]
    with pytest.raises(UsageError, match="no VM named a-2 in shard 1/2"):
        select_fleet(profile, ["a-2"], Shard(1, 2))


def test_the_profile_hash_ignores_formatting_and_host_settings(tmp_path: Path) -> None:
    plain = tmp_path / "a.toml"
    plain.write_text('[run]\nname = "n"\nduration = "2m"\nseed = 1\n[[group]]\nname = "g"\ncount = 2\n')
    noisy = tmp_path / "b.toml"
    noisy.write_text(
        '# a comment\n[[group]]\ncount = 2   # two\nname = "g"\n\n[run]\nseed = 9\n'
        'duration = "120s"\nname = "n"\nmetrics_listen = "0.0.0.0:1"\nmax_parallel_boots = 8\n'
    )
    assert profile_hash(load_profile(plain)) == profile_hash(load_profile(noisy))
    assert profile_hash(load_profile(plain)) != profile_hash(load_profile(plain, {"duration": "3m"}))
    longer = tmp_path / "c.toml"
    longer.write_text(plain.read_text().replace("count = 2", "count = 3"))
    assert profile_hash(load_profile(plain)) != profile_hash(load_profile(longer))


PROFILE = validate_profile({"run": {"name": "n", "seed": 5}, "group": [{"name": "g", "count": 6}]}, "x")
SLURM = {
    "SLURM_JOB_ID": "107", "SLURM_ARRAY_JOB_ID": "105", "SLURM_ARRAY_TASK_ID": "2",
    "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "2", "SLURM_ARRAY_TASK_COUNT": "3",
    "SLURM_ARRAY_TASK_STEP": "1", "SLURM_RESTART_COUNT": "1", "SLURMD_NODENAME": "hv4",
    "SLURM_CLUSTER_NAME": "lab",
}


def test_a_slurm_array_task_places_itself() -> None:
    placement = resolve_placement(PROFILE, SLURM, shard="auto")
    assert placement == Placement(Shard(2, 3), 1, "hv4", "slurm-lab-105", "slurm", "105_2")
    first = resolve_placement(PROFILE, {**SLURM, "SLURM_RESTART_COUNT": "0", "SLURMD_NODENAME": "hv1"},
                              shard="auto")
    assert first.run_group == placement.run_group and first.attempt == 0
    offset = {**SLURM, "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "3", "SLURM_ARRAY_TASK_ID": "3"}
    assert resolve_placement(PROFILE, offset, shard="auto").shard == Shard(2, 3)
    with pytest.raises(UsageError, match="plain range"):
        resolve_placement(PROFILE, {**SLURM, "SLURM_ARRAY_TASK_STEP": "2"}, shard="auto")


def test_a_pod_s_attempt_counts_failures_a_drain_did_not_count() -> None:
    env = {"JOB_COMPLETION_INDEX": "1", "JOB_INDEX_FAILURE_COUNT": "1", "JOB_INDEX_IGNORED_FAILURE_COUNT": "2"}
    assert resolve_placement(PROFILE, env, shard="1/3").attempt == 3
    assert resolve_placement(PROFILE, {"JOB_COMPLETION_INDEX": "0", "JOB_INDEX_FAILURE_COUNT": ""},
                             shard="0/3").attempt == 0  # annotations absent: the first attempt


def test_an_indexed_job_pod_places_itself() -> None:
    env = {"JOB_COMPLETION_INDEX": "1", "POD_NAME": "soak-1-x7k2p", "HOSTNAME": "soak-1-x7k2p",
           "SOAK_HOST": "ignored: the CLI passes it as --host"}
    placement = resolve_placement(PROFILE, env, shard="1/3", attempt=2, run_group="3f1c9a", host="node-7")
    assert placement == Placement(Shard(1, 3), 2, "node-7", "3f1c9a", "kubernetes", "soak-1-x7k2p")


def test_shards_started_by_hand_agree_on_a_run_group() -> None:
    groups = {resolve_placement(PROFILE, {}, shard=f"{i}/3", host=f"h{i}").run_group for i in range(3)}
    assert len(groups) == 1
    other_seed = PROFILE.model_copy(update={"run": PROFILE.run.model_copy(update={"seed": 6})})
    assert resolve_placement(other_seed, {}, shard="0/3").run_group not in groups
    assert resolve_placement(PROFILE, {}).run_group == ""  # not sharded: a group of one


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [({"run_group": "a b"}, "--run-group"), ({"run_group": "x" * 64}, "at most 63"),
     ({"host": "-h"}, "--host"), ({"attempt": -1}, "--attempt"), ({"shard": "auto"}, "not a Slurm")],
)
def test_bad_placement_options_are_usage_errors(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        resolve_placement(PROFILE, {}, **kwargs)


def test_each_attempt_gets_its_own_run_directory(tmp_path: Path) -> None:
    placement = Placement(Shard(1, 3), 0, "h", "g7")
    first = placement.run_dir("nightly", tmp_path)
    assert first == tmp_path / "nightly-g7" / "shard-1-of-3-attempt-0"
    first.mkdir(parents=True)
    assert placement.run_dir("nightly", tmp_path).name == "shard-1-of-3-attempt-0-2"
    retry = Placement(Shard(1, 3), 1, "h", "g7").run_dir("nightly", tmp_path)
    assert retry.name == "shard-1-of-3-attempt-1"


@pytest.mark.parametrize("shard", ["3/3", "x/3", "9/10"])
def test_soak_run_rejects_a_bad_shard_in_one_line(shard: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "soak", "run", str(REPO / "profiles" / "smoke.toml"), "--shard", shard,
         "--metrics-listen", ""],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--shard" in lines[0], result.stderr
    assert not result.stdout.strip()


def test_run_started_keeps_the_placement_and_reads_old_journals() -> None:
    from soak import events as ev

    started = ev.RunStarted(
        t=1.0, run_id="r", profile="p", profile_path="p.toml", seed=1, accel="tcg", accel_reason="",
        version="0", duration_s=60, command=[], vms=[], host="hv2", shard=1, shards=3, fleet_size=6,
        profile_hash="ab" * 8, run_group="slurm-lab-7", attempt=1, engine="slurm", engine_job="7_1",
    )
    assert ev.from_record(ev.to_record(started)) == started
    old = {k: v for k, v in ev.to_record(started).items()
           if k not in {"host", "shard", "shards", "fleet_size", "profile_hash", "run_group", "attempt",
                        "engine", "engine_job"}}
    before_sharding = ev.from_record(old)
    assert isinstance(before_sharding, ev.RunStarted)
    assert (before_sharding.shard, before_sharding.shards, before_sharding.attempt) == (0, 1, 0)
    assert before_sharding.run_group == "" and before_sharding.fleet_size == 0
