"""The CLI commands a user meets first: doctor, image info, profile check, summary --json/--junit."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.qemu


def soak(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "soak", *args], capture_output=True, text=True, timeout=120)


def test_doctor_reports_qemu_kvm_and_the_image() -> None:
    done = soak("doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    for needle in ("QEMU", "KVM", "accel = auto", "guest image", "soak can run here"):
        assert needle in done.stdout, done.stdout


def test_doctor_fails_without_qemu() -> None:
    done = soak("doctor", "--qemu", "qemu-system-nonexistent")
    assert done.returncode == 1
    assert "cannot run here" in done.stdout and "no QEMU" in done.stdout


def test_summary_of_a_missing_run_is_a_usage_error(tmp_path: Path) -> None:
    done = soak("summary", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("UsageError:") and "Traceback" not in done.stderr


def test_summary_json_and_junit_of_a_real_run(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text('[run]\nname = "cli"\nduration = "20s"\naccel = "tcg"\nmetrics_listen = ""\n'
                       '[[group]]\nname = "c"\nvcpus = 2\n')
    run = soak("run", str(profile), "--run-dir", str(tmp_path / "run"))
    assert run.returncode == 0, run.stdout[-3000:]
    done = soak("summary", str(tmp_path / "run"), "--json", "--junit", str(tmp_path / "junit.xml"))
    assert done.returncode == 0
    data = json.loads(done.stdout)
    assert data["verdict"] == "clean" and data["complete"]
    assert data["vms"][0]["name"] == "c-0" and data["vms"][0]["vcpus"] == 2 and data["vms"][0]["boots"] == 1
    assert data["metrics"]["boots"] == 1  # the same totals a Pushgateway would get
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert suite.get("tests") == "1" and suite.get("failures") == "0"
