"""The schedule of stress-ng runs for one VM: an endless, seeded, lazy sequence.

Each `StressRun` is one stress-ng invocation the guest runner starts through
the agent (``start_job(run.argv)``) after idling ``run.idle_before_s``. Its
metrics arrive when it ends, after ``run.duration_s``; then the next run
follows. The same settings, guest shape, seed and VM index always give the
same runs, so a failure's load can be replayed.

Sizing (why these numbers): the initramfs lives in guest RAM, so a 256 MiB
guest has about 200 MiB usable; the kernel, the initramfs and the agent are
counted as `GUEST_RESERVED_MIB`. Each worker process costs about
`WORKER_OVERHEAD_MIB` of its own, io files live on tmpfs (RAM too), and the
vm workers share ``memory_share`` of what is left. ``--oom-avoid`` makes
stress-ng back off near exhaustion: an OOM kill is not a workload failure
(the console classifier reports it as ``oom``), but it is a failure, so the
load must not provoke it by design. ``--oomable`` is left out: without it
stress-ng restarts a worker the OOM killer took, so the load goes on.
"""

from __future__ import annotations

import itertools
import math
import random
import shlex
from collections.abc import Iterator
from dataclasses import dataclass

from soak.load.settings import LoadSettings, Stressor

STRESS_NG = "stress-ng"
TEMP_PATH = "/tmp"
"""The guest's tmpfs; the io stressor's files and stress-ng's scratch go there."""

STRESS_NG_NAMES: dict[Stressor, str] = {
    Stressor.CPU: "cpu",
    Stressor.VM: "vm",
    Stressor.IO: "hdd",
    Stressor.TIMER: "timer",
    Stressor.CLOCK: "clock",
    Stressor.SWITCH: "switch",
    Stressor.FUTEX: "futex",
    Stressor.TLB_SHOOTDOWN: "tlb-shootdown",
    Stressor.MEMBARRIER: "membarrier",
}
"""Profile name -> stress-ng stressor (the name its metrics and failure lines use).

Left out on purpose: ``hrtimers`` and ``cyclic`` run SCHED_RR/FIFO as root and
can starve the agent's heartbeat (a false guest hang); ``io`` is only sync(2).
"""

GUEST_RESERVED_MIB = 64
"""Kernel, initramfs (36 MB unpacked, in RAM) and agent: a 256 MiB guest has ~200 MiB usable."""
WORKER_OVERHEAD_MIB = 2
"""Private memory of one stress-ng worker process (measured: 0.3-2 MiB)."""
WORKER_MEMORY_CAP = 0.25
"""Worker processes' own overhead may take at most this share of usable memory."""
IO_FILE_MIB = 4
"""``--hdd-bytes`` per io worker: small files, on tmpfs, so they count against RAM."""
MIN_VM_MIB = 4
"""stress-ng's own minimum is 4 KiB; below a few MiB the vm stressor tests only the cache."""
VM_METHODS = (
    "checkerboard", "gray", "incdec", "inc-nybble", "lfsr32", "rand-set", "rand-sum", "read64", "swap",
    "write64", "zero-one",
)
"""vm methods that touch the buffer in one or two passes. stress-ng checks its timeout only
between passes, and the default ``all`` includes many-pass methods (galpat, prime, walk)
that under TCG take minutes on a few tens of MiB: a run would overstay its period."""
MIX_SIZE = (2, 3)
"""How many stressors ``mix`` draws for a run (inclusive range)."""
MAX_RAMP_STEPS = 8
"""A ramp reaches full load in at most this many runs, however many workers that is."""
IDLE_JITTER = 0.5
"""Burst gaps are drawn uniformly within ``idle`` times 1 -/+ this."""
EXIT_GRACE_S = 30.0
"""How long stress-ng may take past ``--timeout`` to reap workers and print metrics."""


@dataclass(frozen=True, slots=True)
class StressRun:
    """One stress-ng invocation of a VM's schedule."""

    index: int
    """Position in the schedule, from 0."""
    idle_before_s: float
    """Wait this long (guest idle) before starting the run."""
    duration_s: float
    """stress-ng's ``--timeout``: the run's metrics arrive after this."""
    argv: str
    """The shell command line for the agent's ``start``."""
    stressors: tuple[str, ...]
    """stress-ng names (``hdd`` for io), as its metrics and failure lines spell them."""
    workers: int
    """Workers of each stressor in this run."""
    intensity: float
    """Share of the full load (workers / full workers): below 1 only while ramping."""

    @property
    def deadline_s(self) -> float:
        """After this long from its start, a run that has not exited is stuck."""
        return self.duration_s + EXIT_GRACE_S


def plan_runs(
    settings: LoadSettings, *, vcpus: int, memory_mib: int, seed: int, vm_index: int
) -> Iterator[StressRun]:
    """The endless schedule of runs for one VM; pure and lazy: take as many as needed."""
    # One stream per purpose: the same seed picks the same mixes whatever the pattern.
    key = f"soak.load:{seed}:{settings.seed_offset}:{vm_index}"
    mix_rng, idle_rng = (random.Random(f"{key}:{use}") for use in ("mix", "idle"))
    duration = float(math.ceil(settings.period))
    for index in itertools.count():
        names = _pick_stressors(settings.stressors, mix_rng)
        full = full_workers(settings, vcpus=vcpus, memory_mib=memory_mib, count=len(names))
        workers = _ramp_workers(full, index) if settings.pattern == "ramp" else full
        idle = 0.0
        if settings.pattern == "bursts" and index > 0:
            low, high = settings.idle * (1 - IDLE_JITTER), settings.idle * (1 + IDLE_JITTER)
            idle = idle_rng.uniform(low, high)
        argv = _argv(
            settings,
            names,
            workers=workers,
            vm_mib=_vm_mib_per_worker(settings, memory_mib, names, full),
            duration=duration,
            vm_method=VM_METHODS[index % len(VM_METHODS)],
        )
        yield StressRun(
            index=index,
            idle_before_s=round(idle, 3),
            duration_s=duration,
            argv=argv,
            stressors=names,
            workers=workers,
            intensity=workers / full,
        )


def full_workers(settings: LoadSettings, *, vcpus: int, memory_mib: int, count: int) -> int:
    """Workers per stressor at full load: per vCPU, capped so their overhead fits in memory."""
    wanted = max(1, round(vcpus * settings.workers_per_vcpu))
    max_total = int(_usable_mib(memory_mib) * WORKER_MEMORY_CAP / WORKER_OVERHEAD_MIB)
    return max(1, min(wanted, max_total // max(1, count)))


def ramp_time_s(settings: LoadSettings, *, vcpus: int, memory_mib: int) -> float:
    """An upper bound on the time until full load: a trend detector's warm-up must cover it."""
    if settings.pattern != "ramp":
        return 0.0
    full = full_workers(settings, vcpus=vcpus, memory_mib=memory_mib, count=1)
    return (min(full, MAX_RAMP_STEPS) - 1) * float(math.ceil(settings.period))


def _usable_mib(memory_mib: int) -> int:
    return max(0, memory_mib - GUEST_RESERVED_MIB)


def _pick_stressors(chosen: list[Stressor], rng: random.Random) -> tuple[str, ...]:
    """The stress-ng names of one run: the listed stressors, plus a fresh draw for ``mix``."""
    fixed: list[Stressor] = [s for s in chosen if s is not Stressor.MIX]
    if Stressor.MIX in chosen:
        pool = [s for s in STRESS_NG_NAMES if s not in fixed]
        size = min(len(pool), rng.randint(*MIX_SIZE))
        drawn = set(rng.sample(pool, size))
        fixed += [s for s in STRESS_NG_NAMES if s in drawn]  # enum order: stable, readable argv
    return tuple(STRESS_NG_NAMES[s] for s in fixed)


def _ramp_workers(full: int, index: int) -> int:
    """1 worker in the first run, growing evenly to ``full`` over at most MAX_RAMP_STEPS runs."""
    steps = min(full, MAX_RAMP_STEPS)
    if steps <= 1 or index >= steps - 1:
        return full
    return 1 + (full - 1) * index // (steps - 1)


def _vm_mib_per_worker(
    settings: LoadSettings, memory_mib: int, names: tuple[str, ...], full: int
) -> int:
    """Memory of each vm worker, sized for the full load so a ramp grows the total with it."""
    overhead = full * len(names) * WORKER_OVERHEAD_MIB
    if STRESS_NG_NAMES[Stressor.IO] in names:
        overhead += full * IO_FILE_MIB
    budget = (_usable_mib(memory_mib) - overhead) * settings.memory_share
    return max(MIN_VM_MIB, int(budget // full))


def _argv(
    settings: LoadSettings,
    names: tuple[str, ...],
    *,
    workers: int,
    vm_mib: int,
    duration: float,
    vm_method: str = VM_METHODS[0],
) -> str:
    """The stress-ng command line; every flag is there for the parser or for safety.

    No ``--seed``: 0.15.06 ignores it ("cannot determine seed from --seed option").
    """
    args = [STRESS_NG]
    for name in names:
        args += [f"--{name}", str(workers)]
        if name == STRESS_NG_NAMES[Stressor.VM]:
            args += ["--vm-bytes", f"{vm_mib}M", "--vm-method", vm_method]
        elif name == STRESS_NG_NAMES[Stressor.IO]:
            args += ["--hdd-bytes", f"{IO_FILE_MIB}M"]
    args += [
        "--temp-path", TEMP_PATH,
        "--timeout", f"{int(duration)}s",
        "--metrics-brief",  # one `metrc:` line per stressor at the end (soak.load.stressng)
        "--oom-avoid",  # back off near memory exhaustion rather than feed the OOM killer
        "--verbose",  # the only way stress-ng names a worker's death signal (SIGSEGV vs OOM)
    ]
    if settings.verify:
        args.append("--verify")
    return shlex.join(args)
