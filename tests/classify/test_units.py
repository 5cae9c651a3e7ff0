"""The small pieces: normalisation, sanitising, canonical names, demangling, tables."""

from __future__ import annotations

import pytest

from soak.classify.catalogue import GROUPS
from soak.classify.demangle import demangle
from soak.classify.frames import canonical
from soak.classify.headers import PREFILTER, candidate_lines, may_have_header
from soak.classify.kindmap import kind_of, syz_type
from soak.classify.patterns import GLOBAL_SKIPS, NameMatcher
from soak.classify.titles import normalise, sanitise
from soak.kinds import CONSOLE_KINDS, Kind


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("KASAN: use-after-free Read in foo+0x12/0x40", "KASAN: use-after-free Read in foo"),
        ("task syz-executor.3:12345 blocked", "task syz-executor blocked"),
        ("at ffffffff81234567 on CPU#12", "at ADDR on CPU"),
        ("lists 0,1,2 and 12345", "lists NUM,NUM,NUM and NUM"),
        ("in cfg80211_rx and nl802154", "in cfg80211_rx and nl802154"),
        ("fs/ext4/inode.c:123:4", "fs/ext4/inode.c:LINE"),
        ("from 192.168.1.1", "from IP"),
    ],
)
def test_normalise(raw: str, normal: str) -> None:
    assert normalise(raw) == normal


def test_sanitise() -> None:
    assert sanitise("  a\tb  \x01c\u00e9 ") == "a b c"
    assert len(sanitise("x" * 500)) == 120


@pytest.mark.parametrize(
    ("raw", "canon"),
    [("__x64_sys_rmdir", "sys_rmdir"), ("__se_sys_foo", "foo"), ("___sys_sendmsg", "sendmsg"),
     ("ksys_ioctl", "ioctl"), ("SyS_open", "open"), ("tcp_close", "tcp_close")],
)  # fmt: skip
def test_canonical_strips_one_syscall_prefix(raw: str, canon: str) -> None:
    assert canonical(raw) == canon


def test_rust_demangling() -> None:
    assert demangle("_RNvNtCs9jEwPDbx20M_4core9panicking9panic_fmt") == "core::panicking::panic_fmt"
    assert (
        demangle("_RNvMs3_NtCshgDM7dBCdno_11rust_binder7processNtB5_7Process10update_ref")
        == "<rust_binder::process::Process>::update_ref"
    )
    assert demangle("_RNbroken") == "_RNbroken"
    assert demangle("kfree") == "kfree"


def test_fast_skip_matcher_agrees_with_a_regex_search() -> None:
    import re

    plain = re.compile("|".join(GLOBAL_SKIPS))
    fast = NameMatcher(GLOBAL_SKIPS)
    names = ["kfree", "kvfree", "kfree_rcu", "__kmalloc", "down", "down_read", "sys_down", "readl",
             "readlink", "skb_over_panic", "mutex_lock", "ww_mutex_lock", "crc32", "xcrc32",
             "atomic64_add", "do_trap", "do_int3", "tcp_close", "copy_from_user"]  # fmt: skip
    for name in names:
        assert fast(name) == bool(plain.search(name)), name


def test_every_header_is_found_by_the_fast_scans() -> None:
    """The crash-free fast path may never miss a header: each keyword trips a scan by itself."""
    keywords = [g.header for g in GROUPS] + ["invoked oom-killer", "Out of memory: Kill process"]
    for keyword in keywords:
        for text in (keyword, f"x{keyword}y", f"[ 1.0] {keyword} rest"):
            assert may_have_header(text), keyword
            assert candidate_lines(f"a\n{text}\nb") == [(2, 2 + len(text))], keyword
            assert PREFILTER.search(text), keyword
    assert not may_have_header("[    1.000000] Run /init as init process, default options")


def test_kind_table() -> None:
    assert kind_of("KASAN: slab-out-of-bounds Write in foo", "BUG:") is Kind.MEMORY_SAFETY
    assert syz_type("KASAN: slab-out-of-bounds Write in foo") == "KASAN-WRITE"
    assert syz_type("KASAN: slab-out-of-bounds in foo") == "KASAN-READ"
    assert kind_of("attempt to add with overflow in foo", "rust_kernel: panicked") is Kind.KERNEL_OOPS
    assert kind_of("kernel panic: RCU Stall", "Kernel panic") is Kind.RCU_STALL
    assert kind_of("WARNING: possible recursive locking detected", "WARNING:") is Kind.LOCKDEP
    assert syz_type("WARNING: possible recursive locking detected") == "WARNING"
    for group in GROUPS:
        for fmt in group.formats:
            kind = kind_of(fmt.template.format(*["x"] * 8), group.header)
            assert kind in CONSOLE_KINDS | {Kind.WORKLOAD_FAILURE, Kind.GUEST_RESET}, fmt.template
