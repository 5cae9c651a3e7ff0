"""Shared regex building blocks and frame-selection word lists (pure data).

The word lists decide which stack frame names a crash: infrastructure
(allocators, locking, printing, sanitizer plumbing) is skipped so the title
blames the caller. They follow syzkaller's pkg/report behaviour, which is the
de-facto standard for deduplicating Linux crashes; they are matched as regex
*searches* on the raw function name, so ``panic`` also skips ``skb_over_panic``.
"""

from __future__ import annotations

import re
from typing import Final

FLAGS: Final = re.ASCII

_MACROS: Final = {
    # A bracketed program counter, as in "[<ffffffff81234567>]" or "[<0x...>]".
    "%PC%": r"\[<?(?:0x)?[0-9a-f]+>?\]",
    # A function name directly followed by "+0x.." or ".cold"/".isra"; captured.
    "%FUNC%": r"([a-zA-Z0-9_]+)(?:\.|\+)",
    # A source location such as "net/core/sock.c:123"; captured.
    "%SRC%": r"([a-zA-Z0-9_/.\-]+\.[a-z]+:[0-9]+)",
}


def expand(source: str) -> str:
    """Replace the %PC%, %FUNC% and %SRC% macros in a regex source."""
    for name, value in _MACROS.items():
        source = source.replace(name, value)
    return source


def trie_source(words: list[str]) -> str:
    """An alternation of literal words as a trie: one branch per first character.

    Python's regex engine tries every branch of ``a|b|c`` at every position;
    with 200 skip words that is the classifier's hot spot. A trie regex
    decides on the first character, so a name is checked in one pass.
    """
    if "" in words:
        rest = [w for w in words if w]
        return f"(?:{trie_source(rest)})?" if rest else ""
    by_first: dict[str, list[str]] = {}
    for word in words:
        by_first.setdefault(word[0], []).append(word[1:])
    branches = [re.escape(ch) + trie_source(tails) for ch, tails in sorted(by_first.items())]
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


class NameMatcher:
    """``any(re.search(p, name) for p in patterns)``, fast for the literal patterns.

    Exact (``^x$``), prefix (``^x``), suffix (``x$``) and substring patterns
    are checked with set lookups, ``startswith``/``endswith`` and one trie
    regex; only the rest go through a general regex. Results are memoised:
    kernels have a few tens of thousands of function names.
    """

    def __init__(self, patterns: tuple[str, ...]) -> None:
        exact: set[str] = set()
        prefix: list[str] = []
        suffix: list[str] = []
        literal: list[str] = []
        other: list[str] = []
        for pattern in patterns:
            head, body = pattern.startswith("^"), pattern.strip("^$")
            tail = pattern.endswith("$") and not pattern.endswith("\\$")
            if not body or re.escape(body) != body:
                other.append(pattern)
            elif head and tail:
                exact.add(body)
            elif head:
                prefix.append(body)
            elif tail:
                suffix.append(body)
            else:
                literal.append(body)
        self._exact = frozenset(exact)
        self._prefix = tuple(prefix)
        self._suffix = tuple(suffix)
        self._literal = re.compile(trie_source(literal), FLAGS) if literal else None
        self._other = re.compile("|".join(other), FLAGS) if other else None
        self._memo: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        hit = self._memo.get(name)
        if hit is None:
            hit = (
                name in self._exact
                or name.startswith(self._prefix)
                or name.endswith(self._suffix)
                or bool(self._literal and self._literal.search(name))
                or bool(self._other and self._other.search(name))
            )
            if len(self._memo) > 100_000:
                self._memo.clear()
            self._memo[name] = hit
        return hit


def rx(source: str) -> re.Pattern[str]:
    """Compile a regex source after macro expansion, with ASCII semantics like Go's RE2."""
    return re.compile(expand(source), FLAGS)


# A line that names the faulting function: x86 "RIP: 0010:f+0x..", old "IP: [<..>] f+..",
# powerpc "NIP [..] f+..", arm64 "pc : f+..", arm "PC is at f+..". User-space and
# "(null)" forms match too but yield no function.
RIP_LINE_SRC: Final = expand(
    r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:%PC% +){0,2}%FUNC%|(?:[0-9]+:)?0x[0-9a-f]+"
    r"|(?:[0-9]+:)?%PC% +\[< *\(null\)>\] +\(null\)|[0-9]+: +\(null\))"
)
RIP_LINE: Final = re.compile(RIP_LINE_SRC, FLAGS)
CALL_TRACE: Final = re.compile(r"(?:Call (?:T|t)race:)|(?:Backtrace:)", FLAGS)

RISCV_STACK_START: Final = re.compile(
    r"status: [0-9a-f]{16} badaddr: [0-9a-f]{16} cause: [0-9a-f]{16}", FLAGS
)
STACK_STARTS: Final = (
    re.compile(r"Call (?:T|t)race", FLAGS),
    re.compile(r"Allocated:", FLAGS),
    re.compile(r"Allocated by task [0-9]+:", FLAGS),
    re.compile(r"Freed:", FLAGS),
    re.compile(r"Freed by task [0-9]+:", FLAGS),
    # "backtrace:" (kmemleak, maybe with a crc) but not lockdep's "stack backtrace:".
    re.compile(r"[^k] backtrace(?: \(crc [0-9A-Fa-f]*\))?:", FLAGS),
    re.compile(r"Backtrace:", FLAGS),
    re.compile(r"Uninit was stored to memory at", FLAGS),
    RISCV_STACK_START,
)
"""Lines that end one stack and start another (each also checked on its own, §7)."""
ANY_STACK_START: Final = re.compile("|".join(p.pattern for p in STACK_STARTS), FLAGS)


def maybe_stack_start(line: str) -> bool:
    """A cheap pre-check for ANY_STACK_START: every marker contains one of these."""
    return (
        "race" in line or "Allocated" in line or "Freed" in line or "Uninit" in line
        or "badaddr" in line
    )  # fmt: skip

FRAME_LINE: Final = rx(r"^ *(?:%PC% ){0,2}%FUNC%")
# arm: "[<pc>] (callee) from [<pc>] (caller+0x..)" yields both names.
ARM_FRAME_LINE: Final = rx(r"^ *%PC% \(([a-zA-Z0-9_.]+)\) from %PC% \(%FUNC%")
FRAME_LINES: Final = (FRAME_LINE, ARM_FRAME_LINE)
"""A frame line is an identifier directly followed by '+' or '.' (inline lines are not)."""

FAULT_INJECTION_FRAME: Final = re.compile(
    r"^( \[<?(?:0x)?[0-9a-f]+>?\])? should_fail(slab)?(\.[a-z0-9.]+)?\+0x", FLAGS
)
"""Fault-injection stacks get intermixed with reports: seeing one marks the report corrupted."""

GLOBAL_SKIPS: Final = (
    # sanitizer and report plumbing
    "__sanitizer", "__asan", "kasan", "hwasan", "__msan", "kmsan", "kcsan_setup_watchpoint",
    "check_memory_region", "check_heap_object", "check_object", "read_word_at_a_time",
    "(read|write)_once_.*nocheck", "print_address_description", "panic", "invalid_op",
    "report_bug", "fixup_bug", "print_report", "print_usage_bug", "do_error", "_trap$", "do_trap",
    "show_stack", "dump_stack", "walk_stack", "dump_backtrace", "warn_slowpath", "warn_alloc",
    "warn_bogus", "__warn", "print_tainted", "__fortify_report", "assertfail",
    "hex_dump_to_buffer", "print_hex_dump", "program_check_exception", "program_check_common",
    "do_kernel_fault", "do_translation_fault", "do_mem_abort", "el1_abort", "el1h_64_sync",
    "__phys_addr",
    # allocators and the page cache
    "alloc_page", "malloc", "zalloc", "calloc", "krealloc", "kmem_cache", "allocate_slab",
    "__alloc_frozen_pages_noprof", "folio_alloc", "folio_unlock", "filemap_alloc_folio",
    "__filemap_get_folio", "find_or_create_page", "do_read_cache_folio", "read_cache_page",
    "pagecache_get_page", "grab_cache_page_write_begin", "slab_", "^kfree$", "^kvfree$",
    "kfree_skb",
    "xas_start", "xas_load", "xas_find", "find_lock_entries", "truncate_inode_pages_range",
    "^lock_page", "^unlock_page", "mark_buffer_dirty",
    # locking and lockdep
    "debug_object", "timer_is_static_object", "work_is_static_object", "__might_fault",
    "print_unlock", "imbalance_bug", "lockdep", "bh_enable", "bh_disable", "perf_trace",
    "lock_acquire", "lock_release", "lock_class", "mark_lock", "reacquire_held_locks",
    "mark_held_locks",
    "raw_spin_rq", "spin_lock", "spin_trylock", "spin_unlock", "read_lock", "read_trylock",
    "write_lock", "write_trylock", "read_unlock", "write_unlock", "^down$", "down_read",
    "down_write", "down_read_trylock", "down_write_trylock", "down_trylock", "up_read",
    "up_write", "^mutex_", "^__mutex_", "^rt_mutex_", "owner_on_cpu", "osq_lock", "osq_unlock",
    "trace_hardirq", "trace_softirq", "lockdep_hardirq", "lockdep_softirq", "might_fault",
    "might_sleep", "__might_resched",
    "seqprop_assert",
    # atomics, bit operations, reference counts
    *(f"atomic{width}_{op}" for width in ("", "64") for op in (
        "dec", "inc", "read", "set", "or", "xor", "and", "add", "sub", "fetch", "xchg",
        "cmpxchg", "try")),
    "set_bit", "clear_bit", "change_bit", "test_bit", "__wake_up", "^refcount_", "^kref_",
    "ref_tracker",
    # string, memory and user-copy helpers
    "memcpy", "memcmp", "memset", "memchr", "memmove", "memdup", "strcmp", "strncmp", "strcpy",
    "strlcpy", "strncpy", "strscpy", "strlen", "strstr", "strnstr", "strnlen", "strchr",
    "strdup", "strndup", "copy_to_user", "copy_from_user", "copy_to_iter", "copy_from_iter",
    "copy_page_to_iter", "copy_page_from_iter", "copy_folio_to_iter", "^copyin$", "^copyout$",
    "put_user", "get_user", "string", "pointer", "snprintf", "scnprintf", "kasprintf",
    "kvasprintf", "printk", "va_format", "dev_info", "dev_notice", "dev_warn", "dev_err",
    "dev_alert", "dev_crit", "dev_emerg", "^crc\\d+", "crc_itu_t", "extract_user_to_sg",
    "extract_iter_to_sg",
    # lists and trees
    "list_add", "list_del", "list_replace", "list_move", "list_splice", "^rb_", "^__rb_",
    "^klist_", "rhashtable_lookup", "ida_free",
    # work, timers, completions
    "del_timer", "flush_work", "__cancel_work_timer", "cancel_work_sync", "try_to_grab_pending",
    "flush_workqueue", "drain_workqueue", "destroy_workqueue", "queue_work", "finish_wait",
    "kthread_stop", "^complete$", "wait_for_completion", "insert_work", "__queue_delayed_work",
    "queue_delayed_work_on", "cleanup_srcu_struct", "lock_timer_base", "__timer_delete_sync",
    "sk_stop_timer_sync", "__mod_timer",
    # device model and teardown wrappers
    "kobject_", "add_uevent_var", "get_device_parent", "device_add", "device_del",
    "device_unregister", "device_destroy", "device_release", "devres_release_all",
    "hwrng_unregister", "i2c_del_adapter", "__unregister_client", "device_for_each_child",
    "rollback_registered", "unregister_netdev", "sysfs_remove", "device_remove_file",
    "tty_unregister_device", "^put_device$", "^iput$", "^iput_final$", "^ihold$", "drop_nlink",
    "fast_dput", "dput",
    # USB plumbing
    "dummy_urb_enqueue", "usb_kill_urb", "usb_kill_anchored_urbs", "usb_control_msg",
    "usb_hcd_submit_urb", "usb_submit_urb",
    # MMIO and port accessors, stack walking, misc
    "readb$", "readw$", "readl$", "readq$", "writeb$", "writew$", "writel$", "writeq$",
    "logic_in", "logic_out", "_indirect_thunk_", "stack_trace_consume_entry",
    "arch_stack_walk", "stack_trace_save", "^get_taint$",
)  # fmt: skip

SYSCALL_PREFIXES: Final = (
    "SYSC_", "SyS_", "sys_", "__x64_", "__ia32_", "__arm64_", "____sys_", "___sys_", "__sys_",
    "__se_", "__se_sys_", "__do_sys_", "compat_SYSC_", "compat_SyS_", "ksys_",
)  # fmt: skip
"""Single prefixes stripped from frame names so one syscall has one name on every arch."""

STALL_ANCHORS: Final = re.compile(
    "|".join(
        (
            # syscall entry
            "do_syscall_", "do_fast_syscall_", "sysenter_dispatch", "tracesys_phase2",
            "el0_svc_handler", "invoke_syscall", "ret_fast_syscall",
            # work, softirq, timers, kthreads
            "process_one_work", "netif_receive_skb", "do_softirq", "call_timer_fn",
            "_run_timers", "run_timer_softirq", "hrtimer_run", "run_ksoftirqd",
            "smpboot_thread_fn", "^kthread$", "start_secondary", "cpu_startup_entry",
            "ret_from_fork", "tasklet_action", "tasklet_hi_action",
            # VFS dispatchers
            "vfs_write", "vfs_read", "vfs_iter_read", "vfs_iter_write", "do_iter_read",
            "do_iter_write", "call_read_iter", "call_write_iter", "new_sync_read",
            "new_sync_write", "vfs_ioctl", "ksys_ioctl", "compat_ioctl", "compat_sys_ioctl",
            "blkdev_driver_ioctl", "blkdev_ioctl", "do_iter_readv_writev", "^call_mmap",
            "mmap_region", "do_mmap", "do_dentry_open", "vfs_open",
            # socket dispatchers
            "^sock_sendmsg", "^sock_recvmsg", "^sock_release", "^__sock_release", "^setsockopt$",
            "kernel_setsockopt", "sock_common_setsockopt", "^listen$", "kernel_listen",
            "sk_common_release", "^sock_mmap", "^accept$", "kernel_accept", "^sock_do_ioctl",
            "^sock_ioctl", "^compat_sock_ioctl", "^nfnetlink_rcv_msg", "^rtnetlink_rcv_msg",
            "^netlink_dump", "^(sys_)?(socketpair|connect|ioctl)",
            # faults and the return to user space
            "__do_fault", "do_page_fault", "^page_fault$", "__fput", "task_work_run",
            "exit_to_usermode", "smp_call_function",
        )
    ),
    FLAGS,
)  # fmt: skip
"""Dispatch points: a stall is blamed on the frame just above the first of these."""

HANG_SKIPS: Final = (
    "sched", "_lock", "_slowlock", "down", "rwsem", "completion", "kthread", "wait",
    "synchronize", "context_switch", "__switch_to", "cancel_delayed_work", "rcu_barrier",
)  # fmt: skip
"""Substrings of frames a hung task merely waits in."""
