"""QEMU's refusals, crashes and boot stops, titled from what it and the guest really printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from soak.detect.backtrace import parse_gdb
from soak.detect.boot import boot_timeout_verdict, stable_line
from soak.detect.exit import qemu_exit_verdict
from soak.detect.launch import launch_failure, launch_preflight
from soak.detect.qemu_crash import last_words, qemu_crash_verdict
from soak.kinds import Kind

DATA = Path(__file__).resolve().parents[1] / "data" / "qemu"


def _refusals() -> list[tuple[str, str, str]]:
    rows = []
    for line in (DATA / "launch-refusals.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        blame, argument, stderr = (part.strip() for part in line.split(" | ", 2))
        rows.append((blame, argument, stderr.replace("\\n", "\n")))
    return rows


@pytest.mark.parametrize(("blame", "argument", "stderr"), _refusals(), ids=[r[1] for r in _refusals()])
def test_real_refusals_are_launch_failures_with_an_owner(blame: str, argument: str, stderr: str) -> None:
    failure = launch_failure(1, guest_ran=False, stderr_tail=stderr, seconds_since_spawn=0.2)
    assert failure is not None
    assert failure.blame == blame, failure
    assert failure.message.startswith("QEMU could not start: ") and "\n" not in failure.message
    assert "2026-11-30T" not in failure.message  # the -msg timestamp is not part of the message


def test_not_a_launch_failure() -> None:
    memory = "qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory"
    assert launch_failure(1, guest_ran=True, stderr_tail=memory) is None  # the guest ran: a crash
    assert launch_failure(-6, guest_ran=False, stderr_tail="malloc(): corrupted top size") is None
    assert launch_failure(0, guest_ran=False, stderr_tail="") is None  # -m 64: a clean exit, the guest's
    # an unknown message soon after spawn is still a refusal; long after, a silent guest ran a while
    odd = launch_failure(1, guest_ran=False, stderr_tail="qemu-system-x86_64: something new", seconds_since_spawn=1)
    assert odd is not None and odd.message == "QEMU could not start (exit code 1): something new"
    assert launch_failure(1, guest_ran=False, stderr_tail="x", seconds_since_spawn=600) is None


def test_preflight_initrd_against_memory() -> None:
    assert launch_preflight(96, 11_257_222) is None
    problem = launch_preflight(8, 11_257_222)
    assert problem is not None and "does not fit in 8 MiB" in problem


@pytest.mark.parametrize(
    ("stderr", "title"),
    [
        # glibc heap checks: the crash of a real one-hour soak (facts/guests.md)
        ("malloc(): largebin double linked list corrupted (nextsize)\n",
         "QEMU abort: malloc(): largebin double linked list corrupted (nextsize)"),
        ("free(): double free detected in tcache 2\n", "QEMU abort: free(): double free detected in tcache NUM"),
        ("*** stack smashing detected ***: terminated\n", "QEMU abort: *** stack smashing detected ***"),
        # glibc assert(): "%s: %s:%u: %s: Assertion `%s' failed."
        ("2026-11-30T10:00:00.000001Z qemu-system-x86_64: warning: TCG doesn't support requested feature\n"
         "qemu-system-x86_64: ../../hw/core/cpu-common.c:123: cpu_common_realizefn: "
         "Assertion `cpu->cpu_index < 0x100' failed.\n",
         "QEMU assertion failed in cpu_common_realizefn: cpu->cpu_index < 0x100"),
        # GLib g_assert() and g_assert_not_reached()
        ("**\nERROR:../qom/object.c:1006:object_class_dynamic_cast_assert: assertion failed: (klass != NULL)\n"
         "Bail out! ERROR:../qom/object.c:1006:object_class_dynamic_cast_assert: assertion failed: (klass != NULL)\n",
         "QEMU assertion failed in object_class_dynamic_cast_assert: klass != NULL"),
        ("**\nERROR:../hw/i386/x86.c:77:x86_cpu_new: code should not be reached\n",
         "QEMU assertion failed in x86_cpu_new: code should not be reached"),
        # cpu_abort() and hw_error() print a register dump after their line
        ("qemu: fatal: Trying to execute code outside RAM or ROM at 0x00000000000a0000\n"
         "EAX=00000000 EBX=00000000 ECX=00000000 EDX=00000663\nEIP=000a0000 EFL=00000002 [-------] CPL=0\n",
         "QEMU fatal: Trying to execute code outside RAM or ROM at ADDR"),
        ("qemu: hardware error: pci_irq_handler: bad irq 4\nCPU #0:\nEAX=00000000\n",
         "QEMU hardware error: pci_irq_handler: bad irq NUM"),
        # error_abort: two lines
        ("Unexpected error in object_property_find_err() at ../qom/object.c:1304:\n"
         "qemu-system-x86_64: Property 'qemu64-x86_64-cpu.foo' not found\n",
         "QEMU unexpected error in object_property_find_err: Property 'qemu64-x86_64-cpu.foo' not found"),
        ("qemu: qemu_mutex_lock_impl: Invalid argument\n", "QEMU fatal: qemu_mutex_lock_impl: Invalid argument"),
        ("../tcg/tcg.c:4197: tcg fatal error\n", "QEMU fatal: tcg fatal error in tcg/tcg.c"),
    ],
)
def test_abort_titles_from_last_words(stderr: str, title: str) -> None:
    verdict = qemu_crash_verdict(-6, stderr)
    assert (verdict.kind, verdict.title) == (Kind.QEMU_CRASH, title)


def test_other_last_words_and_silence() -> None:
    # a plain error line names an exit code; warnings and the signal notice are not last words
    assert qemu_crash_verdict(1, "qemu-system-x86_64: vhost_set_vring_call failed: 22\n").title == (
        "QEMU exited with code 1: vhost_set_vring_call failed: NUM")
    assert last_words("qemu-system-x86_64: warning: host doesn't support requested feature\n") is None
    assert qemu_crash_verdict(-11, "").title == "QEMU killed by SIGSEGV"
    # the same bug at other addresses and lines is one title
    a = qemu_crash_verdict(-6, "qemu: fatal: Trying to execute code outside RAM or ROM at 0x00000000000a0000\n")
    b = qemu_crash_verdict(-6, "qemu: fatal: Trying to execute code outside RAM or ROM at 0x00000000fffffff0\n")
    assert a.title == b.title


def test_terminated_by_someone_else() -> None:
    stderr = "2026-11-30T10:34:47.855091Z qemu-system-x86_64: terminating on signal 15 from pid 9787 (timeout)\n"
    verdict = qemu_exit_verdict(0, guest_shutdown=False, boot_stderr=stderr)
    assert verdict.title == "QEMU terminated by SIGTERM (sent by another process)"
    assert "pid 9787 (timeout)" in verdict.message


def test_backtrace_of_a_real_core() -> None:
    """gdb's output on a real core (a vCPU thread hit by tgkill(SIGSEGV) from another process)."""
    text = (DATA / "gdb-vcpu-tgkill-segv.txt").read_text()
    report = parse_gdb(text, pid=22326)
    assert report.signal == "SIGSEGV" and report.sender_pid == 22322
    assert report.culprit(2) == ["qemu_cond_wait_impl", "qemu_wait_io_event"]
    assert "<- accel-tcg-x86_64.so+0x" in report.threads and "<- qemu-system-x86_64+0x" in report.threads
    assert qemu_crash_verdict(-11, "", report).title == "QEMU killed by SIGSEGV (sent by another process)"
    # the same stack from a real fault (si_code SEGV_MAPERR): titled by QEMU's innermost frame
    fault = parse_gdb(text.replace("@@soak:siginfo-code\n$1 = -6", "@@soak:siginfo-code\n$1 = 1"), pid=22326)
    assert fault.sender_pid is None
    assert qemu_crash_verdict(-11, "", fault).title == "QEMU killed by SIGSEGV in qemu_cond_wait_impl"
    # last words beat frames
    assert qemu_crash_verdict(-6, "corrupted size vs. prev_size\n", fault).title == (
        "QEMU abort: corrupted size vs. prev_size")


def test_unnamed_frames_are_module_and_offset() -> None:
    text = (DATA / "gdb-vcpu-tgkill-segv.txt").read_text()
    stripped = text.replace("qemu_cond_wait_impl", "??").replace("qemu_wait_io_event", "??")
    report = parse_gdb(stripped.replace("$1 = -6", "$1 = 1", 1), pid=22326)
    (frame,) = report.culprit()
    assert frame.startswith("qemu-system-x86_64+0x")
    assert qemu_crash_verdict(-11, "", report).title == f"QEMU killed by SIGSEGV in {frame}"


@pytest.mark.parametrize(
    ("tail", "bytes_seen", "title"),
    [
        ([], 0, "boot timeout: no console output"),
        (["\x1b[2J\x1b[01;01H", "BdsDxe: loading Boot0001"], 40, "boot timeout: no kernel output"),
        (["[    2.801234] clocksource: Switched to clocksource tsc-early",
          "[    2.812345] sched_clock: Marking stable (2812345678, 123)->(2913345678, -1000)"], 9000,
         'boot timeout: kernel stopped after "sched_clock: Marking stable"'),
        (["[    4.602233] Run /init as init process", "soak-agent: insmod pvpanic failed"], 30000,
         "boot timeout: init started, no agent hello"),
        (["[    4.602233] Run /init as init process", "soak-agent: ready proto=1 image=abc"], 30000,
         "boot timeout: agent started, no hello received"),
    ],
)
def test_boot_timeout_titles_say_where_it_stopped(tail: list[str], bytes_seen: int, title: str) -> None:
    assert boot_timeout_verdict(tail, bytes_seen=bytes_seen).title == title


def test_stable_line_of_a_frozen_kernel() -> None:
    a = stable_line("[    0.123456] smpboot: CPU0: AMD EPYC 7B13 64-Core Processor (family: 0x19)")
    b = stable_line("[   12.654321] smpboot: CPU0: AMD EPYC 7B13 64-Core Processor (family: 0x17)")
    assert a == b == "smpboot: CPU0: AMD EPYC"
    assert stable_line("[    1.000000] Freeing SMP alternatives memory: 44K") == "Freeing SMP alternatives memory"


def test_an_earlier_boots_words_never_title_this_crash() -> None:
    earlier = "malloc(): largebin double linked list corrupted (nextsize)\n"
    assert qemu_exit_verdict(-9, guest_shutdown=False, stderr_tail=earlier).title == "QEMU killed by SIGKILL"
    assert qemu_exit_verdict(-9, guest_shutdown=False, stderr_tail=earlier, boot_stderr="").title == (
        "QEMU killed by SIGKILL")
    assert qemu_exit_verdict(-6, guest_shutdown=False, boot_stderr=earlier).title.startswith("QEMU abort: malloc")
