"""Choosing the accelerator: KVM only when a probe proves it works, TCG otherwise.

``/dev/kvm`` existing proves little: in nested cloud VMs it may be a software
backend that emulates guest kernel code 100x slower than TCG, or fails on the
first instruction it lacks. ``auto`` therefore runs `soak.kvmprobe` (a one
second real-mode loop under KVM, in a child process with a deadline) and picks
KVM only on a USABLE verdict.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak.arch import DEFAULT_ARCH, Arch
from soak.errors import AccelError

PROBE_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class AccelChoice:
    accel: str
    """``kvm`` or ``tcg``: what QEMU gets."""
    reason: str
    """One line for the user: why this accelerator."""
    probe: dict[str, Any] = field(default_factory=dict)

    @property
    def warning(self) -> str | None:
        """Set when soak fell back to TCG although KVM was asked for or present."""
        if self.accel == "tcg" and self.probe.get("verdict") not in (None, "ABSENT"):
            return f"using TCG: {self.reason}"
        return None


def run_kvm_probe(timeout: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """The probe's JSON verdict; a probe that hangs or crashes is a verdict too."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "soak.kvmprobe"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"verdict": "SLOW_OR_HUNG", "why": f"KVM probe did not finish in {timeout:.0f} s"}
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"verdict": "PROBE_FAILED", "why": f"KVM probe crashed: {done.stderr.strip()[-300:]}"}
    return result


def choose_accel(mode: str, probe: dict[str, Any] | None = None) -> AccelChoice:
    """Decide the accelerator for ``mode`` (auto, kvm or tcg).

    :raise AccelError: ``kvm`` was demanded but /dev/kvm cannot be used at all.
    """
    if mode == "tcg":
        return AccelChoice("tcg", "TCG requested by the profile")
    result = probe if probe is not None else run_kvm_probe()
    verdict = str(result.get("verdict"))
    why = str(result.get("why", verdict))
    if verdict == "USABLE":
        return AccelChoice("kvm", f"KVM probe passed: {why}", result)
    if mode == "kvm":
        if verdict in ("ABSENT", "PERMISSION_DENIED", "OPEN_FAILED"):
            raise AccelError(f"accel = \"kvm\" but KVM cannot be used: {why}")
        return AccelChoice("kvm", f"KVM forced by the profile although the probe says: {why}", result)
    if verdict == "ABSENT":
        return AccelChoice("tcg", "no /dev/kvm on this host", result)
    return AccelChoice("tcg", f"KVM is present but not usable ({why})", result)


def accel_for(accel: str, arch: Arch) -> str:
    """The accelerator a guest of ``arch`` gets: the run's choice, or TCG where KVM cannot run it."""
    if accel == "kvm" and platform.machine() not in arch.kvm_hosts:
        return "tcg"
    return accel


def qemu_for(arch: Arch, configured: str) -> str:
    """The QEMU binary for ``arch`` guests.

    ``run.qemu`` names the x86_64 binary; the other architectures' binaries are
    taken from the same directory when it names one (a QEMU built from source),
    else from PATH.
    """
    if arch.name == DEFAULT_ARCH:
        return configured
    if "/" in configured:
        return str(Path(configured).with_name(arch.qemu))
    return arch.qemu


def qemu_version(qemu: str, package: str = "qemu-system-x86") -> str:
    """QEMU's version string, e.g. ``7.2.22``.

    :raise AccelError: the binary is missing (the message names ``package``) or does not run.
    """
    path = shutil.which(qemu)
    if path is None:
        raise AccelError(f"{qemu} not found: install QEMU (Debian: apt-get install {package})")
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise AccelError(f"{qemu} --version failed: {exc}") from exc
    match = re.search(r"version (\S+)", out)
    return match.group(1) if match else out.strip()
