"""Running one boot's stress-ng schedule through the agent, and judging every run.

The driver starts each planned run as an agent job, folds the job's output
lines into a `RunOutcome` as they arrive (throughput lines become
`WorkloadMetrics` events at once), and when the job exits asks the outcome for
a verdict: a failed verification or a dead stressor is a `workload-failure`.
A run that outlives its deadline is stopped and reported: stress-ng that does
not finish is a symptom too (a hung guest is the heartbeat watchdog's to find).
A run stress-ng refuses (exit 1: bad options, no memory for its harness) is
soak's problem, not the guest's: an ``InfraProblem`` (``load``), once per boot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from soak import clock
from soak import events as ev
from soak.detect.verdict import Verdict
from soak.errors import AgentError
from soak.kinds import Kind
from soak.load.plan import StressRun, plan_runs
from soak.load.settings import LoadSettings
from soak.load.stressng import RunOutcome, StressMetric

log = logging.getLogger(__name__)


OUTPUT_TAIL_LINES = 200
"""Lines of a run's output kept as evidence of its failure."""
GRACE_FACTOR = 2.0
"""A run may take its duration plus this many times more (under TCG a loaded host slows
stress-ng's teardown a lot) plus `plan.EXIT_GRACE_S`, before it counts as stuck."""


@dataclass
class _Job:
    run: StressRun
    outcome: RunOutcome = field(default_factory=RunOutcome)
    exited: asyncio.Future[int] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    output: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_TAIL_LINES))


class JobAgent(Protocol):
    """What the load needs of a guest agent: background jobs (`soak.vm.channels.GuestAgent`)."""

    async def start_job(self, cmd: str, timeout: float = 10.0) -> int: ...

    async def stop_job(self, job: int, timeout: float = 10.0) -> None: ...


class LoadDriver:
    def __init__(
        self,
        vm: str,
        settings: LoadSettings,
        *,
        vcpus: int,
        memory_mib: int,
        seed: int,
        vm_index: int,
        emit: Callable[[ev.Event], None],
        record: Callable[[Verdict, str], Awaitable[None]],
    ) -> None:
        self.vm = vm
        self.settings = settings
        self.plan = plan_runs(settings, vcpus=vcpus, memory_mib=memory_mib, seed=seed, vm_index=vm_index)
        self.emit = emit
        self.record = record
        self._jobs: dict[int, _Job] = {}
        self._paused_s = 0.0
        self.runs = 0
        self.refusals = 0
        """Runs stress-ng refused (exit 1); the first is reported, the rest only counted."""

    def paused(self, seconds: float) -> None:
        """The guest could not run for ``seconds`` (a fault window): the run's deadline moves."""
        self._paused_s += seconds

    async def run(self, agent: JobAgent) -> None:
        """Run the schedule until cancelled (the boot ends)."""
        for planned in self.plan:
            await asyncio.sleep(planned.idle_before_s)
            try:
                job_id = await agent.start_job(planned.argv)
            except AgentError as exc:
                log.info("%s: cannot start stress-ng: %s", self.vm, exc)
                return
            job = self._jobs[job_id] = _Job(planned)
            try:
                rc = await self._wait_exit(job)
                stopped = rc is None
                if rc is None:
                    with contextlib.suppress(AgentError):  # the guest may be gone
                        await agent.stop_job(job_id)
                    limit = planned.deadline_s + GRACE_FACTOR * planned.duration_s
                    await self.record(Verdict(
                        Kind.WORKLOAD_FAILURE, "stress-ng run did not finish", terminal=False,
                        message=f"run {planned.index} ({planned.argv}) still running {limit:.0f}s after start"),
                        "\n".join(job.output))
            finally:
                self._jobs.pop(job_id, None)
            self.runs += 1
            verdict = job.outcome.verdict(-1 if rc is None else rc, stopped=stopped)
            if verdict is not None:
                await self.record(verdict, "\n".join(job.output))
            elif rc is not None and (refused := job.outcome.refusal(rc, stopped=stopped)) is not None:
                self._refused(planned, refused)

    def _refused(self, planned: StressRun, why: str) -> None:
        """stress-ng would not run: soak's plan or image is at fault, not the guest (once per boot)."""
        self.refusals += 1
        if self.refusals == 1:
            self.emit(ev.InfraProblem(vm=self.vm, problem="load",
                                      message=f"stress-ng refused run {planned.index} ({why})"))
        else:
            log.info("%s: stress-ng refused run %d too (%s)", self.vm, planned.index, why)

    async def _wait_exit(self, job: _Job) -> int | None:
        """The run's exit status, or None when it outlived its (pause-extended) deadline."""
        start, paused_before = clock.now(), self._paused_s
        limit = job.run.deadline_s + GRACE_FACTOR * job.run.duration_s
        while True:
            remaining = start + limit + (self._paused_s - paused_before) - clock.now()
            if remaining <= 0:
                return None
            try:
                async with asyncio.timeout(remaining):
                    return await asyncio.shield(job.exited)
            except TimeoutError:
                continue  # a fault window may have moved the deadline meanwhile

    def owns(self, job: int) -> bool:
        return job in self._jobs

    def on_output(self, job: int, text: str) -> None:
        entry = self._jobs.get(job)
        if entry is None:
            return
        entry.output.append(text)
        item = entry.outcome.feed(text)
        if isinstance(item, StressMetric):
            self.emit(ev.WorkloadMetrics(vm=self.vm, stressor=item.stressor, bogo_ops=item.bogo_ops,
                                         bogo_ops_per_s=item.bogo_ops_per_s_real, seconds=item.real_s))

    def on_exit(self, job: int, rc: int) -> None:
        entry = self._jobs.get(job)
        if entry is not None and not entry.exited.done():
            entry.exited.set_result(rc)

