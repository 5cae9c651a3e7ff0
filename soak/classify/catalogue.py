"""The format catalogue: every kernel crash header soak recognises (pure data).

Groups are tried in order on each console line; the first whose header keyword
is in the line, and none of whose suppressions match, owns the line. Within a
group, the format whose title regex matches earliest in the report wins; the
template is filled with the regex groups and then the key frames (§6 of
shared/facts/crash-formats.md). Titles follow syzkaller's pkg/report so that
soak's signatures dedupe like everyone else's; the one soak-only group (the
NMI watchdog's hard lockup) sits at the end so it never displaces a syzkaller
header.

Templates are ``str.format`` strings over positional arguments. The model and
the recipe helpers (rct: RIP line then Call Trace; ct: Call Trace; warn: the
WARN recipe with its fallback) are in formats.py.
"""

from __future__ import annotations

import re
from typing import Final

from soak.classify.formats import (
    BAD,
    KASAN_HW_SKIPS,
    KMSAN_ORIGIN,
    LOCKDEP_AT,
    RCU_IRQ,
    RIP_ONLY,
    STACK,
    USB_SKIPS,
    F,
    Format,
    Group,
    Picker,
    Recipe,
    ct,
    rct,
    sup,
    warn,
)
from soak.classify.patterns import CALL_TRACE, FLAGS, RIP_LINE, rx

_BUG: Final = Group(
    "BUG:",
    (
        F("BUG: KASAN:", "KASAN: {0} {2} in {3}", alts=("bad-access in {3}",),
          report=r"BUG: KASAN: ([a-z\-]+) in %FUNC%(?:.*\n)+?.*(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)",
          recipe=Recipe((rx(r"BUG: KASAN: (?:[a-z\-]+) in %FUNC%"), CALL_TRACE, STACK),
                        skip=KASAN_HW_SKIPS)),
        F("BUG: KASAN:", "KASAN: invalid-free in {1}", alts=("invalid-free in {1}",),
          report=r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in %FUNC%",
          recipe=Recipe((rx(r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in %FUNC%"),
                         CALL_TRACE, STACK), skip=("slab_", "kfree", "vunmap", "vfree"))),
        F(r"BUG: KASAN: ([a-z\-]+) on address(?:.*\n)+?.*(Read|Write) of size ([0-9]+)",
          "KASAN: {0} {1}"),
        F(r"BUG: KASAN: (.*)", "KASAN: {0}", corrupted=True),
        F("BUG: KMSAN: kernel-usb-infoleak", "KMSAN: kernel-usb-infoleak in {1}",
          alts=("KMSAN origin in {2}",), no_stack=True,
          report=r"BUG: KMSAN: kernel-usb-infoleak in %FUNC%",
          recipe=Recipe((STACK, KMSAN_ORIGIN, STACK), skip=("alloc_skb", *USB_SKIPS))),
        F("BUG: KMSAN:", "KMSAN: {0} in {2}", alts=("bad-access in {2}",), no_stack=True,
          report=r"BUG: KMSAN: ([a-z\-]+) in %FUNC%",
          recipe=Recipe((STACK, KMSAN_ORIGIN, STACK),
                        skip=("alloc_skb", "netlink_ack", "netlink_rcv_skb", "_encrypt$",
                              "^(?:crypto|cipher|drbg|rng)_"))),
        F("BUG: KCSAN: data-race", "KCSAN: {0}", report=r"BUG: KCSAN: (.*)", no_stack=True),
        F("BUG: KCSAN:", "KCSAN: {0}", report=r"BUG: KCSAN: (.*)", no_stack=True),
        F(r"BUG: KFENCE: (use-after-free|out-of-bounds) (read|write) in %FUNC%",
          "KFENCE: {0} {1} in {3}", alts=("bad-access in {3}",),
          recipe=Recipe((rx(r"BUG: KFENCE: (?:[a-z\- ]+) in %FUNC%"), STACK))),
        F(r"BUG: KFENCE: invalid free in %FUNC%", "KFENCE: invalid free in {1}",
          alts=("invalid-free in {1}",), no_stack=True,
          recipe=Recipe((rx(r"BUG: KFENCE: (?:[a-z\- ]+) in %FUNC%"), STACK))),
        F(r"BUG: KFENCE: invalid (read|write) in %FUNC%", "KFENCE: invalid {0} in {2}",
          alts=("bad-access in {2}",),
          recipe=Recipe((rx(r"BUG: KFENCE: (?:[a-z\- ]+) in %FUNC%"), STACK))),
        F(r"BUG: KFENCE: memory corruption in %FUNC%", "KFENCE: memory corruption in {1}",
          no_stack=True, recipe=Recipe((rx(r"BUG: KFENCE: (?:[a-z\- ]+) in %FUNC%"), STACK))),
        F("BUG: (?:unable to handle kernel paging request|unable to handle page fault for address"
          "|Unable to handle kernel data access)",
          "BUG: unable to handle kernel paging request in {0}", alts=(BAD,), recipe=rct()),
        F("BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer dereference"
          "|Kernel NULL pointer dereference)",
          "BUG: unable to handle kernel NULL pointer dereference in {0}", alts=(BAD,),
          recipe=rct()),
        F("BUG: (?:unable to handle kernel|Unable to handle kernel)",
          "BUG: unable to handle kernel", corrupted=True),
        F("BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion"
          "|bad magic|wrong owner|wrong CPU|trylock failure on UP)",
          "BUG: {0} {1} in {2}", recipe=ct("spin_", "_lock", "_unlock")),
        F("BUG: soft lockup", "BUG: soft lockup in {0}", alts=("stall in {0}",),
          recipe=rct(picker=Picker.STALL)),
        F("BUG: .*still has locks held!", "BUG: still has locks held in {0}",
          report=r"BUG: .*still has locks held!(?:.*\n)+?.*%PC% +%FUNC%"),
        F("BUG: scheduling while atomic", "BUG: scheduling while atomic in {0}",
          recipe=ct("schedule")),
        F("BUG: lock held when returning to user space",
          "BUG: lock held when returning to user space in {0}", no_stack=True,
          report=r"BUG: lock held when returning to user space(?:.*\n)+?.*leaving the kernel "
          r"with locks still held(?:.*\n)+?.*at: (?:%PC% +)?%FUNC%"),
        F("BUG: bad unlock balance detected!", "BUG: bad unlock balance in {0}",
          recipe=Recipe((rx(r"%PC% +%FUNC%"), CALL_TRACE, STACK))),
        F("BUG: held lock freed!", "BUG: held lock freed in {0}",
          report=r"BUG: held lock freed!(?:.*\n)+?.*%PC% +%FUNC%"),
        F("BUG: Bad rss-counter state", "BUG: Bad rss-counter state", no_stack=True),
        F("BUG: non-zero nr_ptes on freeing mm", "BUG: non-zero nr_ptes on freeing mm",
          no_stack=True),
        F("BUG: non-zero nr_pmds on freeing mm", "BUG: non-zero nr_pmds on freeing mm",
          no_stack=True),
        # The filesystem and block device are left out of the title: loop0/1/2 split bugs.
        F("BUG: Dentry .* still in use", "BUG: Dentry still in use in {0}",
          alts=("BUG: Dentry still in use [{0} of {1}]",),
          report=r"BUG: Dentry .* still in use \([0-9]+\) \[(unmount) of ([^\]]+)\]"),
        F("BUG: Bad page (state|cache)", "BUG: Bad page {0} in {1}",
          recipe=Recipe((rx("page last allocated"), STACK),
                        skip=("(free|put|get|update|release)_page", "free_unref", "^_*folio",
                              "truncate_inode_pages", "page_frag_free", "alloc", "vmap",
                              "page_owner"))),
        F("BUG: Bad page map", "BUG: Bad page map"),
        F("BUG: workqueue lockup", "BUG: workqueue lockup", no_stack=True),
        F("BUG: sleeping function called from invalid context at (.*)",
          "BUG: sleeping function called from invalid context in {1}", recipe=ct()),
        F(r"BUG: using ([a-z_]+)\(\) in preemptible", "BUG: using {0}() in preemptible code in {1}",
          recipe=ct("dump_stack", "preemption", "preempt", "debug_", "processor_id", "this_cpu")),
        F("BUG: workqueue leaked lock or atomic", "BUG: workqueue leaked lock or atomic in {0}",
          no_stack=True,
          report=r"BUG: workqueue leaked lock or atomic(?:.*\n)+?.*last function: ([a-zA-Z0-9_]+)\n"),
        F("BUG: memory leak", "memory leak in {0}",
          recipe=Recipe((rx(r"backtrace(?: \(crc [0-9A-Fa-f]*\))?:"), STACK),
                        skip=("kmemleak", "mmap", "kmem", "slab", "alloc", "create_object",
                              "idr_get", "list_lru_init", "kasprintf", "kvasprintf",
                              "pcpu_create", "strdup", "strndup", "memdup"))),
        F("BUG: .*stack guard page was hit at", "BUG: stack guard page was hit in {0}",
          alts=("stack-overflow in {0}",), recipe=rct(picker=Picker.STALL)),
        # arm reports this differently from amd64; one title so the bug is counted once.
        F("BUG: Invalid wait context", "WARNING: locking bug in {0}",
          recipe=ct("lock_sock", "release_sock")),
        F(r"BUG:\s*(?:\n|\Z)", "BUG: corrupted", corrupted=True),
    ),
    sup("ODEBUG:", "Boot_DEBUG:", "xlog_status:", "DEBUG:", "BUG: no syscalls can create resource"),
)  # fmt: skip

_WARNING: Final = Group(
    "WARNING:",
    (
        F(r"WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check|at)",
          "WARNING: ODEBUG bug in {0}",
          recipe=warn("debug_", "rcu", "hrtimer_", "timer_", "work_", "percpu_", "vunmap",
                      "vfree", "__free_", "debug_check", "kobject_")),
        F(r"WARNING: .*mm/usercopy\.c.* (?:usercopy_warn|at)", "WARNING: bad usercopy in {0}",
          recipe=warn("usercopy", "__check")),
        F(r"WARNING: .*lib/kobject\.c.* (?:kobject_|at)", "WARNING: kobject bug in {0}",
          recipe=warn("kobject_")),
        F(r"WARNING: .*fs/proc/generic\.c.* (?:proc_register|at)",
          "WARNING: proc registration bug in {0}", recipe=warn("proc_")),
        F(r"WARNING: .*lib/refcount\.c.* (?:refcount_|at)", "WARNING: refcount bug in {0}",
          recipe=warn("refcount", "kobject_")),
        F(r"WARNING: .*kernel/locking/lockdep\.c.*lock_", "WARNING: locking bug in {0}",
          recipe=warn("lock_sock", "release_sock")),
        F("WARNING: .*still has locks held!", "WARNING: still has locks held in {0}",
          report=r"WARNING: .*still has locks held!(?:.*\n)+?.*at: %FUNC%"),
        F("WARNING: Nested lock was not taken", "WARNING: nested lock was not taken in {0}",
          recipe=warn()),
        F("WARNING: lock held when returning to user space",
          "WARNING: lock held when returning to user space in {0}", no_stack=True,
          report=r"WARNING: lock held when returning to user space(?:.*\n)+?.*leaving the kernel "
          r"with locks still held(?:.*\n)+?.*at: (?:%PC% +)?%FUNC%"),
        F(r"WARNING: .*mm/.*\.c.* k?.?malloc", "WARNING: kmalloc bug in {0}",
          recipe=warn("kmalloc", "krealloc", "slab", "kmem")),
        F(r"WARNING: .*mm/vmalloc.c.*__vmalloc_node", "WARNING: zero-size vmalloc in {0}",
          recipe=warn()),
        F("WARNING: .* usb_submit_urb", "WARNING in {0}/usb_submit_urb", recipe=warn(*USB_SKIPS)),
        # The 2025 form: "WARNING: kernel/foo.c:12 at 0x0, CPU#1: comm/123".
        F(r"WARNING: %SRC% at 0x\d+, CPU#\d+", "WARNING in {1}", recipe=warn()),
        F("WARNING: .* at %SRC% %FUNC%", "WARNING in {2}", recipe=warn()),
        F("WARNING: %SRC% at %FUNC%", "WARNING in {2}", recipe=warn()),
        F(r"WARNING: \[.*\] %SRC% at %FUNC%.*", "WARNING in {2}", recipe=warn()),
        F("WARNING: possible circular locking dependency detected", "possible deadlock in {0}",
          report="WARNING: possible circular locking dependency detected(?:.*\\n)+?.*is trying to acquire lock",
          recipe=Recipe((LOCKDEP_AT, LOCKDEP_AT, STACK),
                        skip=("process_one_work", "flush_workqueue", "drain_workqueue",
                              "destroy_workqueue"))),
        F("WARNING: possible irq lock inversion dependency detected", "possible deadlock in {0}",
          report="WARNING: possible irq lock inversion dependency detected(?:.*\\n)+?.*just changed "
          "the state of lock(?:.*\\n)+?.*at: (?:%PC% +)?%FUNC%"),
        F("WARNING: .*-safe -> .*-unsafe lock order detected", "possible deadlock in {0}",
          recipe=Recipe((rx("which became (?:.*) at:"), STACK))),
        F("WARNING: possible recursive locking detected", "possible deadlock in {0}",
          report="WARNING: possible recursive locking detected(?:.*\\n)+?.*is trying to acquire "
          "lock(?:.*\\n)+?.*at: (?:%PC% +)?%FUNC%"),
        F("WARNING: inconsistent lock state", "inconsistent lock state in {1}",
          report="WARNING: inconsistent lock state(?:.*\\n)+?.*takes(?:.*\\n)+?.*at: (?:%PC% +)?%FUNC%",
          recipe=ct()),
        F("WARNING: suspicious RCU usage", "WARNING: suspicious RCU usage in {1}",
          report=r"WARNING: suspicious RCU usage(?:.*\n)+?.*?%SRC%", recipe=ct("rcu", "kmem", "slab")),
        F("WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value",
          "WARNING: kernel stack regs has bad '{0}' value", no_stack=True),
        F("WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value",
          "WARNING: kernel stack frame pointer has bad value", no_stack=True),
        F("WARNING: bad unlock balance detected!", "WARNING: bad unlock balance in {0}",
          recipe=Recipe((rx(r"%PC% +%FUNC%"), CALL_TRACE, STACK))),
        F("WARNING: held lock freed!", "WARNING: held lock freed in {0}",
          report=r"WARNING: held lock freed!(?:.*\n)+?.*at:(?: %PC%)? +%FUNC%"),
        F("WARNING: kernel stack regs .* has bad 'bp' value",
          "WARNING: kernel stack regs has bad value", no_stack=True),
        F("WARNING: kernel stack frame pointer .* has bad value",
          "WARNING: kernel stack regs has bad value", no_stack=True),
        F(r"WARNING:\s*(?:\n|\Z)", "WARNING: corrupted", corrupted=True),
    ),
    sup(
        "WARNING: /etc/ssh/moduli does not exist, using fixed modulus",  # sshd
        "WARNING: workqueue cpumask: online intersect > possible intersect",
        "WARNING: [Tt]he mand mount option",
        r"WARNING: Unsupported flag value\(s\) of 0x%x in DT_FLAGS_1",  # glibc
        "WARNING: Unprivileged eBPF is enabled with eIBRS",
        r"WARNING: fbcon: Driver '(.*)' missed to adjust virtual screen size "
        r"(\((?:\d+)x(?:\d+) vs\. (?:\d+)x(?:\d+)\))",
        "WARNING: See https.* for mitigation options.",
        "WARNING: kernel not compiled with CPU_SRSO",
        r"EXT4-[Ff][Ss](?: \(.*\))?:",
        r"(?i)warning: .* uses (deprecated v2 capabilities|wireless extensions)",
        r"XFS \(\w+\): WARNING",
        # soak: a boot-time CPU vulnerability notice some KVM hosts print, not a WARN().
        "WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks",
    ),
)  # fmt: skip


def _old_lockdep(header: str, marker: str, template: str = "possible deadlock in {0}") -> Format:
    """Pre-4.x lockdep reports, printed as "[ INFO: ... ]"."""
    return F(header, template,
             report=header + r" \](?:.*\n)+?.*" + marker + r"(?:.*\n)+?.*at: %PC% +%FUNC%")  # fmt: skip


_INFO: Final = Group(
    "INFO:",
    (
        _old_lockdep("INFO: possible circular locking dependency detected", "is trying to acquire lock"),
        _old_lockdep("INFO: possible irq lock inversion dependency detected",
                     "just changed the state of lock"),
        _old_lockdep("INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected", "is trying to acquire"),
        _old_lockdep("INFO: possible recursive locking detected", "is trying to acquire lock"),
        _old_lockdep("INFO: inconsistent lock state", "takes", "inconsistent lock state in {0}"),
        F("INFO: rcu_(?:preempt|sched|bh|tasks) (?:self-)?detected(?: expedited)? stall",
          "INFO: rcu detected stall in {0}", alts=("stall in {0}",),
          recipe=Recipe((rx("apic_timer_interrupt"), RIP_LINE, STACK),
                        fallback=(RCU_IRQ, STACK),
                        skip=("apic_timer_interrupt", "rcu"), picker=Picker.STALL)),
        F("INFO: trying to register non-static key", "INFO: trying to register non-static key in {0}",
          recipe=ct("stack", "lock", "IRQ")),
        F("INFO: suspicious RCU usage", "INFO: suspicious RCU usage in {1}",
          report=r"INFO: suspicious RCU usage(?:.*\n)+?.*?%SRC%", recipe=ct("rcu", "kmem", "slab")),
        # The task name can hold any bytes, newlines included.
        F(r"INFO: task (?s:.{1,100}?) blocked (?:in I/O wait )?for more than [0-9]+ seconds",
          "INFO: task hung in {0}", alts=("hang in {0}",), recipe=ct(picker=Picker.HANG)),
        F("INFO: task .* can't die for more than .* seconds", "INFO: task can't die in {0}",
          alts=("hang in {0}",), recipe=ct("schedule")),
        # Fragments of old-style KASAN reports.
        F("INFO: (Freed|Allocated) in (.*)", "INFO: {0} in {1}", corrupted=True),
        F(r"INFO:\s*(?:\n|\Z)", "INFO: corrupted", corrupted=True),
    ),
    sup("INFO: lockdep is turned off", "INFO: Stall ended before state dump start",
        "INFO: NMI handler", "INFO: recovery required on readonly filesystem",
        "(handler|interrupt).*took too long", "INFO: sys_.* is not present in /proc/kallsyms",
        "INFO: no syscalls can create resource", "rmt_storage:INFO:", "_INFO:"),
)  # fmt: skip


def _single(header: str, fmt: Format, *suppress: str) -> Group:
    return Group(header, (fmt,), sup(*suppress))


_PANIC: Final = Group(
    "Kernel panic",
    (
        F("Kernel panic - not syncing: stack-protector:", "kernel panic: stack is corrupted in {0}",
          report="Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: %FUNC%",
          no_stack=True),
        F("Kernel panic - not syncing: stack-protector:", "kernel panic: stack is corrupted in {0}",
          report="Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: [a-f0-9]+",
          recipe=ct("stack_chk")),
        F("Kernel panic - not syncing: corrupted stack end", "kernel panic: corrupted stack end in {0}",
          alts=("stack-overflow in {0}",),
          report="Kernel panic - not syncing: corrupted stack end detected inside scheduler",
          recipe=ct("schedule", "retint_kernel", picker=Picker.STALL)),
        F("Kernel panic - not syncing: kernel stack overflow", "kernel stack overflow in {0}",
          alts=("stack-overflow in {0}",), recipe=ct("bad_stack", picker=Picker.STALL)),
        F("Kernel panic - not syncing: Attempted to kill init!", "kernel panic: Attempted to kill init!"),
        F("Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error -[0-9]+",
          "kernel panic: Couldn't open N_TTY ldisc"),
        # These follow another report; seeing them as the title means its header was lost.
        F("Kernel panic - not syncing: Fatal exception", "kernel panic: Fatal exception", corrupted=True),
        F("Kernel panic - not syncing: panic_on_warn set", "kernel panic: panic_on_warn set",
          corrupted=True),
        F("Kernel panic - not syncing: hung_task: blocked tasks", "kernel panic: hung_task: blocked tasks",
          corrupted=True),
        F("Kernel panic - not syncing: (.*)", "kernel panic: {0}"),
    ),
)  # fmt: skip

_RUST_FRAME_SKIP = re.escape("__rustc::rust_begin_unwind")


def _rip_group(header: str, template: str, *alts: str) -> Group:
    return Group(header, (F(header, template, alts=alts, recipe=rct()),))


GROUPS: Final = (
    _BUG,
    _WARNING,
    _INFO,
    Group("Unable to handle kernel", (
        F("Unable to handle kernel (paging request|NULL pointer dereference|access to user memory)",
          "BUG: unable to handle kernel {0} in {1}", alts=("bad-access in {1}",), recipe=rct()),)),
    Group("general protection fault",
          (F("general protection fault.*:", "general protection fault in {0}", alts=(BAD,),
             recipe=rct()),),
          sup(r"general protection fault .* error:\d+ in ")),  # user space
    _single("stack segment: ", F("stack segment: ", "stack segment fault in {0}", recipe=rct())),
    _PANIC,
    _single("PANIC: double fault", F("PANIC: double fault", "PANIC: double fault in {0}",
                                     recipe=RIP_ONLY)),
    _single("rust_kernel: panicked", F("rust_kernel: panicked", "{0} in {1}",
                                       report="rust_kernel: panicked at [^\n]*?\n(.+?)\n",
                                       recipe=ct(_RUST_FRAME_SKIP))),
    Group("kernel BUG", (
        F("kernel BUG at mm/usercopy.c", "BUG: bad usercopy in {0}", recipe=ct("usercopy", "__check")),
        F("kernel BUG at lib/list_debug.c", "BUG: corrupted list in {0}", alts=(BAD,), recipe=ct()),
        # skb helpers are full of BUG_ON; the bug is in their caller.
        F("kernel BUG at (.*)", "kernel BUG in {1}", recipe=rct("^skb_")),
    )),
    _single("Kernel BUG", F("Kernel BUG (.*)", "kernel BUG {0}")),
    _single("BUG kmalloc-", F("BUG kmalloc-.*: Object already free", "BUG: Object already free")),
    _single("divide error:", F("divide error: ", "divide error in {0}", recipe=RIP_ONLY)),
    # The kernel's own typo (9d06c4027f21) kept the old title.
    _single("divide_error:", F("divide_error: ", "divide error in {0}", recipe=RIP_ONLY)),
    _single("invalid opcode:", F("invalid opcode: ", "invalid opcode in {0}", recipe=RIP_ONLY)),
    _single("int3:", F("int3: ", "int3 in {0}", recipe=rct())),
    Group("UBSAN:", (
        F("UBSAN:", "UBSAN: undefined-behaviour in {0}", report="UBSAN: Undefined behaviour in",
          recipe=ct("ubsan", "overflow")),
        F("UBSAN: array-index-out-of-bounds in", "UBSAN: array-index-out-of-bounds in {0}",
          alts=(BAD,), recipe=ct("ubsan", "overflow")),
        F("UBSAN:", "UBSAN: {0} in {1}", report="UBSAN: (.*?) in", recipe=ct("ubsan", "overflow")),
    )),
    # The fuzzer can echo boot text back into a mount option; that is no reboot.
    _single("Booting the kernel.", F("^Booting the kernel", "unexpected kernel reboot", no_stack=True),
            "Parsing ELF|Decompressing Linux|Unknown parameter '"),
    _single("unregister_netdevice: waiting for",
            F("unregister_netdevice: waiting for (?:.*) to become free",
              "unregister_netdevice: waiting for DEV to become free", no_stack=True)),
    _single("VFS: Close: file count is 0",
            F("VFS: Close: file count is 0", "VFS: Close: file count is zero (use-after-free)",
              no_stack=True)),
    _single("VFS: Busy inodes after unmount",
            F("VFS: Busy inodes after unmount", "VFS: Busy inodes after unmount (use-after-free)",
              no_stack=True)),
    _rip_group("Internal error:", "Internal error in {0}", BAD),
    _rip_group("Unhandled fault:", "Unhandled fault in {0}", BAD),
    _rip_group("Alignment trap:", "Alignment trap in {0}"),
    Group("trusty: panic", (
        F("trusty: panic.* ASSERT FAILED", "trusty: ASSERT FAILED: {0}", no_stack=True,
          report=r"trusty: panic \(.*?\):(?: DEBUG)? ASSERT FAILED at \(.*?\): (.+)"),
        F("trusty: panic.* ASSERT FAILED.*: *(.*)", "trusty: ASSERT FAILED: {0}", corrupted=True),
        F("trusty: panic", "trusty: panic: {0}", report=r"trusty: panic \(.*?\): (.+)", no_stack=True),
    )),
    _single("fatal error:", F("fatal error:", "go runtime error", no_stack=True),
            "ALSA", "fatal error: cannot create timer"),
    _single("SYZFAIL:", F("SYZFAIL:(.*)", "SYZFAIL:{0}", no_stack=True)),
    _single("SYZFATAL:", F("SYZFATAL:(.*)()", "SYZFATAL:{0}", alts=("SYZFATAL{1}",), no_stack=True)),
    Group("panic:", (
        F("panic: Sentry detected .* stuck task", "panic: Sentry detected stuck tasks", no_stack=True),
        F("panic:(.*)", "panic:{0}", no_stack=True),
    ), sup("_panic:", "xlog_status:", r"ddb\.onpanic:", "evtlog_status:")),
    # soak: the NMI watchdog's hard lockup (syzkaller has no format for it). Same recipe and
    # ALT as the soft lockup, so a CPU stuck in one place dedupes across both detectors.
    _single("Watchdog detected hard LOCKUP",
            F("Watchdog detected hard LOCKUP", "BUG: hard lockup in {0}", alts=("stall in {0}",),
              recipe=Recipe((RIP_LINE, CALL_TRACE, STACK), fallback=(CALL_TRACE, STACK),
                            picker=Picker.STALL))),
)  # fmt: skip
"""Every header group, in matching order."""

CONTINUATIONS: Final = re.compile(
    "invalid opcode: 0000|Kernel panic - not syncing|unregister_netdevice: waiting for"
    "|PANIC: double fault|Internal error:",
    FLAGS,
)
"""Headers that appear inside another report and so do not end it (§3 second-oops cut)."""

INFO_WITH_STACK: Final = (
    "vmalloc: allocation failure:",
    "FAULT_INJECTION: forcing a failure",
    "FAULT_FLAG_ALLOW_RETRY missing",
)
"""Not crashes, but they print a stack: a report that runs into one is cut there."""

SUPPRESSED_OUTPUT: Final = re.compile(
    "|".join(
        (
            "panic: failed to start executor binary",
            "panic: executor failed: pthread_create failed",
            "panic: failed to create temp dir",
            "fatal error: unexpected signal during runtime execution",
            "signal SIGBUS: bus error",
            "SYZFAIL: SIGBUS",
            r"Out of memory: Kill process .* \(syz-executor\)",
            r"Out of memory: Kill process .* \(sshd\)",
            r"Killed process .* \(syz-executor\)",
            r"Killed process .* \(sshd\)",
            "lowmemorykiller: Killing 'syz-executor'",
            "lowmemorykiller: Killing 'sshd'",
            "INIT: PANIC: segmentation violation!",
            r"\*\*\* stack smashing detected \*\*\*: terminated",
            "fatal error: runtime: out of memory",
            "fatal error: runtime: cannot allocate memory",
            "fatal error: out of memory",
            "fatal error: newosproc",
            "panic: .*cannot allocate memory",
        )
    ),
    FLAGS,
)
"""Output that makes a report 'suppressed': real, but caused by the test machinery itself."""
SUPPRESSED_HINTS: Final = ("panic: ", "fatal error: ", "SIGBUS", "Kill process", "Killed process",
                           "lowmemorykiller", "INIT: PANIC", "stack smashing")  # fmt: skip
"""Substrings one of which every SUPPRESSED_OUTPUT pattern needs (a cheap pre-check)."""
