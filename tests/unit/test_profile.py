"""Profile validation: good profiles expand to the fleet; bad ones give one precise line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from soak.errors import ProfileError
from soak.profile import expand_fleet, load_profile, validate_profile
from soak.rundir import default_run_dir

REPO = Path(__file__).resolve().parents[2]


def test_shipped_profiles_are_valid() -> None:
    for path in sorted((REPO / "profiles").glob("*.toml")):
        profile = load_profile(path)
        assert expand_fleet(profile), path


def test_smoke_profile_varies_shapes() -> None:
    fleet = expand_fleet(load_profile(REPO / "profiles" / "smoke.toml"))
    assert len(fleet) >= 4
    assert {1, 2, 4, 8} <= {vm.vcpus for vm in fleet}
    assert len({vm.memory_mib for vm in fleet}) > 1


def test_fleet_is_deterministic_for_a_seed() -> None:
    data = {"run": {"seed": 42}, "group": [{"name": "r", "count": 6, "vcpus": "1-8"}]}
    first = [vm.vcpus for vm in expand_fleet(validate_profile(data, "x"))]
    second = [vm.vcpus for vm in expand_fleet(validate_profile(data, "x"))]
    assert first == second
    other = [vm.vcpus for vm in expand_fleet(validate_profile({**data, "run": {"seed": 43}}, "x"))]
    assert other != first


def test_lists_cycle_over_the_group() -> None:
    data = {"group": [{"name": "a", "count": 5, "vcpus": [1, 2], "memory": ["256M", "1G"]}]}
    fleet = expand_fleet(validate_profile(data, "x"))
    assert [vm.vcpus for vm in fleet] == [1, 2, 1, 2, 1]
    assert [vm.memory_mib for vm in fleet] == [256, 1024, 256, 1024, 256]
    assert [vm.name for vm in fleet] == ["a-0", "a-1", "a-2", "a-3", "a-4"]


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ({"group": [{"name": "a", "vcpus": [1, 0]}]}, "group[0].vcpus", "0 vCPUs"),
        ({"group": [{"name": "a", "vcpus": "8-2"}]}, "group[0].vcpus", "empty"),
        ({"group": [{"name": "a", "memory": "64M"}]}, "group[0].memory", "at least 96 MiB"),
        ({"group": [{"name": "a", "cout": 3}]}, "group[0].cout", "unknown field"),
        ({"run": {"duration": "soon"}, "group": [{"name": "a"}]}, "run.duration", "not a duration"),
        ({}, "group", "missing"),
        ({"group": [{"name": "a"}, {"name": "a"}]}, "(top level)", "unique"),
        ({"watch": {"hang_timeout": "1s"}, "group": [{"name": "a"}]}, "watch", "hang_timeout"),
        ({"run": {"accel": "xen"}, "group": [{"name": "a"}]}, "run.accel", "'auto', 'tcg' or 'kvm'"),
        ({"run": {"name": "../../../tmp/evil"}, "group": [{"name": "a"}]}, "run.name", "is not a name"),
        ({"run": {"duration": "0s"}, "group": [{"name": "a"}]}, "run.duration", "at least 1s"),
        ({"run": {"duration": "365000d"}, "group": [{"name": "a"}]}, "run.duration", "too long: at most 366d"),
        ({"run": {"duration": float("inf")}, "group": [{"name": "a"}]}, "run.duration", "too long"),
        ({"run": {"duration": float("nan")}, "group": [{"name": "a"}]}, "run.duration", "not NaN"),
        ({"run": {"seed": 2**70}, "group": [{"name": "a"}]}, "run.seed", "less than or equal"),
        ({"run": {"metrics_listen": "9464"}, "group": [{"name": "a"}]}, "run.metrics_listen", "host:port"),
        ({"watch": {"boot_timeout": "2d"}, "group": [{"name": "a"}]}, "watch.boot_timeout", "at most 1d"),
        ({"watch": {"qmp_timeout": "1ms"}, "group": [{"name": "a"}]}, "watch.qmp_timeout", "at least 0.1s"),
        ({"group": [{"name": "a", "count": 2, "fault": [{"type": "pause", "every": "1m", "vms": [1, 7]}]}]},
         "group[0].fault", "fault[0].vms names VM 7, but the group has 2 (VMs 0-1)"),
        ({"group": [{"name": "a", "fault": [{"type": "pause", "every": "1m", "vms": [-1]}]}]},
         "group[0].fault[0].vms", "negative"),
        ({"group": [{"name": "a", "fault": [{"type": "pause", "every": "0.5s"}]}]},
         "group[0].fault[0].every", "at least 1s"),
        ({"group": [{"name": "a", "fault": [{"type": "pause", "every": "1m", "duration": "2d"}]}]},
         "group[0].fault[0].duration", "at most 1d"),
        ({"group": [{"name": "a", "memory": "900T"}]}, "group[0].memory", "more than any guest can use"),
        ({"group": [{"name": "Wide"}]}, "group[0].name", "is not a name"),
        ({"group": [{"name": "a", "image": {"append": "quiet\ninit=/x"}}]}, "group[0].image.append",
         "control characters"),
        ({"group": [{"name": "a", "vcpus": "1-99999999999"}]}, "group[0].vcpus", "at most 255"),
        ({"group": [{"name": "a", "bad\nkey": 1}]}, "group[0].'bad\\nkey'", "unknown field"),
    ],
)
def test_bad_profiles_name_field_and_problem(data: dict[str, object], field: str, problem: str) -> None:
    with pytest.raises(ProfileError) as info:
        validate_profile(data, "p.toml")
    assert info.value.field == field
    assert problem in info.value.problem
    assert str(info.value).startswith(f"p.toml: {field}: ")


def test_a_huge_or_deep_file_is_one_line(tmp_path: Path) -> None:
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ProfileError, match=r"deep\.toml: not valid TOML: nested too deeply$"):
        load_profile(deep)
    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ProfileError, match=r"huge\.toml: too large for a profile"):
        load_profile(huge)


def test_default_run_dir_stays_under_its_base(tmp_path: Path) -> None:
    for name in ("../../../tmp/evil", "..", ".hidden", "", "a/b", "x\ny"):
        path = default_run_dir(name, tmp_path)
        assert path.parent == tmp_path and not path.name.startswith("."), (name, path)
        assert "/" not in path.name and "\n" not in path.name


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[run\nname = 1\n")
    with pytest.raises(ProfileError, match=r"broken\.toml: not valid TOML"):
        load_profile(path)


def test_cli_reports_a_bad_profile_in_one_line_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[group]]\nname = "a"\nvcpus = [1, 300]\n')
    for command in (["profile", "check", str(path)], ["run", str(path)]):
        done = subprocess.run([sys.executable, "-m", "soak", *command], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert lines == [f"ProfileError: {path}: group[0].vcpus: 300 vCPUs: must be between 1 and 255"], done.stderr
        assert "Traceback" not in done.stderr


def test_cli_profile_check_ok() -> None:
    done = subprocess.run([sys.executable, "-m", "soak", "profile", "check", str(REPO / "profiles" / "smoke.toml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout and "mixed-3 8x" in done.stdout
