"""Title -> (syzkaller crash type, soak Kind): the one table that maps every title.

Rows are title prefixes, first match wins. The syzkaller type column
reproduces pkg/report/crash's TitleToType exactly (it is kept for users who
compare with syzbot); the Kind column is soak's low-cardinality family.
Choices worth knowing:

* memory-safety: sanitizers (KASAN, KFENCE, KMSAN, UBSAN, KCSAN data races),
  slab/list/refcount/page-state corruption, usercopy hardening, stack-protector.
* kernel-oops: the CPU faulted or the kernel trapped (NULL deref, paging
  request, GPF, kernel BUG, invalid opcode, double fault, stack overflow).
* lockdep: lock-correctness and atomic-context checks (deadlocks, bad unlock,
  suspicious RCU, sleeping in atomic context).
* A "kernel panic: <reason>" names the report it followed when the reason says
  so (panic_on_warn, hung_task, softlockup, RCU stall, hard LOCKUP, OOM):
  seen alone it means that report's header was lost.
* User-space and fuzzer failures on the console (Go panics, SYZFAIL) are
  workload-failure; a reboot without panic text is guest-reset.
"""

from __future__ import annotations

from typing import Final

from soak.kinds import Kind

MEM: Final = Kind.MEMORY_SAFETY
OOPS: Final = Kind.KERNEL_OOPS
WARN: Final = Kind.KERNEL_WARNING
LOCK: Final = Kind.LOCKDEP
PANIC: Final = Kind.KERNEL_PANIC

_ROWS: Final[tuple[tuple[tuple[str, ...], str, Kind], ...]] = (
    (("KFENCE: use-after-free write",), "KFENCE-USE-AFTER-FREE-WRITE", MEM),
    (("KFENCE: use-after-free read", "KFENCE: use-after-free"), "KFENCE-USE-AFTER-FREE-READ", MEM),
    (("KFENCE: invalid write", "KFENCE: out-of-bounds write"), "KFENCE-WRITE", MEM),
    (("KFENCE: invalid read", "KFENCE: out-of-bounds read", "KFENCE: out-of-bounds"),
     "KFENCE-READ", MEM),
    (("KFENCE: memory corruption",), "KFENCE-MEMORY-CORRUPTION", MEM),
    (("KFENCE: invalid free",), "KFENCE-INVALID-FREE", MEM),
    (("KMSAN: uninit-value",), "KMSAN-UNINIT-VALUE", MEM),
    (("KMSAN: kernel-infoleak-after-free", "KMSAN: kernel-usb-infoleak-after-free",
      "KMSAN: use-after-free"), "KMSAN-USE-AFTER-FREE-READ", MEM),
    (("KMSAN: kernel-infoleak", "KMSAN: kernel-usb-infoleak"), "KMSAN-INFO-LEAK", MEM),
    (("KASAN: null-ptr-deref Write",), "KASAN-NULL-POINTER-DEREFERENCE-WRITE", MEM),
    (("KASAN: null-ptr-deref Read",), "KASAN-NULL-POINTER-DEREFERENCE-READ", MEM),
    (("BUG: unable to handle kernel NULL pointer dereference in",), "NULL-POINTER-DEREFERENCE",
     OOPS),
    (("KASAN: global-out-of-bounds Write", "KASAN: out-of-bounds Write",
      "KASAN: slab-out-of-bounds Write", "KASAN: stack-out-of-bounds Write",
      "KASAN: user-memory-access Write", "KASAN: vmalloc-out-of-bounds Write",
      "KASAN: wild-memory-access Write"), "KASAN-WRITE", MEM),
    (("KASAN: global-out-of-bounds Read", "KASAN: invalid-access Read", "KASAN: out-of-bounds Read",
      "KASAN: slab-out-of-bounds Read", "KASAN: slab-out-of-bounds",
      "KASAN: stack-out-of-bounds Read", "KASAN: stack-out-of-bounds", "KASAN: unknown-crash Read",
      "KASAN: user-memory-access Read", "KASAN: vmalloc-out-of-bounds Read",
      "KASAN: wild-memory-access Read", "KASAN: wild-memory-access"), "KASAN-READ", MEM),
    (("KASAN: double-free or invalid-free", "KASAN: invalid-free"), "KASAN-INVALID-FREE", MEM),
    (("KASAN: slab-use-after-free Write", "KASAN: use-after-free Write"),
     "KASAN-USE-AFTER-FREE-WRITE", MEM),
    (("KASAN: slab-use-after-free Read", "KASAN: use-after-free Read", "KASAN: use-after-free"),
     "KASAN-USE-AFTER-FREE-READ", MEM),
    (("BUG: corrupted list",), "MEMORY_SAFETY_BUG", MEM),
    (("BUG: unable to handle kernel paging request",), "MEMORY_SAFETY_BUG", OOPS),
    (("WARNING: refcount bug",), "REFCOUNT_WARNING", MEM),
    (("UBSAN: array-index-out-of-bounds",), "MEMORY_SAFETY_UBSAN", MEM),
    (("KCSAN: data-race",), "KCSAN-DATARACE", MEM),
    (("KCSAN: assert: race in",), "KCSAN-ASSERT", MEM),
    (("BUG: bad unlock balance in", "BUG: held lock freed in", "BUG: rwlock", "BUG: spinlock",
      "BUG: still has locks held in", "BUG: using", "WARNING: bad unlock balance in",
      "WARNING: held lock freed in", "WARNING: lock held", "WARNING: locking bug in",
      "WARNING: nested lock was not taken in", "WARNING: still has locks held in",
      "WARNING: suspicious RCU usage in", "inconsistent lock state in", "possible deadlock in"),
     "LOCKDEP", LOCK),
    (("BUG: scheduling while atomic in", "BUG: sleeping function called from invalid context in"),
     "ATOMIC_SLEEP", LOCK),
    (("memory leak in",), "LEAK", Kind.MEMORY_LEAK),
    (("BUG: bad usercopy in",), "BUG", MEM),
    (("kernel BUG",), "BUG", OOPS),
    (("WARNING in",), "WARNING", WARN),
    (("BUG: stack guard page was hit in",), "", OOPS),
    (("WARNING: corrupted", "WARNING: kernel stack frame pointer has bad value",
      "WARNING: kernel stack regs has bad"), "", WARN),
    (("BUG: soft lockup in",), "HANG", Kind.SOFT_LOCKUP),
    (("INFO: rcu detected stall in",), "HANG", Kind.RCU_STALL),
    (("INFO: task can't die in", "INFO: task hung in"), "HANG", Kind.HUNG_TASK),
    (("BUG: Object already free", "VFS: Busy inodes after unmount (use-after-free)",
      "VFS: Close: file count is zero (use-after-free)"), "DoS", MEM),
    (("Alignment trap in", "Internal error in", "PANIC: double fault", "Unhandled fault in",
      "divide error in", "general protection fault in", "invalid opcode in",
      "kernel stack overflow", "stack segment fault in", "rust_kernel panicked"), "DoS", OOPS),
    (("go runtime error", "panic:"), "DoS", Kind.WORKLOAD_FAILURE),
    (("unregister_netdevice: waiting for DEV to become free",), "DoS", Kind.HUNG_TASK),
    (("trusty:",), "DoS", PANIC),
    # The panic reason names the report it followed (see the module docstring).
    (("kernel panic: Fatal exception",), "DoS", OOPS),
    (("kernel panic: panic_on_warn set",), "DoS", WARN),
    (("kernel panic: hung_task: blocked tasks",), "DoS", Kind.HUNG_TASK),
    (("kernel panic: softlockup: hung tasks",), "DoS", Kind.SOFT_LOCKUP),
    (("kernel panic: RCU Stall",), "DoS", Kind.RCU_STALL),
    (("kernel panic: Hard LOCKUP", "kernel panic: Watchdog detected hard LOCKUP"), "DoS",
     Kind.HARD_LOCKUP),
    (("kernel panic: Out of memory", "kernel panic: System is deadlocked on memory"), "DoS",
     Kind.OOM),
    (("kernel panic: stack is corrupted in",), "DoS", MEM),
    (("kernel panic: corrupted stack end",), "DoS", OOPS),
    (("kernel panic:",), "DoS", PANIC),
    (("unexpected kernel reboot",), "REBOOT", Kind.GUEST_RESET),
    (("SYZFAIL", "SYZFATAL:"), "SYZ_FAILURE", Kind.WORKLOAD_FAILURE),
    # soak's own formats.
    (("BUG: hard lockup in",), "HANG", Kind.HARD_LOCKUP),
    (("Out of memory:", "Memory cgroup out of memory:"), "", Kind.OOM),
    # Titles of formats without a TitleToType row, and raw header lines. Their syzkaller
    # type is that of the generic prefix below them; the kind is refined here.
    (("WARNING: possible", "WARNING: inconsistent lock state", "WARNING: suspicious RCU usage",
      "WARNING: bad unlock balance", "WARNING: held lock", "WARNING: Nested lock",
      "WARNING: SOFTIRQ-safe", "WARNING: HARDIRQ-safe", "WARNING: SOFTIRQ-READ-safe",
      "WARNING: HARDIRQ-READ-safe"), "WARNING", LOCK),
    (("WARNING: ODEBUG bug in", "WARNING: kobject bug in", "WARNING: kmalloc bug in",
      "WARNING: proc registration bug in", "WARNING: zero-size vmalloc in"), "WARNING", WARN),
    (("WARNING: bad usercopy in",), "WARNING", MEM),
    (("WARNING:",), "WARNING", WARN),
    (("BUG: Bad page", "BUG: Bad rss-counter state", "BUG: non-zero nr_", "BUG: Dentry",
      "BUG: KASAN:", "BUG: KFENCE:", "BUG: KMSAN:", "BUG: KCSAN:"), "", MEM),
    (("BUG: workqueue lockup",), "", Kind.HUNG_TASK),
    (("BUG: workqueue leaked lock", "BUG: lock held when returning", "BUG: MAX_", "BUG: Invalid wait",
      "BUG: key ", "BUG: looking up invalid subclass"), "", LOCK),
    (("BUG: unable to handle kernel",), "", OOPS),
    (("BUG:",), "", OOPS),
    (("INFO: suspicious RCU usage in", "INFO: trying to register non-static key in",
      "INFO: possible", "INFO: inconsistent lock state", "INFO: SOFTIRQ-safe", "INFO: lockdep"),
     "", LOCK),
    (("INFO: Freed in", "INFO: Allocated in"), "", MEM),
    (("INFO: task",), "", Kind.HUNG_TASK),
    (("INFO: rcu",), "", Kind.RCU_STALL),
    (("INFO:",), "", WARN),
    (("KASAN:",), "KASAN-UNKNOWN", MEM),
    (("KFENCE:",), "KFENCE-UNKNOWN", MEM),
    (("KMSAN:",), "KMSAN-UNKNOWN", MEM),
    (("UBSAN:",), "UBSAN", MEM),
    (("KCSAN:",), "KCSAN-UNKNOWN", MEM),
    (("BUG kmalloc-",), "", MEM),  # SLUB debug: Poison/Redzone overwritten, ...
)  # fmt: skip

_HEADER_KINDS: Final = {
    "general protection fault": OOPS,
    "stack segment: ": OOPS,
    "Kernel panic": PANIC,
    "PANIC: double fault": OOPS,
    "rust_kernel: panicked": OOPS,
    "kernel BUG": OOPS,
    "Kernel BUG": OOPS,
    "divide error:": OOPS,
    "divide_error:": OOPS,
    "invalid opcode:": OOPS,
    "int3:": OOPS,
    "Unable to handle kernel": OOPS,
    "Internal error:": OOPS,
    "Unhandled fault:": OOPS,
    "Alignment trap:": OOPS,
    "unregister_netdevice: waiting for": Kind.HUNG_TASK,
    "trusty: panic": PANIC,
    "fatal error:": Kind.WORKLOAD_FAILURE,
    "SYZFAIL:": Kind.WORKLOAD_FAILURE,
    "SYZFATAL:": Kind.WORKLOAD_FAILURE,
    "panic:": Kind.WORKLOAD_FAILURE,
    "Watchdog detected hard LOCKUP": Kind.HARD_LOCKUP,
    "Booting the kernel.": Kind.GUEST_RESET,
    "VFS: Close: file count is 0": MEM,
    "VFS: Busy inodes after unmount": MEM,
}
"""Titles no prefix row knows (Rust panic messages, raw lines) take their header group's kind."""


_MEMO: dict[str, tuple[str, Kind] | None] = {}


def _row(title: str) -> tuple[str, Kind] | None:
    if title in _MEMO:
        return _MEMO[title]
    found = next(((typ, kind) for prefixes, typ, kind in _ROWS if title.startswith(prefixes)), None)
    if len(_MEMO) > 50_000:
        _MEMO.clear()
    _MEMO[title] = found
    return found


def syz_type(title: str) -> str:
    """syzkaller's crash type for a title ("" when syzkaller calls it unknown)."""
    found = _row(title)
    return found[0] if found else ""


def kind_of(title: str, header: str) -> Kind:
    """soak's failure kind for a title produced by a header group."""
    found = _row(title)
    return found[1] if found else _HEADER_KINDS.get(header, OOPS)
