"""The pure detectors give stable titles for what the runner observed."""

from soak.detect.exit import qemu_exit_verdict
from soak.detect.hang import HangFacts, hang_verdict
from soak.detect.qmp_events import paused_verdict, qmp_event_verdict
from soak.kinds import Kind


def test_exit_by_signal_is_a_qemu_crash() -> None:
    v = qemu_exit_verdict(-11, guest_shutdown=False, stderr_tail="x\nlast words\n")
    assert (v.kind, v.title, v.message) == (Kind.QEMU_CRASH, "QEMU killed by SIGSEGV", "last words")
    assert qemu_exit_verdict(-9, guest_shutdown=False).title == "QEMU killed by SIGKILL"
    assert qemu_exit_verdict(1, guest_shutdown=False).title == "QEMU exited with code 1"


def test_clean_exit_after_guest_poweroff() -> None:
    assert qemu_exit_verdict(0, guest_shutdown=True).kind == Kind.GUEST_SHUTDOWN
    assert qemu_exit_verdict(0, guest_shutdown=False).kind == Kind.QEMU_CRASH


def test_qmp_events() -> None:
    assert qmp_event_verdict("GUEST_PANICKED", {"action": "pause"}).kind == Kind.KERNEL_PANIC  # type: ignore[union-attr]
    assert qmp_event_verdict("RESET", {"guest": True, "reason": "guest-reset"}).kind == Kind.GUEST_RESET  # type: ignore[union-attr]
    assert qmp_event_verdict("RESET", {"guest": False, "reason": "host-qmp-system-reset"}) is None
    assert qmp_event_verdict("STOP", {}) is None
    assert paused_verdict("internal-error").title == "VM stopped: hypervisor internal error"


def facts(**kw: object) -> HangFacts:
    base: dict[str, object] = dict(qmp_answered=True, run_state="running", process_state="sleeping",
                                   vcpu_busy_share=0.9)
    base.update(kw)
    return HangFacts(**base)  # type: ignore[arg-type]


def test_hang_root_causes() -> None:
    assert hang_verdict(facts()).title == "guest hang: no heartbeat, vCPUs busy"  # type: ignore[union-attr]
    assert hang_verdict(facts(vcpu_busy_share=0.01)).title == "guest hang: no heartbeat, vCPUs idle"  # type: ignore[union-attr]
    stopped = hang_verdict(facts(qmp_answered=False, run_state=None, process_state="stopped"))
    assert stopped is not None and stopped.kind == Kind.QEMU_HANG and "process stopped" in stopped.title
    paused = hang_verdict(facts(run_state="paused"))
    assert paused is not None and paused.kind == Kind.UNEXPECTED_PAUSE
    assert hang_verdict(facts(host_starved=True)) is None


def test_a_stopped_qemu_is_never_the_starved_hosts_doing() -> None:
    stopped = hang_verdict(facts(qmp_answered=False, run_state=None, process_state="stopped", host_starved=True))
    assert stopped is not None and stopped.kind == Kind.QEMU_HANG
