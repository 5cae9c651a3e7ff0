"""Re-capture the stress-ng samples in this folder (needs root and stress-ng 0.15.06).

    sudo .venv/bin/python tests/load/data/capture.py

Every sample is real stress-ng output. Failures are provoked from outside, as
a guest bug would: memory of a vm worker is flipped through /proc/PID/mem,
the deleted file of an hdd worker is overwritten through /proc/PID/fd, and
workers are sent signals. Each file has a header (``RC:``, ``STOPPED:``,
``TITLE:``, ``HOW:``), a blank line, then the raw output.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLAGS = "--temp-path /tmp --metrics-brief --oom-avoid --verbose --verify"


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def descendants(pid: int) -> list[int]:
    found = children(pid)
    for child in list(found):
        found += descendants(child)
    return found


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def flip_vm_memory(pid: int, size: int) -> None:
    """Flip bits in the vm workers' big anonymous mapping, for a few seconds."""
    rng = random.Random(1)
    end = time.time() + 3
    while time.time() < end:
        for worker in (p for p in descendants(pid) if comm(p) == "stress-ng-vm"):
            try:
                maps = Path(f"/proc/{worker}/maps").read_text().splitlines()
                with open(f"/proc/{worker}/mem", "r+b", buffering=0) as mem:
                    for line in maps:
                        fields = line.split()
                        low, high = (int(x, 16) for x in fields[0].split("-"))
                        if high - low >= size - 4096 and fields[1].startswith("rw") and len(fields) < 6:
                            for _ in range(200):
                                at = low + rng.randrange(high - low)
                                mem.seek(at)
                                byte = mem.read(1)
                                mem.seek(at)
                                mem.write(bytes([byte[0] ^ 0x10]))
            except OSError:
                pass
        time.sleep(0.01)


def overwrite_hdd_files(pid: int) -> None:
    """Overwrite bytes of the hdd workers' (deleted) files, for a few seconds."""
    rng = random.Random(2)
    end = time.time() + 3
    while time.time() < end:
        for worker in descendants(pid):
            fd_dir = Path(f"/proc/{worker}/fd")
            try:
                for fd in fd_dir.iterdir():
                    if "stress-ng-hdd" in os.readlink(fd) or "(deleted)" in os.readlink(fd):
                        with open(fd, "r+b") as f:
                            size = os.fstat(f.fileno()).st_size
                            for _ in range(100):
                                if size:
                                    f.seek(rng.randrange(size))
                                    f.write(b"\xaa")
            except OSError:
                pass


def kill_worker(name: str, sig: signal.Signals) -> Callable[[int], None]:
    def act(pid: int) -> None:
        workers = [p for p in descendants(pid) if comm(p) == f"stress-ng-{name}"]
        os.kill(workers[-1], sig)  # the deepest: the vm stressor's restartable child
    return act


def stop_group(pid: int) -> None:
    os.killpg(pid, signal.SIGTERM)


def capture(name: str, cmd: str, how: str, title: str, act: Callable[[int], None] | None = None,
            delay: float = 1.5, stopped: bool = False) -> None:
    proc = subprocess.Popen(["sh", "-c", "exec " + cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd="/tmp", start_new_session=True)
    if act is not None:
        time.sleep(delay)
        act(proc.pid)
    out, _ = proc.communicate()
    rc = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode  # as the agent's sh says
    header = f"RC: {rc}\nSTOPPED: {'yes' if stopped else 'no'}\nTITLE: {title}\nHOW: {how}\n"
    (HERE / f"{name}.txt").write_text(header + "\n" + out)
    print(name, rc, file=sys.stderr)


def main() -> None:
    cv = "stress-ng --cpu 1 --vm 1 --vm-bytes 16M --timeout 4s " + FLAGS
    capture("clean", "stress-ng --cpu 1 --vm 1 --vm-bytes 16M --hdd 1 --hdd-bytes 4M --timer 1 --clock 1 "
            "--switch 1 --futex 1 --tlb-shootdown 1 --membarrier 1 --timeout 3s " + FLAGS,
            "a clean run of every stressor soak uses", "none")
    capture("vm-verify", "stress-ng --vm 1 --vm-bytes 64M --vm-method move-inv --timeout 8s " + FLAGS,
            "bits flipped in the vm worker's buffer through /proc/PID/mem",
            "stress-ng vm verification failed", lambda pid: flip_vm_memory(pid, 64 << 20))
    capture("hdd-verify", "stress-ng --hdd 1 --hdd-bytes 4M --timeout 6s " + FLAGS,
            "the hdd worker's file overwritten through /proc/PID/fd",
            "stress-ng hdd verification failed", overwrite_hdd_files, delay=1.0)
    capture("cpu-sigsegv", cv, "SIGSEGV sent to the cpu worker",
            "stress-ng cpu killed by SIGSEGV", kill_worker("cpu", signal.SIGSEGV))
    capture("cpu-sigill", cv, "SIGILL sent to the cpu worker (stress-ng catches it)",
            "stress-ng cpu killed by SIGILL", kill_worker("cpu", signal.SIGILL))
    capture("vm-sigsegv-restart", cv, "SIGSEGV sent to the vm worker: restarted, exit 0",
            "stress-ng vm killed by SIGSEGV", kill_worker("vm", signal.SIGSEGV))
    capture("cpu-sigkill", cv, "SIGKILL sent to the cpu worker, as the OOM killer does",
            "none", kill_worker("cpu", signal.SIGKILL))
    capture("vm-sigkill-restart", cv, "SIGKILL sent to the vm worker, as the OOM killer does",
            "none", kill_worker("vm", signal.SIGKILL))
    capture("stopped", "stress-ng --cpu 2 --vm 2 --vm-bytes 16M --hdd 2 --hdd-bytes 4M --futex 2 --switch 2 "
            "--timeout 20s " + FLAGS, "SIGTERM to the process group, as the agent's stop does",
            "none", stop_group, delay=2.5, stopped=True)
    capture("bad-option", "stress-ng --cpu 1 --timeout 2s --no-such-option " + FLAGS,
            "an option stress-ng does not know", "none")


if __name__ == "__main__":
    main()
