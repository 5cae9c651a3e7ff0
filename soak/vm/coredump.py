"""A crashed QEMU's core dump turned into a backtrace of all its threads.

QEMU is spawned with ``RLIMIT_CORE`` = `CORE_LIMIT_BYTES` and its VM's folder
as working directory (`QemuProcess.spawn`), so with the usual ``core_pattern``
(``core``, ``core.%p``) the kernel writes the core there before soak reaps the
process. `collect_core` then runs ``gdb -batch`` on it with a deadline, keeps
the text, and deletes the core: a core is as big as QEMU's memory, and a soak
that crashes QEMU a hundred times must not keep a hundred of them. With
``keep`` the core is moved to ``vms/VM/cores/`` instead, at most
`MAX_KEPT_CORES` per VM (later ones are deleted, and the evidence says so).

Debian's debug-symbol archive is not reachable from every machine, so QEMU's
own frames often have no names: they are written as ``module+offset`` (stable
for one QEMU build). With the debug symbols installed (``qemu-system-x86-dbgsym``
from Debian's debug archive; ``libc6-dbg`` for glibc) gdb names them by itself.

Cores piped to a helper (``core_pattern`` starting with ``|``, e.g.
systemd-coredump) are fetched with ``coredumpctl`` when it is installed.
Everything is best effort: a missing gdb, an unreadable or absent core is a
line in the evidence, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from soak.detect.backtrace import MARK, GdbReport, parse_gdb

CORE_LIMIT_BYTES = 2 << 30
"""RLIMIT_CORE for QEMU: its own heap, the TCG translation cache and thread stacks fit many
times over (a 256 MiB TCG guest run with ``dump-guest-core=off`` dumps 76 MiB); a truncated
core loses the high mappings (thread stacks), so the bound must not be tight."""
MAX_KEPT_CORES = 2
"""Cores kept per VM when the user asks to keep them; later ones are deleted."""
GDB_OUTPUT_LIMIT = 4 << 20
"""Bytes of gdb output kept: thousands of threads' backtraces, not a runaway."""
BACKTRACE_FILE = "qemu-backtrace.txt"
GDB_DEADLINE_S = 60.0
"""What `collect_core` should be given: gdb reads a 100 MiB core in 2 s here, 20x on a loaded host."""

_GDB_SCRIPT = [
    "set pagination off", "set width 0", "set confirm off", "set debuginfod enabled off",
    f"echo {MARK}siginfo-code\\n", "print $_siginfo.si_code",
    f"echo {MARK}siginfo-pid\\n", "print $_siginfo._sifields._kill.si_pid",
    f"echo {MARK}mappings\\n", "info proc mappings",
    f"echo {MARK}crashing\\n", "bt",
    f"echo {MARK}threads\\n", "thread apply all bt",
]

HEADER = """\
# QEMU backtrace of all threads, from its core dump ({how}).
# QEMU: {binary}; core: {core}
# Frames of QEMU without symbols end in "<- MODULE+OFFSET" (stable for this QEMU build).
# gdb names them itself when QEMU's debug symbols are installed (Debian: qemu-system-x86-dbgsym
# from the debug archive, which is not reachable from every machine; libc6-dbg for glibc's frames).
"""


@dataclass
class CoreEvidence:
    """What a core gave: files for the failure's evidence, and the parsed backtrace."""

    files: dict[str, str] = field(default_factory=dict)
    report: GdbReport | None = None
    note: str = ""
    """Why there is no backtrace (no core, no gdb, a timeout ...), or where the core was kept."""
    kept: Path | None = None


def core_limit() -> int:
    """The RLIMIT_CORE to give QEMU: `CORE_LIMIT_BYTES`, or less if soak's own hard limit is lower."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    return CORE_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(CORE_LIMIT_BYTES, hard)


def core_candidates(pattern: str, cwd: Path, pid: int, uses_pid: bool) -> list[Path]:
    """Where the kernel put ``pid``'s core under a file ``core_pattern`` (none for a pipe)."""
    if pattern.startswith("|") or not pattern.strip():
        return []
    text, out, i = pattern.strip(), [], 0
    while i < len(text):
        if text[i] == "%" and i + 1 < len(text):
            spec = text[i + 1]
            out.append("%" if spec == "%" else str(pid) if spec in "pP" else "*")
            i += 2
        else:
            out.append(glob.escape(text[i]))
            i += 1
    name = "".join(out)
    if uses_pid and "%p" not in text and "%P" not in text:
        name += f".{pid}"
    full = name if name.startswith("/") else str(cwd / name)
    found = []
    for name in glob.glob(full):
        with contextlib.suppress(OSError):
            found.append((Path(name).stat().st_mtime, Path(name)))
    return [path for _, path in sorted(found, reverse=True)]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _kernel_setting(name: str, default: str) -> str:
    try:
        return Path(f"/proc/sys/kernel/{name}").read_text().strip()
    except OSError:
        return default


async def _run(argv: list[str], timeout: float) -> tuple[int | None, str]:
    """Run a helper with a deadline; its output (bounded) and exit code, None on timeout."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    assert process.stdout is not None
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while chunk := await process.stdout.read(65536):
                if size < GDB_OUTPUT_LIMIT:
                    chunks.append(chunk[: GDB_OUTPUT_LIMIT - size])
                    size += len(chunks[-1])
            code: int | None = await process.wait()
    except TimeoutError:
        code = None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return code, b"".join(chunks).decode("utf-8", "replace")


async def _fetch_piped_core(pattern: str, vm_dir: Path, pid: int, timeout: float) -> tuple[Path | None, str]:
    helper = pattern[1:].split()[0] if pattern[1:].split() else "?"
    coredumpctl = shutil.which("coredumpctl")
    if coredumpctl is None:
        return None, f"core_pattern pipes cores to {helper}; soak cannot fetch them (no coredumpctl)"
    target = vm_dir / f"core.{pid}"
    code, output = await _run([coredumpctl, "--no-pager", "dump", str(pid), f"--output={target}"], timeout)
    if code != 0 or not target.exists():
        return None, f"coredumpctl dump {pid} failed: {output.strip().splitlines()[-1:] or code}"
    return target, ""


async def collect_core(vm_dir: Path, pid: int, qemu_binary: str, deadline: float, *,
                       keep: bool = False, since: float | None = None) -> CoreEvidence:
    """The backtrace of QEMU ``pid`` from its core, within ``deadline`` seconds.

    Call it after QEMU died by a signal that dumps core (SIGABRT, SIGSEGV, SIGBUS,
    SIGILL, SIGFPE ...) and was reaped. ``since`` (a ``time.time()``) ignores older cores
    of a pattern without ``%p``. The core is deleted afterwards unless ``keep``.
    """
    start = time.monotonic()
    pattern = _kernel_setting("core_pattern", "core")
    core: Path | None = None
    note = ""
    if pattern.startswith("|"):
        core, note = await _fetch_piped_core(pattern, vm_dir, pid, deadline)
    else:
        uses_pid = _kernel_setting("core_uses_pid", "0") == "1"
        fresh = [p for p in core_candidates(pattern, vm_dir, pid, uses_pid)
                 if since is None or _mtime(p) >= since - 1]
        core = fresh[0] if fresh else None
        if core is None:
            note = f"no core dump found (core_pattern {pattern!r}, RLIMIT_CORE of QEMU, or the signal does not dump)"
    if core is None:
        return CoreEvidence(note=note)
    gdb = shutil.which("gdb")
    if gdb is None:  # the core is then the only evidence there is: keep it (bounded)
        evidence, keep = CoreEvidence(note="gdb is not installed: no backtrace (apt-get install gdb)"), True
    else:
        try:
            evidence = await _backtrace(gdb, core, pid, qemu_binary, deadline - (time.monotonic() - start))
        except OSError as exc:
            evidence = CoreEvidence(note=f"gdb failed: {exc}")
    evidence.kept = _keep_or_delete(core, vm_dir, pid, keep)
    if evidence.kept is not None:
        evidence.note = (evidence.note + f"; core kept as {evidence.kept}").lstrip("; ")
    if evidence.files and evidence.note:
        evidence.files[BACKTRACE_FILE] = f"# {evidence.note}\n" + evidence.files[BACKTRACE_FILE]
    return evidence


async def _backtrace(gdb: str, core: Path, pid: int, qemu_binary: str, timeout: float) -> CoreEvidence:
    binary = shutil.which(qemu_binary) or qemu_binary
    argv = [gdb, "-batch", "-nx", "-q"]
    for command in _GDB_SCRIPT:
        argv += ["-ex", command]
    code, output = await _run([*argv, binary, str(core)], max(1.0, timeout))
    if f"LWP {pid}" not in output:
        return CoreEvidence(note=f"the core {core.name} is not QEMU pid {pid}'s (or gdb could not read it)")
    report = parse_gdb(output, pid)
    how = "gdb -batch, thread apply all bt" + ("" if code is not None else f"; cut at {timeout:.0f}s")
    text = HEADER.format(how=how, binary=binary, core=core.name)
    if report.sender_pid is not None:
        text += f"# {report.signal} was sent by pid {report.sender_pid} (kill), not raised by QEMU itself.\n"
    text += "\n" + report.threads
    return CoreEvidence(files={BACKTRACE_FILE: text}, report=report,
                        note="" if code is not None else f"gdb did not finish in {timeout:.0f}s")


def _keep_or_delete(core: Path, vm_dir: Path, pid: int, keep: bool) -> Path | None:
    """Move the core to ``vm_dir/cores`` (bounded) when asked, else delete it."""
    if keep:
        kept_dir = vm_dir / "cores"
        with contextlib.suppress(OSError):
            kept_dir.mkdir(exist_ok=True)
            if len(list(kept_dir.iterdir())) < MAX_KEPT_CORES:
                target = kept_dir / f"core.{pid}"
                shutil.move(core, target)
                return target
    with contextlib.suppress(OSError):
        os.unlink(core)
    return None
