"""deploy/systemd: the units pass systemd-analyze verify, and every soak command they run parses."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import click

from soak.cli import cli
from tests.conftest import REPO

UNITS = REPO / "deploy" / "systemd"
PREFIX = "/opt/soak"
"""Where the units expect soak (README); the test points it at this checkout."""


def installed_units(tmp_path: Path) -> list[Path]:
    units = []
    for unit in sorted(UNITS.glob("soak-*.*")):
        target = tmp_path / unit.name
        target.write_text(unit.read_text().replace(PREFIX, str(REPO)))
        units.append(target)
    return units


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: scripts/bootstrap installs the systemd package"
    units = installed_units(tmp_path)
    assert {u.suffix for u in units} == {".service", ".timer"}
    assert (REPO / ".venv" / "bin" / "soak").exists(), "verify checks ExecStart: run scripts/bootstrap first"
    done = subprocess.run([analyze, "verify", "--man=no", *map(str, units)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    # verify exits 0 on unknown keys and bad values (it ignores them): any output is a finding
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stdout + done.stderr


def parse(args: list[str]) -> click.Context:
    """Find the (sub)command of `soak ARGS` and parse its options as running it would (units give
    no group options: the subcommand names come first)."""
    command: click.Command = cli
    name = "soak"
    while isinstance(command, click.Group) and args and args[0] in command.list_commands(click.Context(command)):
        sub = command.get_command(click.Context(command), args[0])
        assert sub is not None
        command, name, args = sub, args[0], args[1:]
    return command.make_context(name, list(args))


def test_every_soak_command_in_the_service_parses(tmp_path: Path) -> None:
    service = (UNITS / "soak-nightly.service").read_text()
    env = dict(line.removeprefix("Environment=").split("=", 1) for line in service.splitlines()
               if line.startswith("Environment="))
    state = tmp_path / "state"
    (state / "runs").mkdir(parents=True)
    commands = []
    for line in service.splitlines():
        key, _, value = line.partition("=")
        if key in ("ExecStart", "ExecStartPre") and "/bin/soak " in value:
            for name, setting in env.items():
                value = value.replace("${" + name + "}", setting)
            argv = shlex.split(value.lstrip("-").replace("/var/lib/soak", str(state)))
            commands.append(parse(argv[1:]))
    names = [c.command.name for c in commands]
    assert names == ["prune-runs", "prune", "run"]
    run = commands[-1].params
    assert run["fail_on"] == "new" and run["duration"] == "8h" and run["pushgateway"] == "http://pushgateway:9091"
    assert str(run["profile_path"]).endswith("profiles/nightly.toml")
    assert "SOAK_HISTORY" in env
