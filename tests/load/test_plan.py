"""The load schedule: deterministic, sized to the guest, shaped by the pattern."""

from __future__ import annotations

import itertools
import re

import pytest
from pydantic import ValidationError

from soak.load import LoadSettings, StressRun, plan_runs, ramp_time_s
from soak.load.plan import EXIT_GRACE_S, MIN_VM_MIB


def runs(settings: LoadSettings, n: int = 12, *, vcpus: int = 2, memory_mib: int = 256,
         seed: int = 1, vm_index: int = 0) -> list[StressRun]:
    return list(itertools.islice(
        plan_runs(settings, vcpus=vcpus, memory_mib=memory_mib, seed=seed, vm_index=vm_index), n))


def flag(run: StressRun, name: str) -> str:
    match = re.search(rf"--{name} (\S+)", run.argv)
    assert match, f"--{name} not in {run.argv}"
    return match[1]


def vm_mib(run: StressRun) -> int:
    return int(flag(run, "vm-bytes").removesuffix("M"))


def test_same_inputs_same_runs() -> None:
    settings = LoadSettings(stressors=["cpu", "mix"], pattern="bursts")
    assert runs(settings, 50) == runs(settings, 50)


def test_the_schedule_is_endless_and_lazy() -> None:
    schedule = plan_runs(LoadSettings(), vcpus=1, memory_mib=256, seed=1, vm_index=0)
    last = next(itertools.islice(schedule, 10_000, None))
    assert last.index == 10_000


def test_always_the_flags_the_parser_and_the_guest_need() -> None:
    for run in runs(LoadSettings(stressors=["cpu", "vm", "io", "mix"], period="90s"), 20):
        assert run.argv.startswith("stress-ng ")
        for needed in ("--metrics-brief", "--verify", "--oom-avoid", "--verbose", "--temp-path /tmp"):
            assert needed in run.argv
        assert flag(run, "timeout") == "90s"
        assert run.duration_s == 90
        assert run.deadline_s == 90 + EXIT_GRACE_S
        assert "--oomable" not in run.argv and "--seed" not in run.argv


def test_verify_can_be_turned_off() -> None:
    assert "--verify" not in runs(LoadSettings(verify=False), 1)[0].argv


def test_stressor_names_are_stress_ngs() -> None:
    run = runs(LoadSettings(stressors=["cpu", "vm", "io", "timer", "tlb-shootdown"]), 1)[0]
    assert run.stressors == ("cpu", "vm", "hdd", "timer", "tlb-shootdown")
    assert "--hdd 2" in run.argv and "--hdd-bytes 4M" in run.argv
    assert "--io " not in run.argv  # stress-ng's --io is only sync(2)


def test_workers_scale_with_vcpus() -> None:
    settings = LoadSettings(stressors=["cpu", "timer"], workers_per_vcpu=1.0)
    counts = {v: runs(settings, 1, vcpus=v, memory_mib=2048)[0].workers for v in (1, 2, 4, 8)}
    assert counts == {1: 1, 2: 2, 4: 4, 8: 8}
    half = LoadSettings(stressors=["cpu"], workers_per_vcpu=0.5)
    assert runs(half, 1, vcpus=1)[0].workers == 1  # at least one
    assert runs(half, 1, vcpus=4, memory_mib=2048)[0].workers == 2


def test_workers_are_capped_so_a_small_guest_survives_them() -> None:
    run = runs(LoadSettings(stressors=["cpu", "vm", "timer"]), 1, vcpus=64, memory_mib=256)[0]
    assert run.workers == 8  # 192 MiB usable: a quarter of it for 2 MiB workers is 24


def test_vm_bytes_scale_with_memory_and_leave_room() -> None:
    settings = LoadSettings(stressors=["vm"], memory_share=0.5)
    sizes = {m: vm_mib(runs(settings, 1, vcpus=1, memory_mib=m)[0]) for m in (256, 512, 1024)}
    assert sizes[256] < sizes[512] < sizes[1024]
    assert sizes[256] <= 100  # a 256 MiB guest has ~200 MiB usable: half of it at most
    # the memory is shared between the vm workers
    assert vm_mib(runs(settings, 1, vcpus=4, memory_mib=1024)[0]) * 4 <= sizes[1024]
    assert vm_mib(runs(LoadSettings(stressors=["vm"]), 1, vcpus=1, memory_mib=96)[0]) >= MIN_VM_MIB


def test_steady_runs_back_to_back_at_full_load() -> None:
    for run in runs(LoadSettings(stressors=["cpu", "vm"], pattern="steady"), vcpus=4, memory_mib=1024):
        assert run.idle_before_s == 0 and run.workers == 4 and run.intensity == 1.0
    assert ramp_time_s(LoadSettings(), vcpus=4, memory_mib=1024) == 0


def test_ramp_grows_from_one_worker_then_stays() -> None:
    settings = LoadSettings(stressors=["cpu", "vm"], pattern="ramp", period="60s")
    workers = [r.workers for r in runs(settings, 8, vcpus=4, memory_mib=1024)]
    assert workers == [1, 2, 3, 4, 4, 4, 4, 4]
    assert [r.intensity for r in runs(settings, 4, vcpus=4, memory_mib=1024)] == [0.25, 0.5, 0.75, 1.0]
    # vm memory per worker is the full load's: the total grows with the workers
    assert len({vm_mib(r) for r in runs(settings, 8, vcpus=4, memory_mib=1024)}) == 1
    assert ramp_time_s(settings, vcpus=4, memory_mib=1024) == 3 * 60


def test_a_long_ramp_is_cut_to_eight_steps() -> None:
    workers = [r.workers for r in runs(LoadSettings(stressors=["cpu"], pattern="ramp"), 9,
                                       vcpus=32, memory_mib=8192)]
    assert workers[0] == 1 and workers[7] == workers[8] == 32
    assert workers == sorted(workers)


def test_bursts_have_seeded_idle_gaps() -> None:
    settings = LoadSettings(stressors=["cpu"], pattern="bursts", period="60s", idle="40s")
    schedule = runs(settings, 30)
    assert schedule[0].idle_before_s == 0
    gaps = [r.idle_before_s for r in schedule[1:]]
    assert all(20 <= g <= 60 for g in gaps)
    assert len(set(gaps)) == len(gaps)  # drawn, not fixed
    assert all(r.intensity == 1.0 and r.duration_s == 60 for r in schedule)
    assert gaps != [r.idle_before_s for r in runs(settings, 30, seed=2)[1:]]


def test_mix_varies_with_the_seed_and_over_time_but_replays() -> None:
    settings = LoadSettings(stressors=["mix"])
    one = [r.stressors for r in runs(settings, 20, seed=1)]
    assert one == [r.stressors for r in runs(settings, 20, seed=1)]
    assert one != [r.stressors for r in runs(settings, 20, seed=2)]
    assert one != [r.stressors for r in runs(settings, 20, seed=1, vm_index=1)]
    assert len(set(one)) > 5
    assert all(2 <= len(s) <= 3 for s in one)
    offset = LoadSettings(stressors=["mix"], seed_offset=5)
    assert one != [r.stressors for r in runs(offset, 20, seed=1)]


def test_mix_adds_to_the_listed_stressors_without_repeating_them() -> None:
    for run in runs(LoadSettings(stressors=["vm", "mix"]), 30):
        assert run.stressors[0] == "vm" and run.stressors.count("vm") == 1


def test_the_mix_does_not_depend_on_the_pattern() -> None:
    steady = [r.stressors for r in runs(LoadSettings(pattern="steady"), 10)]
    assert steady == [r.stressors for r in runs(LoadSettings(pattern="bursts"), 10)]


@pytest.mark.parametrize("table, problem", [
    ({"stressors": ["disk"]}, "stressors"),
    ({"stressors": []}, "stressors"),
    ({"stressors": ["cpu", "cpu"]}, "twice"),
    ({"period": "2s"}, "at least"),
    ({"memory_share": 0.95}, "memory_share"),
    ({"workers_per_vcpu": 0}, "workers_per_vcpu"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_settings_are_refused(table: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        LoadSettings.model_validate(table)


def test_settings_read_human_durations() -> None:
    settings = LoadSettings.model_validate({"period": "2m", "idle": "1m30s", "pattern": "bursts"})
    assert (settings.period, settings.idle) == (120.0, 90.0)
