"""Injectors keep their own error: cleanup that fails does not replace it."""

from __future__ import annotations

from typing import Any

import pytest

from soak.errors import QMPError
from soak.faults.inject import FaultError, _run_job


class StuckJobs:
    """A QEMU whose snapshot job never concludes and that refuses to dismiss a running job."""

    def __init__(self, status: str = "running") -> None:
        self.status = status
        self.calls: list[str] = []

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        self.calls.append(command)
        if command == "query-jobs":
            return [{"id": "save1", "status": self.status}]
        if command == "job-dismiss" and self.status != "concluded":
            raise QMPError("Job 'save1' in state 'running' cannot accept command verb 'dismiss'")
        if command == "job-cancel":
            raise QMPError("QMP did not answer job-cancel in 5s")
        return {}


async def test_did_not_finish_survives_a_failing_cleanup() -> None:
    qmp = StuckJobs()
    with pytest.raises(FaultError, match="snapshot-save did not finish in 0s"):
        await _run_job(qmp, "snapshot-save", {"job-id": "save1"}, timeout=0.2)  # type: ignore[arg-type]
    assert qmp.calls[-1] == "job-cancel"  # a running job is cancelled, not dismissed


async def test_a_concluded_job_is_dismissed() -> None:
    qmp = StuckJobs("concluded")
    await _run_job(qmp, "snapshot-save", {"job-id": "save1"}, timeout=5)  # type: ignore[arg-type]
    assert qmp.calls[-1] == "job-dismiss"
