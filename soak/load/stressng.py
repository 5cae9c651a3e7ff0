"""stress-ng's output, line by line as the agent streams it: metrics in, failures out.

Written against stress-ng 0.15.06 (the guest's version), run with the flags
`soak.load.plan` passes. Its lines look like::

    stress-ng: metrc: [93] cpu                 534     10.06      9.92      0.13        53.09          53.13
    stress-ng: fail:  [21757] moving inversion: detected 1493 memory errors
    stress-ng: fail:  [21756] vm: detected 9897 bit errors while stressing memory
    stress-ng: fail:  [21978] hdd: incorrect data found 500 times
    stress-ng: debug: [24679] vm: child died: signal 11 'SIGSEGV' (instance 0)
    stress-ng: debug: [22535] process [22536] (cpu) terminated on signal: 7 (Bus error)
    stress-ng: info:  [26218] stressor terminated with unexpected signal signal 4 'SIGILL'

What a problem is (``ProblemKind``), and why each kind is handled apart:

* ``verify``: a result or memory content check failed: possible data
  corruption, the worst thing a soak can miss. Always a failure, even when soak
  stopped the run (stopping never produced one in 40 tries).
* ``stressor-failed``: a worker died by a signal, exited unexpectedly or hit an
  unexpected error. A failure. Note the vm stressor restarts a worker killed by
  SIGSEGV or SIGBUS and still exits 0: only ``--verbose`` shows it, and we
  report it, since a worker on plain anonymous memory must not fault.
* ``other``: stress-ng's own bookkeeping is damaged (``corrupted bogo-ops
  counter``, exit 7). A failure, unless an OOM kill or soak's stop explains it:
  both kill a worker mid-update and leave exactly these lines.
* ``oom-killed``: a worker or stress-ng died by SIGKILL, which in our guest
  only the OOM killer sends (or soak's stop). Not a failure here: the console
  classifier reports the OOM itself (kind ``oom``).
* ``skipped``: a stressor could not run for lack of resources or support (exit
  3 or 4). Not a bug; worth a note, since that load was missing.
* ``error``: stress-ng refused to run (exit 1: bad options, or no memory for
  its own harness). Not a guest failure: soak's argv or image is wrong, an
  infrastructure problem.

Everything here is pure; `RunOutcome` folds one run into at most one `Verdict`.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from typing import Literal

from soak.detect.verdict import Verdict
from soak.kinds import Kind

ProblemKind = Literal["verify", "stressor-failed", "other", "oom-killed", "skipped", "error"]
FAILURE_KINDS: frozenset[ProblemKind] = frozenset({"verify", "stressor-failed", "other"})

SIGNAL_EXIT_BASE = 128
"""The agent's shell reports a command killed by signal N as 128 + N."""
EXIT_CODES: dict[int, tuple[ProblemKind, str]] = {
    1: ("error", "stress-ng error: bad options or a fatal harness resource issue"),
    2: ("stressor-failed", "one or more stressors failed"),
    3: ("skipped", "one or more stressors failed to initialise for lack of resources"),
    4: ("skipped", "one or more stressors are not implemented here"),
    5: ("stressor-failed", "a stressor was killed by an unexpected signal"),
    6: ("stressor-failed", "a stressor exited unexpectedly, no metrics"),
    7: ("other", "bogo-ops metrics untrustworthy (a worker died mid-update)"),
}
"""stress-ng 0.15.06's exit codes (man page, EXIT STATUS)."""
MAX_KEPT = 8
"""Problems a `RunOutcome` keeps for the message; the rest are only counted."""
MAX_TITLE_STRESSOR = 32

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_LINE = re.compile(r"^stress-ng: (?P<level>metrc|fail|error|warn|info|debug):\s*\[(?P<pid>\d+)\] (?P<msg>.*)$")
# The name field is %-13s: "tlb-shootdown" fills it and glues to the count, so
# split on the last letter (no stressor name ends in a digit).
_METRIC = re.compile(
    rf"^(?P<name>[a-z][a-z0-9-]*?[a-z-])\s*(?P<ops>\d+)\s+(?P<real>{_NUM})\s+(?P<usr>{_NUM})"
    rf"\s+(?P<sys>{_NUM})\s+(?P<rate_real>{_NUM})\s+(?P<rate_cpu>{_NUM})(?:\s+{_NUM}\s+\d+)?$"
)
_PROCESS = re.compile(r"^process \[\d+\] \((?:stress-ng-)?(?P<name>[^)]*)\) (?P<what>.*)$")
_TERMINATED = re.compile(r"^terminated on signal: (?P<num>\d+)")
_CHILD_DIED = re.compile(r"^(?P<name>[a-z][a-z0-9-]*): child died: signal (?P<num>\d+)")
_UNEXPECTED_SIGNAL = re.compile(r"stressor terminated with unexpected signal (?:signal (?P<num>\d+))?")
_OOM_RESTART = re.compile(r"^(?P<name>[a-z][a-z0-9-]*): assuming killed by OOM killer")
_METRICS_CHECK = re.compile(
    r"^(?:(?P<name>[a-z][a-z0-9-]*) instance \d+ (?:corrupted|hash error|unexpected null)|metrics-check:)"
)
_NAMED = re.compile(r"^(?P<name>[a-z][a-z0-9-]*): (?P<rest>.*)$")
_MEMORY_ERRORS = re.compile(r"detected \d+ memory errors?$")
"""The vm stressor's per-method check, named after the method ("moving inversion: ...")."""
_VERIFY = re.compile(
    r"\bbit errors?\b|\bmemory errors?\b|\bincorrect\b|\bcorrupt|\bmismatch|miscalculated"
    r"|\berror detected\b|\bdid not match\b|\bdoes not contain\b|\bchecksum|\bverif|\bexpected\b|\bwrong\b",
    re.IGNORECASE,
)
"""A failed check of a result or of data, as stress-ng words them (its `pr_fail` strings)."""
_SKIPPED = re.compile(r"aborted early, out of system resources|will be skipped|not implemented")


@dataclass(frozen=True, slots=True)
class StressMetric:
    """One stressor's throughput over one run, from its ``metrc:`` line."""

    stressor: str
    bogo_ops: int
    real_s: float
    usr_s: float
    sys_s: float
    bogo_ops_per_s_real: float
    bogo_ops_per_s_cpu: float


@dataclass(frozen=True, slots=True)
class StressProblem:
    """Something wrong in a run: a line of stress-ng's, or its exit status."""

    kind: ProblemKind
    stressor: str
    """stress-ng's name (``vm``, ``hdd``), or "" when the line does not say."""
    text: str
    """The line itself (or the meaning of the exit code): evidence, never a title."""
    signal: str = ""
    """``SIGSEGV`` ... when a worker or stress-ng died by a signal."""
    exit_code: int | None = None

    @property
    def is_failure(self) -> bool:
        """True for the kinds that are failures of the guest (see the module docstring)."""
        return self.kind in FAILURE_KINDS


def parse_line(text: str) -> StressMetric | StressProblem | None:
    """A line of stress-ng output as a metric, a problem, or None (chatter, headers)."""
    text = text.rstrip()
    match = _LINE.match(text)
    if match is None:
        return None
    level, msg = match["level"], match["msg"]
    if level == "metrc":
        return _metric(msg)
    process = _PROCESS.match(msg)
    if process is not None:
        return _process_line(process["name"], process["what"], text)
    unexpected = _UNEXPECTED_SIGNAL.search(msg)
    if unexpected is not None:
        return _signal_problem(unexpected["num"], "", text)
    if level == "fail":
        return _fail_line(msg, text)
    if level == "debug":
        return _debug_line(msg, text)
    if _SKIPPED.search(msg):
        return StressProblem("skipped", _name_of(msg), text)
    return None  # info and warn chatter ("finished prematurely" is a stop's)


def interpret_exit(rc: int, *, stopped: bool = False) -> StressProblem | None:
    """What stress-ng's exit status (as the agent reports it) means; None when all is well.

    ``stopped``: soak stopped the run (agent ``stop``: SIGTERM, SIGKILL 5 s later);
    whatever the status then, it is the stop's doing.
    """
    if rc == 0 or stopped:
        return None
    if rc > SIGNAL_EXIT_BASE:
        return _signal_problem(str(rc - SIGNAL_EXIT_BASE), "", f"stress-ng exited with {rc}", rc)
    kind, meaning = EXIT_CODES.get(rc, ("other", "unknown exit status"))
    return StressProblem(kind, "", f"exit {rc}: {meaning}", exit_code=rc)


def workload_verdict(problem: StressProblem) -> Verdict:
    """The failure a problem is: kind workload-failure, a title without pids or counts.

    :raise ValueError: the problem is not a failure (``problem.is_failure`` is False).
    """
    if not problem.is_failure:
        raise ValueError(f"a {problem.kind} problem is not a workload failure")
    subject = f"stress-ng {_title_name(problem.stressor)}".rstrip()
    if problem.kind == "verify":
        detail = "verification failed"
    elif problem.signal:
        detail = f"killed by {problem.signal}"
    elif problem.kind == "other" and problem.exit_code is None:
        detail = "metrics corrupted"
    else:
        detail = "failed"
    if problem.exit_code is not None:
        detail += f" (exit {problem.exit_code})"
    return Verdict(Kind.WORKLOAD_FAILURE, f"{subject} {detail}",
                   terminal=False, message=problem.text)


class RunOutcome:
    """One run's problems, folded as its lines arrive, judged when it exits.

    Bounded: keeps the first `MAX_KEPT` problems and counts the others.
    """

    def __init__(self) -> None:
        self.problems: list[StressProblem] = []
        self.dropped = 0
        self.lines: list[str] = []
        """The first `MAX_KEPT` lines as they came: stress-ng's own words when it refuses to run."""
        self._oom = False

    def feed(self, text: str) -> StressMetric | StressProblem | None:
        """Parse one output line, remember a problem, and return what the line was."""
        if len(self.lines) < MAX_KEPT:
            self.lines.append(text.rstrip())
        item = parse_line(text)
        if isinstance(item, StressProblem):
            self._oom |= item.kind == "oom-killed"
            if len(self.problems) < MAX_KEPT:
                self.problems.append(item)
            else:
                self.dropped += 1
        return item

    @property
    def notes(self) -> list[StressProblem]:
        """Problems that are not failures (skipped stressors, OOM kills, harness errors)."""
        return [p for p in self.problems if not p.is_failure]

    def verdict(self, rc: int, *, stopped: bool = False) -> Verdict | None:
        """The run's failure, if any: verification first, then a worker's death, then the exit.

        A stop or an OOM kill explains lost workers and damaged bookkeeping, never a
        failed verification nor a worker killed by SIGSEGV and the like.
        """
        verify = next((p for p in self.problems if p.kind == "verify"), None)
        if verify is not None:
            return self._with_context(workload_verdict(verify))
        if stopped:
            return None
        exit_problem = interpret_exit(rc)
        oom = self._oom or (exit_problem is not None and exit_problem.kind == "oom-killed")
        candidates = [p for p in self.problems if p.is_failure]
        if exit_problem is not None and exit_problem.is_failure:
            candidates.append(exit_problem)
        if oom:
            candidates = [p for p in candidates if p.signal not in ("", "SIGKILL")]
        candidates.sort(key=_severity)
        if not candidates:
            return None
        best = candidates[0]
        if not best.stressor:  # e.g. "unexpected signal" lines: the metrics-check lines name it
            named = next((p.stressor for p in self.problems if p.stressor), "")
            best = StressProblem(best.kind, named, best.text, best.signal, best.exit_code)
        return self._with_context(workload_verdict(best))

    def refusal(self, rc: int, *, stopped: bool = False) -> str | None:
        """Why stress-ng refused to run (exit 1: bad options, no memory for its harness), or None.

        Not a guest failure and not a verdict: soak's argv or image is wrong, or the guest is
        too small for the plan. The driver reports it as an infrastructure problem.
        """
        problem = interpret_exit(rc, stopped=stopped)
        if problem is None or problem.kind != "error":
            return None
        said = [line for line in self.lines if line.startswith("stress-ng:") or "option" in line]
        return problem.text + (f": {said[0][:200]}" if said else "")

    def _with_context(self, verdict: Verdict) -> Verdict:
        lines = [p.text for p in self.problems if p.text != verdict.message]
        if self.dropped:
            lines.append(f"... and {self.dropped} more problem lines")
        message = "\n".join([verdict.message, *lines])
        return Verdict(verdict.kind, verdict.title, verdict.terminal, message)


def _severity(problem: StressProblem) -> int:
    """Lower first: a worker's death names the cause; exit codes only summarise."""
    if problem.kind == "stressor-failed" and problem.signal:
        return 0
    if problem.kind == "stressor-failed" and problem.exit_code is None:
        return 1
    if problem.exit_code is None:
        return 2
    return 3


def _metric(msg: str) -> StressMetric | None:
    match = _METRIC.match(msg)
    if match is None:
        return None  # the two header lines, "miscellaneous metrics:" and its rows
    return StressMetric(
        stressor=match["name"],
        bogo_ops=int(match["ops"]),
        real_s=float(match["real"]),
        usr_s=float(match["usr"]),
        sys_s=float(match["sys"]),
        bogo_ops_per_s_real=float(match["rate_real"]),
        bogo_ops_per_s_cpu=float(match["rate_cpu"]),
    )


def _process_line(name: str, what: str, text: str) -> StressProblem | None:
    """stress-ng's verdicts on a worker process: ``process [pid] (name) ...``."""
    if "killed by the OOM killer" in what:  # also "was possibly killed ..."
        return StressProblem("oom-killed", name, text, "SIGKILL")
    if _SKIPPED.search(what):
        return StressProblem("skipped", name, text)
    terminated = _TERMINATED.match(what)
    if terminated is not None:
        return _signal_problem(terminated["num"], name, text)
    if "terminated with an error" in what or "aborted via exit()" in what:
        return StressProblem("stressor-failed", name, text)
    return None


def _debug_line(msg: str, text: str) -> StressProblem | None:
    """The few ``--verbose`` lines that matter: how a vm worker died before its restart."""
    died = _CHILD_DIED.match(msg)
    if died is not None:
        return _signal_problem(died["num"], died["name"], text)
    oom = _OOM_RESTART.match(msg)
    if oom is not None:
        return StressProblem("oom-killed", oom["name"], text, "SIGKILL")
    return None


def _fail_line(msg: str, text: str) -> StressProblem:
    check = _METRICS_CHECK.match(msg)
    if check is not None:
        return StressProblem("other", check["name"] or "", text)
    if _MEMORY_ERRORS.search(msg):
        return StressProblem("verify", "vm", text)
    named = _NAMED.match(msg)
    rest = named["rest"] if named else msg
    name = named["name"] if named else ""
    if _VERIFY.search(rest) and "errno=" not in rest:
        return StressProblem("verify", name, text)
    return StressProblem("stressor-failed", name, text)


def _signal_problem(number: str | None, name: str, text: str, rc: int | None = None) -> StressProblem | None:
    """A death by signal: SIGKILL is the OOM killer's (or our stop's); SIGALRM is the timeout."""
    signame = _signal_name(int(number)) if number else "a signal"
    if signame == "SIGALRM":
        return None
    kind: ProblemKind = "oom-killed" if signame == "SIGKILL" else "stressor-failed"
    return StressProblem(kind, name, text, signame, rc)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _name_of(msg: str) -> str:
    named = _NAMED.match(msg)
    return named["name"] if named else ""


def _title_name(stressor: str) -> str:
    """The stressor as a title may show it: plain names only, so titles stay a small set."""
    if re.fullmatch(r"[a-z][a-z0-9-]*", stressor) and len(stressor) <= MAX_TITLE_STRESSOR:
        return stressor
    return ""
