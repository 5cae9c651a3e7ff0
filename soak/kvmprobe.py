"""Does /dev/kvm run guest code at hardware speed? A one-second answer.

Run as ``python -m soak.kvmprobe``: it prints one JSON object and exits 0 when
KVM is usable. It runs in its own process (soak.accel starts it with a
deadline) because a broken KVM can hang the thread that calls KVM_RUN.

The probe builds a VM with 64 KiB of memory and one vCPU in real mode, runs a
loop of ``2 * LOOPS`` instructions, and times KVM_RUN until the loop's ``out``
to port 0x10. Hardware KVM runs it in about a millisecond; a software-emulated
backend (such as kvm_pvm in nested cloud VMs) needs a large fraction of a
second, and a broken one stops with an internal error.
"""

from __future__ import annotations

import errno
import fcntl
import json
import mmap
import os
import signal
import struct
import sys
import time
from pathlib import Path
from typing import Any

KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_GET_VCPU_MMAP_SIZE = 0xAE04
KVM_CREATE_VCPU = 0xAE41
KVM_SET_USER_MEMORY_REGION = 0x4020AE46
KVM_RUN = 0xAE80
KVM_GET_REGS = 0x8090AE81
KVM_SET_REGS = 0x4090AE82
KVM_GET_SREGS = 0x8138AE83
KVM_SET_SREGS = 0x4138AE84

EXIT_NAMES = {2: "IO", 5: "HLT", 8: "SHUTDOWN", 9: "FAIL_ENTRY", 17: "INTERNAL_ERROR"}
LOOPS = 500_000
USABLE_MIPS = 100.0
CODE_ADDR = 0x1000


def backend() -> dict[str, Any]:
    """Which KVM module is loaded and whether the CPU has hardware virtualisation."""
    modules = [m for m in ("kvm_intel", "kvm_amd", "kvm_pvm") if Path("/sys/module", m).exists()]
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    return {"modules": modules, "cpu_vmx": " vmx" in flags, "cpu_svm": " svm" in flags}


def probe() -> dict[str, Any]:
    """Run the probe; the result's ``verdict`` is USABLE, SLOW_EMULATED, BROKEN_*, ABSENT ..."""
    result: dict[str, Any] = {"backend": backend()}
    if not Path("/dev/kvm").exists():
        return result | {"verdict": "ABSENT", "why": "/dev/kvm does not exist"}
    try:
        kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        verdict = "PERMISSION_DENIED" if exc.errno in (errno.EACCES, errno.EPERM) else "OPEN_FAILED"
        return result | {"verdict": verdict, "why": f"cannot open /dev/kvm: {exc.strerror}"}
    try:
        api = fcntl.ioctl(kvm, KVM_GET_API_VERSION)
        result["api"] = api
        if api != 12:
            return result | {"verdict": "OPEN_FAILED", "why": f"KVM API version {api}, expected 12"}
        return result | _run_loop(kvm)
    except OSError as exc:
        return result | {"verdict": "BROKEN_IOCTL", "why": f"KVM ioctl failed: {exc.strerror}"}
    finally:
        os.close(kvm)


def _run_loop(kvm: int) -> dict[str, Any]:
    vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    memory = mmap.mmap(-1, 0x10000, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    code = b"\x66\xb9" + struct.pack("<I", LOOPS) + b"\x66\x49\x75\xfc\xb0\x4b\xe6\x10\xf4"
    memory[CODE_ADDR : CODE_ADDR + len(code)] = code
    address = _buffer_address(memory)
    region = struct.pack("<IIQQQ", 0, 0, 0, 0x10000, address)
    fcntl.ioctl(vm, KVM_SET_USER_MEMORY_REGION, region)
    vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
    run_size = fcntl.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE)
    run = mmap.mmap(vcpu, run_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)

    sregs = bytearray(312)
    fcntl.ioctl(vcpu, KVM_GET_SREGS, sregs)
    struct.pack_into("<Q", sregs, 0, 0)  # cs.base
    struct.pack_into("<H", sregs, 12, 0)  # cs.selector
    fcntl.ioctl(vcpu, KVM_SET_SREGS, bytes(sregs))
    regs = bytearray(144)
    fcntl.ioctl(vcpu, KVM_GET_REGS, regs)
    struct.pack_into("<QQ", regs, 16 * 8, CODE_ADDR, 0x2)  # rip, rflags
    fcntl.ioctl(vcpu, KVM_SET_REGS, bytes(regs))

    start = time.perf_counter()
    fcntl.ioctl(vcpu, KVM_RUN, 0)
    seconds = time.perf_counter() - start
    exit_reason = struct.unpack_from("<I", run, 8)[0]
    name = EXIT_NAMES.get(exit_reason, str(exit_reason))
    if name != "IO":
        return {"verdict": f"BROKEN_{name}", "why": f"probe guest stopped with exit {name}"}
    mips = 2 * LOOPS / seconds / 1e6
    verdict = "USABLE" if mips >= USABLE_MIPS else "SLOW_EMULATED"
    why = f"probe guest ran at {mips:.1f} MIPS" + (
        "" if verdict == "USABLE" else f" (needs {USABLE_MIPS:.0f}): guest code is emulated"
    )
    return {"verdict": verdict, "guest_mips": round(mips, 1), "seconds": round(seconds, 4), "why": why}


def _buffer_address(memory: mmap.mmap) -> int:
    import ctypes

    return ctypes.addressof(ctypes.c_char.from_buffer(memory))


def main() -> int:
    def on_alarm(_signum: int, _frame: object) -> None:
        raise TimeoutError

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(8)
    try:
        result = probe()
    except TimeoutError:
        result = {"backend": backend(), "verdict": "SLOW_OR_HUNG", "why": "probe guest did not finish in 8 s"}
    print(json.dumps(result))
    return 0 if result["verdict"] == "USABLE" else 1


if __name__ == "__main__":
    sys.exit(main())
