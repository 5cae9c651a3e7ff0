"""`soak classify`: JSON shape, the table, and exit codes 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from soak.cli import main
from soak.cli.classify import classify

from .test_formats import CASES


@pytest.fixture
def logs(tmp_path: Path) -> dict[str, Path]:
    files = {
        "warn": tmp_path / "warn.log",
        "clean": tmp_path / "clean.log",
        "oom": tmp_path / "oom.log",
    }
    files["warn"].write_bytes(CASES["warning"][0].replace("\n", "\r\n").encode())
    files["clean"].write_text("[    0.000000] Linux version 6.1.0\nhello from user space\n")
    files["oom"].write_text(CASES["oom-global"][0] + CASES["gpf"][0])
    return files


def test_json_one_object_per_file_per_line(logs: dict[str, Path]) -> None:
    result = CliRunner().invoke(classify, ["--json", str(logs["warn"]), str(logs["clean"]), str(logs["oom"])])
    assert result.exit_code == 1, result.output
    objects = [json.loads(line) for line in result.output.splitlines()]
    assert objects[0] == {
        "file": str(logs["warn"]),
        "reports": [{"kind": "kernel-warning", "title": "WARNING in fi_write", "corrupted": False}],
    }
    assert objects[1] == {"file": str(logs["clean"]), "reports": []}
    assert [r["kind"] for r in objects[2]["reports"]] == ["kernel-oops", "oom"]  # primary first


def test_no_crash_exits_zero(logs: dict[str, Path]) -> None:
    result = CliRunner().invoke(classify, ["--json", str(logs["clean"])])
    assert result.exit_code == 0
    assert json.loads(result.output) == {"file": str(logs["clean"]), "reports": []}


def test_table_output(logs: dict[str, Path]) -> None:
    result = CliRunner().invoke(classify, [str(logs["warn"]), str(logs["clean"])])
    assert result.exit_code == 1
    assert "WARNING in fi_write" in result.output
    assert "kernel-warning" in result.output
    assert "no crash" in result.output


def test_unreadable_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["classify", str(tmp_path / "missing.log")])
    assert exit_info.value.code == 2
    assert "missing.log" in capsys.readouterr().err


def test_exit_code_through_the_soak_entry_point(logs: dict[str, Path]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["classify", "--json", str(logs["warn"])])
    assert exit_info.value.code == 1
