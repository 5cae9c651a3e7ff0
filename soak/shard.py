"""Shards: one profile's fleet split over many hosts, and where each piece runs.

A shard is a *filter* over `expand_fleet`: the fleet is expanded exactly as
without sharding (same seed, names and shapes), and shard ``I/N`` keeps the
VMs whose fleet index is ``I`` modulo ``N``. So any shard can be re-run alone,
on any host, and the shards of one run are disjoint and cover the fleet.
Round-robin rather than blocks: every shard gets a share of every group.

`Placement` says which piece this process runs and on whose behalf: the
shard, the attempt (a requeued or retried shard is a new attempt with its own
run directory), the host, and the run group the shards of one run share. It
comes from the command line or from the engine's environment:

======================  ==================================  ================================
                        Slurm job array                     Kubernetes Indexed Job
======================  ==================================  ================================
shard                   ``--shard auto``: task id - min,    ``--shard $(JOB_COMPLETION_INDEX)/N``
                        of ``SLURM_ARRAY_TASK_COUNT``
attempt                 ``SLURM_RESTART_COUNT``             ``JOB_INDEX_FAILURE_COUNT`` +
                                                            ``JOB_INDEX_IGNORED_FAILURE_COUNT`` (the
                                                            pod's annotations of those names)
run group               ``slurm-CLUSTER-ARRAYJOBID``        ``SOAK_RUN_GROUP`` (the Job's uid)
host                    ``SLURMD_NODENAME``                 ``SOAK_HOST`` (the node name)
engine job              ``ARRAYJOBID_TASKID``               the pod name (``POD_NAME``)
======================  ==================================  ================================

``--attempt``, ``--run-group`` and ``--host`` (or ``SOAK_ATTEMPT``,
``SOAK_RUN_GROUP``, ``SOAK_HOST``) win over the engine's values. Without an
engine, shards started by hand (ssh) agree on a run group derived from what
they share: the profile's hash, the seed and the shard count.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from soak.errors import UsageError
from soak.profile import Profile

HOST_LOCAL_SETTINGS = frozenset({"metrics_listen", "qemu", "max_parallel_boots"})
"""``[run]`` settings that may differ between the hosts of one run: not part of its hash."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
RUN_GROUP_MAX = 63
"""A run group ends up in a directory name and a metric label."""
HOST_MAX = 253
"""A DNS name, as Kubernetes node names are."""


class _Indexed(Protocol):
    @property
    def index(self) -> int: ...


T = TypeVar("T", bound=_Indexed)


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based, as Slurm arrays and Indexed Jobs count)."""

    index: int = 0
    count: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, fleet_index: int) -> bool:
        return fleet_index % self.count == self.index

    def select(self, fleet: Sequence[T]) -> list[T]:
        """This shard's VMs, in fleet order (``fleet`` is `expand_fleet`'s, unfiltered)."""
        return [vm for vm in fleet if self.holds(vm.index)]


def parse_shard(text: str) -> Shard:
    """``I/N`` with ``0 <= I < N``.

    :raise UsageError: anything else.
    """
    index, sep, count = text.strip().partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise UsageError(f"--shard {text!r}: expected I/N, e.g. 0/3 (shards count from 0)")
    shard = Shard(int(index), int(count))
    if shard.count < 1:
        raise UsageError(f"--shard {text!r}: the shard count must be at least 1")
    if shard.index >= shard.count:
        raise UsageError(f"--shard {text!r}: shards of {shard.count} are 0 to {shard.count - 1}")
    return shard


def profile_hash(profile: Profile) -> str:
    """A short hash of the profile's validated content, equal on every host of one run.

    Computed over the validated values, not the file: comments, whitespace, key
    order and unit spellings (``2m`` or ``120s``) do not change it; command-line
    overrides (``--duration``) do. Host-local settings (`HOST_LOCAL_SETTINGS`)
    and the seed are left out: the seed is recorded on its own, so a shard run
    with another seed is reported as that, not as another profile.
    """
    data = profile.model_dump(mode="json")
    data["run"] = {k: v for k, v in data["run"].items() if k not in HOST_LOCAL_SETTINGS | {"seed"}}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Placement:
    """Which shard this process runs, which attempt, where, and for which run group."""

    shard: Shard
    attempt: int
    host: str
    run_group: str
    """Shared by the shards of one run; ``""`` for a run that is not sharded."""
    engine: str = ""
    """``slurm``, ``kubernetes`` or ``""`` (started by hand)."""
    engine_job: str = ""
    """The engine's name of this attempt: a Slurm ``JOBID_TASKID``, a pod name."""

    @property
    def sharded(self) -> bool:
        return self.shard.count > 1 or bool(self.run_group)

    def metric_labels(self) -> dict[str, str]:
        """Labels on every series the run exports: Prometheus knows neither (see exporter)."""
        return {"host": self.host, "shard": str(self.shard.index)}

    def run_info_labels(self) -> dict[str, str]:
        """Labels only ``soak_run_info`` carries: they change with every run or attempt."""
        return {"run_group": self.run_group, "shards": str(self.shard.count), "attempt": str(self.attempt)}

    def run_dir(self, profile_name: str, base: Path = Path("runs")) -> Path:
        """``runs/NAME-GROUP/shard-I-of-N-attempt-K``: one parent per run group, a folder per attempt.

        An existing folder (an attempt number the engine repeated, e.g. a pod
        replaced after a node drain) gets a ``-2``, ``-3`` ... suffix.
        """
        parent = base / f"{profile_name}-{self.run_group}"
        stem = f"shard-{self.shard.index}-of-{self.shard.count}-attempt-{self.attempt}"
        path, n = parent / stem, 1
        while path.exists():
            n += 1
            path = parent / f"{stem}-{n}"
        return path


def resolve_placement(
    profile: Profile,
    env: Mapping[str, str],
    *,
    shard: str | None = None,
    attempt: int | None = None,
    run_group: str | None = None,
    host: str | None = None,
) -> Placement:
    """The placement from the command line, filled in from the engine's environment.

    :raise UsageError: a bad ``--shard``, ``--attempt``, ``--run-group`` or ``--host``,
        or ``--shard auto`` outside a Slurm job array.
    """
    slurm = "SLURM_JOB_ID" in env
    kubernetes = "JOB_COMPLETION_INDEX" in env
    if shard is None:
        chosen = Shard()
    elif shard.strip() == "auto":
        chosen = _slurm_array_shard(env)
    else:
        chosen = parse_shard(shard)
    if attempt is None:
        attempt = _engine_attempt(env, slurm=slurm, kubernetes=kubernetes)
    if attempt < 0:
        raise UsageError(f"--attempt {attempt}: must be 0 or more")
    host = host or (env.get("SLURMD_NODENAME") if slurm else None) or socket.gethostname()
    _check_name("--host", host, HOST_MAX)
    engine = "slurm" if slurm else "kubernetes" if kubernetes else ""
    if slurm:
        task = env.get("SLURM_ARRAY_TASK_ID")
        engine_job = f"{env['SLURM_ARRAY_JOB_ID']}_{task}" if task and "SLURM_ARRAY_JOB_ID" in env \
            else env["SLURM_JOB_ID"]
    elif kubernetes:
        engine_job = env.get("POD_NAME") or env.get("HOSTNAME", "")
    else:
        engine_job = ""
    if run_group is None and chosen.count > 1:
        run_group = _engine_run_group(env) or derived_run_group(profile, chosen.count)
    if run_group:
        _check_name("--run-group", run_group, RUN_GROUP_MAX)
    return Placement(chosen, attempt, host, run_group or "", engine, engine_job)


def derived_run_group(profile: Profile, shards: int) -> str:
    """What shards started by hand share: the profile, its seed and the shard count."""
    return f"{profile_hash(profile)[:8]}-s{profile.run.seed}-n{shards}"


def _engine_attempt(env: Mapping[str, str], *, slurm: bool, kubernetes: bool) -> int:
    """Slurm counts requeues; an Indexed Job counts an index's failures in two annotations.

    Both Kubernetes counts are needed: a pod lost to a node drain is retried
    without counting against the backoff limit (the ``Ignore`` rule), so the
    counted failures alone would give its replacement the same attempt number.
    """
    if slurm:
        return _int_env(env, "SLURM_RESTART_COUNT", 0)
    if kubernetes:
        return _int_env(env, "JOB_INDEX_FAILURE_COUNT", 0) + _int_env(env, "JOB_INDEX_IGNORED_FAILURE_COUNT", 0)
    return 0


def _engine_run_group(env: Mapping[str, str]) -> str | None:
    if "SLURM_ARRAY_JOB_ID" in env:
        cluster = env.get("SLURM_CLUSTER_NAME", "cluster")
        return f"slurm-{cluster}-{env['SLURM_ARRAY_JOB_ID']}"
    return None


def _slurm_array_shard(env: Mapping[str, str]) -> Shard:
    """Shard of a Slurm job array task: ``--array=0-2`` (or ``5-7``) runs shards 0/3 to 2/3."""
    if "SLURM_ARRAY_TASK_ID" not in env:
        raise UsageError("--shard auto: not a Slurm job array task (no SLURM_ARRAY_TASK_ID); "
                         "pass --shard I/N")
    task = _int_env(env, "SLURM_ARRAY_TASK_ID", 0)
    low = _int_env(env, "SLURM_ARRAY_TASK_MIN", 0)
    high = _int_env(env, "SLURM_ARRAY_TASK_MAX", task)
    count = _int_env(env, "SLURM_ARRAY_TASK_COUNT", high - low + 1)
    step = _int_env(env, "SLURM_ARRAY_TASK_STEP", 1)
    if step != 1 or high - low + 1 != count:
        raise UsageError(f"--shard auto: the job array must be a plain range like --array=0-{count - 1} "
                         f"(this one is {low}-{high} step {step}, {count} tasks)")
    return Shard(task - low, count)


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise UsageError(f"environment variable {name}={value!r} is not a number")
    return int(value)


def _check_name(option: str, value: str, longest: int) -> None:
    if not _NAME.match(value) or len(value) > longest:
        raise UsageError(f"{option} {value!r}: use letters, digits, '.', '_' and '-' "
                         f"(at most {longest}, starting with a letter or digit)")
