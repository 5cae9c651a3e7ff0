"""QEMU that cannot start is not a guest bug: its refusals, and whose problem each one is.

A QEMU that exits with an error code before its guest ran (no console byte, no
agent hello) refused its arguments or could not get what they ask for. That is
an infrastructure problem with a one-line message, never a ``qemu-crash`` of the
guest, and restarting changes nothing: the runner retires the VM (or stops the
run) instead of looping. Lines as QEMU 7.2 prints them (``-msg timestamp=on``
adds a timestamp before most)::

    qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory
    qemu-system-x86_64: -m 100000000T: Value '100000000T' is out of range for parameter 'size'
    qemu-system-x86_64: Invalid SMP CPUs 300. The max CPUs supported by machine 'pc-i440fx-7.2' is 255
    qemu: could not open kernel file '/nonexistent/vmlinuz': No such file or directory
    qemu: error reading initrd /x: Failed to open file "/x": open() failed: No such file or directory
    qemu: initrd is too large, cannot support.(max: 8224767, need 11257222)
    qemu-system-x86_64: -device nosuchdev: 'nosuchdev' is not a valid device model name
    qemu-system-x86_64: -chardev socket,...: Failed to bind socket to /x/a.sock: No such file or directory

Whose it is (`Blame`): ``profile`` when the profile asks for what QEMU or this
host cannot give (exit 2 when a pre-flight check finds it before any QEMU
starts: `launch_preflight`), ``host`` for what the machine lacks or refuses
(firmware, KVM, a socket directory, disk space), ``soak`` for an argument soak
itself got wrong (a bug). Found during a run, every one of them is exit 3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from soak.detect.qemu_crash import TIMESTAMP

Blame = Literal["profile", "host", "soak"]

LAUNCH_WINDOW_S = 60.0
"""A QEMU that exits with an error within this long of its spawn, its guest silent, did not start
even when its message is one soak does not know (a slow host may take a while to refuse)."""

# (pattern, blame, what it means): the first match wins, so specific lines come first.
_RULE_TEXT: tuple[tuple[str, Blame, str], ...] = (
    (r"cannot set up guest memory", "profile", "the host cannot give the guest this much memory"),
    (r"-m \S+: .*out of range|Parameter 'size' expects", "profile", "the memory size is out of range"),
    (r"phys-bits too low|Address space limit", "profile",
     "the memory size is beyond what the guest CPU can address"),
    (r"initrd is too large", "profile", "the initrd does not fit in the guest's memory"),
    (r"Invalid SMP CPUs|Invalid CPU topology|maxcpus must be|cpus? (?:are|is) more than",
     "profile", "the vCPU count is beyond what the machine type supports"),
    (r"unsupported machine type|unable to find CPU model", "profile",
     "the machine or CPU model does not exist in this QEMU"),
    (r"could not open kernel file|error reading initrd|linux kernel too old|"
     r"could not load (?:kernel|initrd)|not a valid (?:kernel|bzImage)", "profile",
     "the guest kernel or initrd cannot be loaded"),
    (r"could not load PC BIOS|Could not open option rom|could not find .*firmware|"
     r"failed to load (?:bios|firmware)", "host", "firmware is missing (install the QEMU firmware package)"),
    (r"Could not access KVM kernel module|failed to initialize kvm|/dev/kvm|KVM is not supported",
     "host", "KVM is not usable here"),
    (r"No space left on device|Disk quota exceeded", "host", "the host's disk is full"),
    (r"Failed to bind socket|UNIX socket path .* is too long|Address already in use|"
     r"Failed to connect to .*socket", "host", "a socket for the VM cannot be created"),
    (r"Failed to get \"?(?:write|shared)\"? lock|Is another process using the image", "host",
     "a disk image is locked by another process"),
    (r"Could not open '|Could not open \"|No such file or directory|Permission denied", "host",
     "a file QEMU needs cannot be opened"),
    (r"Cannot allocate memory|Out of memory|failed to allocate", "host", "the host is out of memory"),
    (r"invalid option|is not a valid device model name|Property '.+' not found|"
     r"Parameter '.+' (?:does not accept value|expects)|Invalid parameter '|unknown migration protocol|"
     r"Duplicate ID|requires an argument|Unsupported .+ type", "soak",
     "QEMU rejected soak's command line (a soak bug, or a QEMU too old for it)"),
)
_RULES = tuple((re.compile(pattern, re.IGNORECASE), blame, meaning) for pattern, blame, meaning in _RULE_TEXT)


@dataclass(frozen=True, slots=True)
class LaunchFailure:
    """QEMU never ran the guest: an infrastructure problem, not a guest failure."""

    blame: Blame
    message: str
    """One line: what it means, then QEMU's own words."""
    line: str
    """QEMU's line that says so (timestamps removed), or "" when it said nothing."""


def launch_failure(returncode: int, *, guest_ran: bool, stderr_tail: str,
                   seconds_since_spawn: float | None = None) -> LaunchFailure | None:
    """A launch failure, or None when QEMU's exit is the guest's business (a crash of a
    running guest's QEMU: `soak.detect.qemu_crash`).

    ``guest_ran``: any console byte arrived, or the guest became ready. ``stderr_tail``:
    what this QEMU wrote to stderr (not earlier boots'). QEMU refuses its arguments by
    exiting with an error code, never by a signal, so a signal is always a crash.
    """
    if guest_ran or returncode <= 0:
        return None
    lines = [TIMESTAMP.sub("", line).strip() for line in stderr_tail.splitlines()]
    lines = [line for line in lines if line and not line.lower().startswith("use -machine help")]
    for line in reversed(lines):
        text = _without_program(line)
        if text.lower().startswith(("warning:", "info:")):
            continue
        for pattern, blame, meaning in _RULES:
            if pattern.search(text):
                return LaunchFailure(blame, f"QEMU could not start: {meaning}: {_short(text)}", text)
    if seconds_since_spawn is not None and seconds_since_spawn > LAUNCH_WINDOW_S:
        return None  # a guest that prints nothing (a user's kernel) ran a while: not a refusal
    said = _short(_without_program(lines[-1])) if lines else "no message"
    return LaunchFailure("host", f"QEMU could not start (exit code {returncode}): {said}",
                         lines[-1] if lines else "")


def launch_preflight(memory_mib: int, initrd_bytes: int | None) -> str | None:
    """A launch failure found before QEMU starts (the profile's, so exit 2), or None.

    QEMU loads the initrd into guest RAM below the kernel's limit: one as large as
    the memory itself can never fit. (The memory against the host's RAM is the
    pre-flight of ``soak.preflight``.)
    """
    if initrd_bytes is not None and initrd_bytes >= memory_mib * 1024 * 1024:
        return (f"the initrd ({initrd_bytes / 2**20:.0f} MiB) does not fit in {memory_mib} MiB of guest memory;"
                f" give the group more memory")
    return None


def _without_program(line: str) -> str:
    return re.sub(r"^(?:qemu-system-[\w-]+|qemu-kvm|qemu): ", "", line)


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
