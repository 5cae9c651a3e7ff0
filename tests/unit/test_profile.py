"""Profile validation: good profiles expand to the fleet; bad ones give one precise line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from soak.errors import ProfileError
from soak.profile import expand_fleet, load_profile, validate_profile

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
    ],
)
def test_bad_profiles_name_field_and_problem(data: dict[str, object], field: str, problem: str) -> None:
    with pytest.raises(ProfileError) as info:
        validate_profile(data, "p.toml")
    assert info.value.field == field
    assert problem in info.value.problem
    assert str(info.value).startswith(f"p.toml: {field}: ")


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
