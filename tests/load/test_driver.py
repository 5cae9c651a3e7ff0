"""The load driver with an agent that answers like the guest's: a refusal is soak's problem."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from soak import events as ev
from soak.load.driver import LoadDriver
from soak.load.settings import LoadSettings

BAD_OPTION = (Path(__file__).parent / "data" / "bad-option.txt").read_text().split("\n\n", 1)[1]


class RefusingAgent:
    """Every job prints stress-ng's bad-option words and exits 1, as the real one did."""

    def __init__(self) -> None:
        self.driver: LoadDriver | None = None
        self.jobs = 0

    async def start_job(self, cmd: str, timeout: float = 10.0) -> int:
        self.jobs += 1
        job = self.jobs
        loop = asyncio.get_running_loop()

        def finish() -> None:
            assert self.driver is not None
            for line in BAD_OPTION.splitlines():
                self.driver.on_output(job, line)
            self.driver.on_exit(job, 1)

        loop.call_soon(finish)
        return job

    async def stop_job(self, job: int, timeout: float = 10.0) -> None:
        pass


async def test_a_refused_run_is_one_infra_problem_not_a_failure() -> None:
    events: list[ev.Event] = []
    verdicts: list[Any] = []

    async def record(verdict: Any, output: str) -> None:
        verdicts.append(verdict)

    settings = LoadSettings(stressors=["cpu"], pattern="bursts", period="5s", idle="0s")
    driver = LoadDriver("g-0", settings, vcpus=1, memory_mib=256, seed=1, vm_index=0,
                        emit=events.append, record=record)
    agent = RefusingAgent()
    agent.driver = driver
    task = asyncio.create_task(driver.run(agent))  # type: ignore[arg-type]
    async with asyncio.timeout(20):
        while driver.refusals < 3:
            await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    problems = [e for e in events if isinstance(e, ev.InfraProblem)]
    assert verdicts == []
    assert len(problems) == 1 and problems[0].problem == "load"
    assert "unrecognized option '--no-such-option'" in problems[0].message
