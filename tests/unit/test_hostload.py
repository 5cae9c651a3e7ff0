from soak import hostload


def test_a_late_event_loop_means_the_host_starved_soak() -> None:
    assert hostload.host_starved(vcpu_share=0.9, vcpus_runnable=False, loop_lag_s=5.0)


def test_busy_vcpus_are_a_guest_problem(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(hostload, "host_overloaded", lambda: True)
    assert not hostload.host_starved(vcpu_share=0.95, vcpus_runnable=True, loop_lag_s=0.0)


def test_runnable_but_starved_vcpus_on_an_overloaded_host(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(hostload, "host_overloaded", lambda: True)
    assert hostload.host_starved(vcpu_share=0.02, vcpus_runnable=True, loop_lag_s=0.0)
    monkeypatch.setattr(hostload, "host_overloaded", lambda: False)
    assert not hostload.host_starved(vcpu_share=0.02, vcpus_runnable=True, loop_lag_s=0.0)


def test_idle_vcpus_are_not_starved(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(hostload, "host_overloaded", lambda: True)
    assert not hostload.host_starved(vcpu_share=0.0, vcpus_runnable=False, loop_lag_s=0.0)
