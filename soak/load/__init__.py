"""In-guest load: what stress-ng runs a VM gets, and what its output means.

* `settings`: the profile's ``load`` table (`LoadSettings`).
* `plan`: the seeded, endless schedule of runs (`plan_runs` -> `StressRun`).
* `stressng`: stress-ng's output parsed line by line (`parse_line`, `RunOutcome`).

Pure: no asyncio, no I/O. The guest runner starts the runs through the agent.
"""

from soak.load.plan import StressRun, plan_runs, ramp_time_s
from soak.load.settings import LoadSettings, Stressor
from soak.load.stressng import (
    RunOutcome,
    StressMetric,
    StressProblem,
    interpret_exit,
    parse_line,
    workload_verdict,
)

__all__ = [
    "LoadSettings",
    "RunOutcome",
    "StressMetric",
    "StressProblem",
    "StressRun",
    "Stressor",
    "interpret_exit",
    "parse_line",
    "plan_runs",
    "ramp_time_s",
    "workload_verdict",
]
