"""The fake-runner tests run on a virtual clock: the real host's load must not decide them."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def quiet_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host is never starved unless a test says so (monkeypatching soak.hostload again)."""
    monkeypatch.setattr("soak.hostload.host_overloaded", lambda: False)
    monkeypatch.setattr("soak.hostload.host_starved_lately", lambda: None)
