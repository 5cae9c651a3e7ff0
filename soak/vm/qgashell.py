"""What soak runs inside a guest through QEMU's guest agent (``guest-exec``), and how it reads the answers.

Kept apart from `soak.vm.qga` (the conversation) because these are guest-side
shell programs: each one is run as ``/bin/sh -c SCRIPT ARGS...`` so no value is
ever quoted into a script, and each one bounds what it leaves behind (files in
``/run/soak-qga``, output cut to `OUTPUT_LIMIT`).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import shlex
from typing import Any

OUTPUT_LIMIT = 64 * 1024
"""Output of a job or command kept by the guest: the first and last 32 KiB."""
MAX_JOB_LINES = 4096
"""Lines of one job's output turned into events (the first and last half; stress-ng prints far fewer)."""

JOB_WRAPPER = f"""\
d=${{SOAK_QGA_DIR:-/run/soak-qga}}; mkdir -p "$d" 2>/dev/null || d=/tmp; o="$d/$1.out"; f="$d/$1.pid"
$2 sh -c "$0" >"$o" 2>&1 </dev/null & p=$!; echo "$p" >"$f"; wait "$p"; rc=$?
n=$(wc -c <"$o"); if [ "$n" -gt {OUTPUT_LIMIT} ]; then head -c {OUTPUT_LIMIT // 2} "$o"; echo
echo "[soak: $((n - {OUTPUT_LIMIT})) bytes of output dropped]"; tail -c {OUTPUT_LIMIT // 2} "$o"; else cat "$o"; fi
rm -f "$o" "$f"; exit "$rc"
"""
"""``sh -c JOB_WRAPPER CMD NAME PREFIX``: runs CMD under PREFIX (``setsid``: its own process group, so
`STOP_JOB` reaches all of it; or ``timeout -s KILL N``), keeps its pid, returns its exit status and
at most `OUTPUT_LIMIT` bytes of its output."""
STOP_JOB = """\
d=${SOAK_QGA_DIR:-/run/soak-qga}; [ -e "$d/$0.pid" ] || d=/tmp
p=$(cat "$d/$0.pid" 2>/dev/null) || exit 0
kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; i=0
while [ -e "$d/$0.pid" ]; do
[ $i -ge 50 ] && { kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p"; exit 0; }; sleep 0.1; i=$((i + 1)); done
"""
"""``sh -c STOP_JOB NAME``: SIGTERM to the job's process group, SIGKILL 5 s later (as soak's agent)."""
FALLBACK_LOAD = """\
i=0; while [ $i -lt "$0" ]; do timeout "$1" sh -c 'while :; do :; done' & i=$((i + 1)); done; wait
echo "soak: no stress-ng in this guest: ran $0 busy loops for $1 s"
"""
"""What a guest without stress-ng runs instead of a planned stress-ng run (``sh -c FALLBACK_LOAD
WORKERS SECONDS``): one busy loop per stress-ng worker for its duration. It loads the vCPUs, checks
nothing and reports no throughput; it exits 0, so it is never a finding."""
GUEST_FAULTS = {
    "sysrq-crash": "echo 1 >/proc/sys/kernel/sysrq; sleep 0.2; echo c >/proc/sysrq-trigger",
    "oom": 'read -r k mt rest </proc/meminfo; dd if=/dev/zero of=/dev/null bs="$((mt * 95 / 100))k" count=1',
}
"""The guest faults a shell can provoke (`soak.image.faults` USER faults), as soak's agent does them."""


def fallback_load(cmd: str) -> str:
    """`FALLBACK_LOAD` for a planned stress-ng run: as many busy loops as it has workers, as long."""
    words = shlex.split(cmd)
    workers, secs = 0, 10
    for flag, value in itertools.pairwise(words):
        if flag == "--timeout":
            secs = int(value.rstrip("s") or 10)
        elif flag.startswith("--") and value.isdigit():
            workers += int(value)
    return shlex.join(["sh", "-c", FALLBACK_LOAD, str(max(1, workers)), str(secs)])


def exit_of(status: dict[str, Any]) -> tuple[int, str, bool]:
    """(rc, output, truncated) of an exited guest-exec; a signal is 128 + N, as a shell says it."""
    rc = int(status["exitcode"]) if "exitcode" in status else 128 + int(status.get("signal", 9))
    output = base64.b64decode(status.get("out-data", "")).decode("utf-8", "replace")
    truncated = bool(status.get("out-truncated")) or ("[soak: " in output and " bytes of output dropped]" in output)
    return rc, output, truncated


def bounded_lines(output: str) -> list[str]:
    lines = output.splitlines()
    if len(lines) <= MAX_JOB_LINES:
        return lines
    half = MAX_JOB_LINES // 2
    return [*lines[:half], f"[soak: {len(lines) - MAX_JOB_LINES} lines of output dropped]", *lines[-half:]]


def first_float(text: str) -> float:
    try:
        return float(text.split()[0])
    except (IndexError, ValueError):
        return 0.0


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` in KiB by field name."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        with contextlib.suppress(ValueError, IndexError):
            fields[key] = int(rest.split()[0])
    return fields
