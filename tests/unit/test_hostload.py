from soak import hostload


def test_a_late_event_loop_means_the_host_starved_soak() -> None:
    assert hostload.host_starved(vcpu_share=0.9, vcpus_runnable=False, loop_lag_s=5.0)


def test_busy_vcpus_are_a_guest_problem(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(hostload, "host_overloaded", lambda: True)
    monkeypatch.setattr(hostload, "host_starved_lately", lambda: "host CPU pressure 99%")
    assert not hostload.host_starved(vcpu_share=0.95, vcpus_runnable=True, loop_lag_s=0.0)


def test_runnable_but_starved_vcpus_on_an_overloaded_host(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(hostload, "host_starved_lately", lambda: None)
    monkeypatch.setattr(hostload, "host_overloaded", lambda: True)
    assert hostload.host_starved(vcpu_share=0.02, vcpus_runnable=True, loop_lag_s=0.0)
    monkeypatch.setattr(hostload, "host_overloaded", lambda: False)
    assert not hostload.host_starved(vcpu_share=0.02, vcpus_runnable=True, loop_lag_s=0.0)


def test_idle_vcpus_are_starved_only_on_a_host_starved_for_a_minute(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(hostload, "host_overloaded", lambda: True)
    monkeypatch.setattr(hostload, "host_starved_lately", lambda: None)
    assert not hostload.host_starved(vcpu_share=0.0, vcpus_runnable=False, loop_lag_s=0.0)
    monkeypatch.setattr(hostload, "host_starved_lately", lambda: "host CPU pressure 99%")
    assert hostload.host_starved(vcpu_share=0.1, vcpus_runnable=False, loop_lag_s=0.0)


def test_starved_lately_reads_a_minute_of_pressure(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(hostload, "cpu_pressure", lambda window="avg10": 80.0 if window == "avg60" else 0.0)
    assert hostload.host_starved_lately() == "host CPU pressure 80% over the last minute"
    monkeypatch.setattr(hostload, "cpu_pressure", lambda window="avg10": 10.0)
    assert hostload.host_starved_lately() is None
