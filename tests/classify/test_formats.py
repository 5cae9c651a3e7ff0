"""One tiny console log per format family: title, kind and flags.

The logs are trimmed real kernel output: enough lines for the format's frame
recipe (RIP line, Call Trace, frames) and nothing else.
"""

from __future__ import annotations

import pytest

from soak.classify import classify
from soak.kinds import Kind


def log(*lines: str, t0: float = 100.0) -> str:
    """Lines with console timestamps, as printed without CONFIG_PRINTK_CALLER."""
    return "".join(f"[{t0 + i / 1000:12.6f}] {line}\n" for i, line in enumerate(lines))


STACK = (
    "Call Trace:",
    " <TASK>",
    " dump_stack_lvl+0x44/0x5c",
    " fi_write+0x44e/0x494 [faultinject]",
    " proc_reg_write+0x51/0x90",
    " vfs_write+0xc6/0x3a0",
    " ksys_write+0x5f/0xe0",
    " do_syscall_64+0x58/0xc0",
    " entry_SYSCALL_64_after_hwframe+0x64/0xce",
    " </TASK>",
)
REGS = (
    "CPU: 0 PID: 100 Comm: sh Tainted: G           OE      6.1.0-56-cloud-amd64 #1",
    "Hardware name: QEMU Standard PC (i440FX + PIIX, 1996)",
    "RIP: 0010:fi_write+0x44e/0x494 [faultinject]",
    "Code: 48 c7 c7 00 10 00 00 e8 <0f> 0b",
    "RSP: 0018:ffffb1a3c0123e40 EFLAGS: 00010246",
)

CASES = {
    "warning": (
        log("------------[ cut here ]------------",
            "WARNING: CPU: 0 PID: 100 at /build/faultinject.c:120 fi_write+0x44e/0x494 [faultinject]",
            "Modules linked in: faultinject(OE)", *REGS, *STACK, "---[ end trace 0000000000000000 ]---"),
        "WARNING in fi_write", Kind.KERNEL_WARNING),
    "warning-2025-form": (
        log("WARNING: kernel/foo.c:12 at 0x0, CPU#1: sh/100", *REGS, *STACK),
        "WARNING in fi_write", Kind.KERNEL_WARNING),
    "refcount": (
        log("refcount_t: underflow; use-after-free.",
            "WARNING: CPU: 1 PID: 7 at lib/refcount.c:28 refcount_warn_saturate+0x1e/0x30",
            "RIP: 0010:refcount_warn_saturate+0x1e/0x30", *STACK),
        "WARNING: refcount bug in fi_write", Kind.MEMORY_SAFETY),
    "null-deref": (
        log("BUG: kernel NULL pointer dereference, address: 0000000000000000",
            "#PF: supervisor write access in kernel mode", "Oops: 0002 [#1] PREEMPT SMP NOPTI",
            *REGS, *STACK),
        "BUG: unable to handle kernel NULL pointer dereference in fi_write", Kind.KERNEL_OOPS),
    "paging-request": (
        log("BUG: unable to handle page fault for address: ffffffffff600000",
            "Oops: 0000 [#1] SMP", *REGS, *STACK),
        "BUG: unable to handle kernel paging request in fi_write", Kind.KERNEL_OOPS),
    "gpf": (
        log("general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP",
            *REGS, *STACK),
        "general protection fault in fi_write", Kind.KERNEL_OOPS),
    "kernel-bug": (
        log("------------[ cut here ]------------", "kernel BUG at /build/faultinject.c:118!",
            "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI", *REGS, *STACK),
        "kernel BUG in fi_write", Kind.KERNEL_OOPS),
    "list-corruption": (
        log("list_add corruption. next->prev should be prev (ffff88800a1b2c00), but was 0000000000000000.",
            "------------[ cut here ]------------", "kernel BUG at lib/list_debug.c:27!",
            "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI", *REGS[:2],
            "RIP: 0010:__list_add_valid.cold+0xf/0x3f", *STACK),
        "BUG: corrupted list in fi_write", Kind.MEMORY_SAFETY),
    "divide-error": (
        log("divide error: 0000 [#1] SMP KASAN", *REGS, *STACK),
        "divide error in fi_write", Kind.KERNEL_OOPS),
    "kasan": (
        log("==================================================================",
            "BUG: KASAN: slab-use-after-free in tcp_close+0x1b/0x90",
            "Read of size 8 at addr ffff88801d2c8fa0 by task sh/100", "",
            "CPU: 0 PID: 100 Comm: sh Not tainted 6.1.0 #1", "Call Trace:", " <TASK>",
            " dump_stack_lvl+0x44/0x5c", " kasan_report+0xba/0xf0", " tcp_close+0x1b/0x90",
            " inet_release+0x48/0x90", " __sock_release+0x3a/0xa0", " sock_close+0x15/0x20",
            " __fput+0xa0/0x250", " task_work_run+0x59/0x90", " </TASK>", "",
            "Allocated by task 99:", " kasan_save_stack+0x22/0x40", " sk_prot_alloc+0x37/0x100", "",
            "Freed by task 100:", " kasan_save_stack+0x22/0x40", " __sk_destruct+0x1c0/0x270"),
        "KASAN: slab-use-after-free Read in tcp_close", Kind.MEMORY_SAFETY),
    "ubsan": (
        log("UBSAN: array-index-out-of-bounds in net/foo.c:12:3", "index 8 is out of range for type 'u8 [8]'",
            "CPU: 0 PID: 100 Comm: sh Not tainted 6.1.0 #1", *STACK),
        "UBSAN: array-index-out-of-bounds in fi_write", Kind.MEMORY_SAFETY),
    "kfence": (
        log("BUG: KFENCE: out-of-bounds read in fi_write+0x44e/0x494 [faultinject]", "",
            "Out-of-bounds read at 0xffff8c3f2e291fff (1B left of kfence-#72):",
            " fi_write+0x44e/0x494 [faultinject]", " proc_reg_write+0x51/0x90", " vfs_write+0xc6/0x3a0"),
        "KFENCE: out-of-bounds read in fi_write", Kind.MEMORY_SAFETY),
    "kmsan": (
        log("BUG: KMSAN: uninit-value in fi_write+0x44e/0x494", " fi_write+0x44e/0x494",
            " proc_reg_write+0x51/0x90", " vfs_write+0xc6/0x3a0", "", "Uninit was created at:",
            " slab_post_alloc_hook+0x1/0x2", " kmem_cache_alloc+0x1/0x2", " fi_open+0x1/0x2"),
        "KMSAN: uninit-value in fi_write", Kind.MEMORY_SAFETY),
    "slub-poison": (
        log("=============================================================================",
            "BUG kmalloc-128 (Tainted: G           OE     ): Poison overwritten",
            "-----------------------------------------------------------------------------"),
        "BUG kmalloc-NUM (Tainted: G OE ): Poison overwritten", Kind.MEMORY_SAFETY),
    "slub-double-free": (
        log("BUG kmalloc-128 (Tainted: G           OE     ): Object already free"),
        "BUG: Object already free", Kind.MEMORY_SAFETY),
    "memory-leak": (
        log("BUG: memory leak", "unreferenced object 0xffff888107d4e400 (size 1024):",
            "  backtrace (crc 7ab6ef1c):", "    kmemleak_alloc+0x4e/0x90", "    __kmalloc+0x4a/0x110",
            "    fi_open+0x1e/0x40", "    fi_write+0x44e/0x494"),
        "memory leak in fi_open", Kind.MEMORY_LEAK),
    "deadlock": (
        log("======================================================",
            "WARNING: possible circular locking dependency detected",
            "------------------------------------------------------",
            "sh/100 is trying to acquire lock:",
            "ffff888012345678 (&a->lock){+.+.}-{3:3}, at: fi_lock_a+0x1a/0x30",
            "but task is already holding lock:",
            "ffff888012345000 (&b->lock){+.+.}-{3:3}, at: fi_lock_b+0x1a/0x30",
            "which lock already depends on the new lock.", "stack backtrace:", *STACK),
        "possible deadlock in fi_lock_a", Kind.LOCKDEP),
    "hung-task": (
        log("INFO: task sh:103 blocked for more than 10 seconds.",
            "      Tainted: G           OE      6.1.0-56-cloud-amd64 #1",
            '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.',
            "task:sh              state:D stack:0     pid:103   ppid:1      flags:0x00004000",
            "Call Trace:", " <TASK>", " __schedule+0x2f1/0x880", " schedule+0x5a/0xd0",
            " schedule_timeout+0x94/0x150", " fi_write+0x44e/0x494 [faultinject]",
            " proc_reg_write+0x51/0x90", " vfs_write+0xc6/0x3a0", " </TASK>"),
        "INFO: task hung in fi_write", Kind.HUNG_TASK),
    "rcu-stall": (
        log("rcu: INFO: rcu_preempt self-detected stall on CPU",
            "rcu: \t1-....: (20999 ticks this GP) idle=5c4c/1/0x4000000000000000",
            "NMI backtrace for cpu 1", "CPU: 1 PID: 100 Comm: sh Tainted: G OE 6.1.0 #1",
            "Call Trace:", " <IRQ>", " dump_stack_lvl+0x44/0x5c", " rcu_dump_cpu_stacks+0xd9/0x10a",
            " update_process_times+0x8e/0xc0", " </IRQ>", " <TASK>",
            " asm_sysvec_apic_timer_interrupt+0x16/0x20",
            "RIP: 0010:fi_spin+0x20/0x40 [faultinject]",
            "Code: 90 90", "RSP: 0018:ffffb1a3c0123e40 EFLAGS: 00000246",
            " fi_write+0x44e/0x494 [faultinject]", " proc_reg_write+0x51/0x90",
            " vfs_write+0xc6/0x3a0", " ksys_write+0x5f/0xe0", " do_syscall_64+0x58/0xc0", " </TASK>"),
        "INFO: rcu detected stall in proc_reg_write", Kind.RCU_STALL),
    "soft-lockup": (
        log("watchdog: BUG: soft lockup - CPU#0 stuck for 13s! [sh:100]", "Modules linked in: faultinject(OE)",
            *REGS, *STACK),
        "BUG: soft lockup in proc_reg_write", Kind.SOFT_LOCKUP),
    "hard-lockup": (
        log("NMI watchdog: Watchdog detected hard LOCKUP on cpu 1", "Modules linked in: faultinject(OE)",
            *REGS, *STACK),
        "BUG: hard lockup in proc_reg_write", Kind.HARD_LOCKUP),
    "hard-lockup-buddy": (
        log("watchdog: Watchdog detected hard LOCKUP on cpu 1", "Modules linked in: faultinject(OE)",
            *REGS, *STACK),
        "BUG: hard lockup in proc_reg_write", Kind.HARD_LOCKUP),
    "stack-guard-page": (
        log("BUG: TASK stack guard page was hit at 00000000a0a0a0a0 (stack is 00000000b0b0b0b0..00000000c0c0c0c0)",
            "stack guard page: 0000 [#1] PREEMPT SMP NOPTI", *REGS, *STACK,
            "Kernel panic - not syncing: Fatal exception in interrupt"),
        "BUG: stack guard page was hit in proc_reg_write", Kind.KERNEL_OOPS),
    "panic": (
        log("Kernel panic - not syncing: faultinject: requested panic",
            "CPU: 1 PID: 100 Comm: sh Tainted: G OE 6.1.0 #1", *STACK, "Kernel Offset: disabled"),
        "kernel panic: faultinject: requested panic", Kind.KERNEL_PANIC),
    "panic-oom": (
        log("Kernel panic - not syncing: Out of memory and no killable processes...", *STACK),
        "kernel panic: Out of memory and no killable processes...", Kind.OOM),
    "stack-protector": (
        log("Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: fi_write+0x44e/0x494"),
        "kernel panic: stack is corrupted in fi_write", Kind.MEMORY_SAFETY),
    "sleep-in-atomic": (
        log("BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580",
            "in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 100, name: sh", *STACK),
        "BUG: sleeping function called from invalid context in fi_write", Kind.LOCKDEP),
    "double-fault": (
        log("PANIC: double fault, error_code: 0x0", *REGS),
        "PANIC: double fault in fi_write", Kind.KERNEL_OOPS),
    "oom-global": (
        log("dd invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0",
            "CPU: 0 PID: 100 Comm: dd Not tainted 6.1.0 #1", " oom_kill_process.cold+0xb/0x10",
            "Out of memory: Killed process 100 (dd) total-vm:207060kB, anon-rss:194524kB, file-rss:0kB"),
        "Out of memory: Killed process dd", Kind.OOM),
    "oom-memcg": (
        log("Memory cgroup out of memory: Killed process 4242 (stress-ng-vm) total-vm:1024kB"),
        "Memory cgroup out of memory: Killed process stress-ng-vm", Kind.OOM),
    "oom-old-kernel": (
        log("memhog invoked oom-killer: gfp_mask=0x24280ca, order=0, oom_score_adj=0",
            "Out of memory: Kill process 101 (memhog) score 900 or sacrifice child",
            "Killed process 101 (memhog) total-vm:210000kB, anon-rss:200000kB, file-rss:4kB"),
        "Out of memory: Killed process memhog", Kind.OOM),
    "reboot": (
        "[   5.000000] Linux version 6.1.0\nDecompressing Linux... Parsing ELF... done.\n"
        "Booting the kernel.\n[    0.000000] Linux version 6.1.0\n",
        "unexpected kernel reboot", Kind.GUEST_RESET),
    "go-panic": (
        "panic: runtime error: index out of range [3] with length 3\n\ngoroutine 1 [running]:\n",
        "panic: runtime error: index out of range [NUM] with length NUM", Kind.WORKLOAD_FAILURE),
    # Formats the dev corpus does not exercise.
    "invalid-opcode": (
        log("invalid opcode: 0000 [#1] PREEMPT SMP KASAN", *REGS, *STACK),
        "invalid opcode in fi_write", Kind.KERNEL_OOPS),
    "int3": (
        log("int3: 0000 [#1] PREEMPT SMP KASAN", *REGS, *STACK),
        "int3 in fi_write", Kind.KERNEL_OOPS),
    "stack-segment": (
        log("stack segment: 0000 [#1] PREEMPT SMP KASAN", *REGS, *STACK),
        "stack segment fault in fi_write", Kind.KERNEL_OOPS),
    "ubsan-shift": (
        log("UBSAN: shift-out-of-bounds in net/foo.c:12:3", "shift exponent 64 is too large", *STACK),
        "UBSAN: shift-out-of-bounds in fi_write", Kind.MEMORY_SAFETY),
    "kmsan-usb-infoleak": (
        log("BUG: KMSAN: kernel-usb-infoleak in usb_submit_urb+0x1/0x2", " usb_submit_urb+0x1/0x2",
            " fi_write+0x44e/0x494", " proc_reg_write+0x51/0x90", "", "Uninit was created at:",
            " kmem_cache_alloc+0x1/0x2", " fi_open+0x1/0x2"),
        "KMSAN: kernel-usb-infoleak in fi_write", Kind.MEMORY_SAFETY),
    "irq-inversion": (
        log("WARNING: possible irq lock inversion dependency detected",
            "sh/100 just changed the state of lock:",
            "ffff888012345678 (&a->lock){+.+.}-{3:3}, at: fi_irq_lock+0x1a/0x30", *STACK),
        "possible deadlock in fi_irq_lock", Kind.LOCKDEP),
    "warning-bracketed": (
        log("WARNING: [kernel] kernel/foo.c:12 at fi_write+0x44e/0x494, CPU#1: sh/100", *REGS, *STACK),
        "WARNING in fi_write", Kind.KERNEL_WARNING),
    "warning-corrupted": (
        log("WARNING:", "CPU: 0 PID: 1 Comm: sh"),
        "WARNING: corrupted", Kind.KERNEL_WARNING),
    "vfs-busy-inodes": (
        log("VFS: Busy inodes after unmount of loop0. Self-destruct in 5 seconds.  Have a nice day..."),
        "VFS: Busy inodes after unmount (use-after-free)", Kind.MEMORY_SAFETY),
    "unregister-netdevice": (
        log("unregister_netdevice: waiting for lo to become free. Usage count = 2"),
        "unregister_netdevice: waiting for DEV to become free", Kind.HUNG_TASK),
    "kernel-bug-ppc": (
        log("Kernel BUG at c000000000123456 [verbose debug info unavailable]"),
        "kernel BUG at ADDR [verbose debug info unavailable]", Kind.KERNEL_OOPS),
    "hung-task-panic": (
        log("Kernel panic - not syncing: hung_task: blocked tasks", *STACK),
        "kernel panic: hung_task: blocked tasks", Kind.HUNG_TASK),
    "softlockup-panic": (
        log("Kernel panic - not syncing: softlockup: hung tasks", *STACK),
        "kernel panic: softlockup: hung tasks", Kind.SOFT_LOCKUP),
    "hard-lockup-panic": (
        log("Kernel panic - not syncing: Hard LOCKUP", *STACK),
        "kernel panic: Hard LOCKUP", Kind.HARD_LOCKUP),
    "arm64-null": (
        log("Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000",
            "Internal error: Oops: 96000005 [#1] PREEMPT SMP", "pc : fi_write+0x44/0x94",
            "lr : proc_reg_write+0x51/0x90", "Call trace:", " fi_write+0x44/0x94",
            " proc_reg_write+0x51/0x90", " vfs_write+0xc6/0x3a0"),
        "BUG: unable to handle kernel NULL pointer dereference in fi_write", Kind.KERNEL_OOPS),
    "bug-corrupted": (
        log("BUG: ", "CPU: 0 PID: 1 Comm: sh"),
        "BUG: corrupted", Kind.KERNEL_OOPS),
    "trusty": (
        log("trusty: panic (ffffff80082a8000): failed(-12) to start app 1"),
        "trusty: panic: failed(-NUM) to start app NUM", Kind.KERNEL_PANIC),
    "syzfail": (
        "SYZFAIL: wrong response packet\n (errno 22: Invalid argument)\n",
        "SYZFAIL: wrong response packet", Kind.WORKLOAD_FAILURE),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_format(name: str) -> None:
    text, title, kind = CASES[name]
    reports = classify(text)
    assert reports, f"{name}: no report"
    assert (reports[0].title, reports[0].kind) == (title, kind), [(r.title, r.kind) for r in reports]


NOT_CRASHES = {
    "sshd-moduli": "WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
    "lockdep-off": "INFO: lockdep is turned off.",
    "nmi-handler": "INFO: NMI handler (perf_event_nmi_handler) took too long to run: 1.2 msecs",
    "odebug": "ODEBUG: Out of memory. ODEBUG disabled",
    "user-gpf": "traps: a.out[123] general protection fault ip:401136 sp:7ffd error:0 in a.out[401000+1000]",
    "ext4": "EXT4-fs (sda1): WARNING: mounting fs with errors, running e2fsck is recommended",
    "retbleed": "RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks, "
    "data leaks possible!",
    "srso": "Speculative Return Stack Overflow: WARNING: See https://kernel.org/doc/html/latest/"
    "admin-guide/hw-vuln/srso.html for mitigation options.",
    "cmdline": "Command line: console=ttyS0 panic=-1 softlockup_panic=1",
    "boot-text": "Run /init as init process; default options; page fault handlers registered",
    "replayed": "BUG: kernel NULL pointer dereference, address: 00000000\n"
    "** replaying previous printk message **",
}


@pytest.mark.parametrize("name", sorted(NOT_CRASHES))
def test_not_a_crash(name: str) -> None:
    assert classify(log(*NOT_CRASHES[name].split("\n"))) == []


def test_oops_then_panic_is_one_panicked_report() -> None:
    text = CASES["null-deref"][0] + log("---[ end trace 0000000000000000 ]---",
                                       "Kernel panic - not syncing: Fatal exception", "Kernel Offset: disabled",
                                       t0=101)  # fmt: skip
    reports = classify(text)
    assert [(r.kind, r.panicked) for r in reports] == [(Kind.KERNEL_OOPS, True)]


def test_panic_on_warn_is_folded_into_the_warning() -> None:
    text = log("WARNING: CPU: 0 PID: 100 at /build/faultinject.c:120 fi_write+0x44e/0x494",
               "Kernel panic - not syncing: panic_on_warn set ...", *REGS, *STACK)  # fmt: skip
    reports = classify(text)
    assert [(r.title, r.panicked) for r in reports] == [("WARNING in fi_write", True)]


def test_lone_fatal_exception_names_a_lost_oops() -> None:
    reports = classify(log("Kernel panic - not syncing: Fatal exception", *STACK))
    assert (reports[0].title, reports[0].kind, reports[0].corrupted) == (
        "kernel panic: Fatal exception", Kind.KERNEL_OOPS, True)  # fmt: skip


def test_oom_never_displaces_an_oops() -> None:
    text = CASES["oom-global"][0] + CASES["gpf"][0]
    reports = classify(text)
    assert [r.kind for r in reports] == [Kind.KERNEL_OOPS, Kind.OOM]


def test_title_normalisation() -> None:
    """Addresses, CPU numbers, numbers, file lines and executor ids vary; titles must not."""
    text = log("Kernel panic - not syncing: bad thing at ffff888012345678 on CPU#3 in "
               "fs/foo.c:123 by syz-executor.4, 42 tasks at 10.0.2.15", *STACK)  # fmt: skip
    assert classify(text)[0].title == (
        "kernel panic: bad thing at ADDR on CPU in fs/foo.c:LINE by syz-executor, NUM tasks at IP"
    )


def test_caller_contexts_separate_interleaved_reports() -> None:
    """With CONFIG_PRINTK_CALLER, another task's lines inside a report are ignored."""
    lines = ["BUG: kernel NULL pointer dereference, address: 0000000000000000", *REGS, *STACK]
    text = ""
    for i, line in enumerate(lines):
        text += f"[  100.{i:06d}][  T100] {line}\n"
        text += f"[  100.{i:06d}][  T200]  other_task_func+0x1/0x2\n"
    assert classify(text)[0].title == "BUG: unable to handle kernel NULL pointer dereference in fi_write"


def test_crlf_bytes_syslog_levels_and_user_space_lines() -> None:
    text = CASES["gpf"][0].replace("] ", "] ", 1)
    noisy = "\r\n".join(f"<4>{line}" if i % 2 else f"{line}\r\nuser-space says hi"
                        for i, line in enumerate(text.splitlines()))  # fmt: skip
    reports = classify(noisy.encode())
    assert reports[0].title == "general protection fault in fi_write"


def test_corrupted_when_the_stack_is_missing() -> None:
    reports = classify(log("general protection fault: 0000 [#1] SMP", *REGS, "Call Trace:"))
    assert reports[0].corrupted
    assert reports[0].title == "general protection fault in fi_write"


def test_report_text_and_offsets() -> None:
    text = "boot chatter\n" + CASES["warn"][0] if "warn" in CASES else "boot\n" + CASES["warning"][0]
    rep = classify(text)[0]
    assert text[rep.start :].startswith("[")
    assert "WARNING: CPU: 0 PID: 100" in text[rep.start : rep.end]
    assert "fi_write+0x44e/0x494" in rep.text
    assert rep.frame == "fi_write"
