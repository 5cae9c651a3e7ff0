"""A real Slurm cluster on loopback for the tests: munged, slurmctld and one slurmd per node.

Everything lives in one temporary directory: its own munge key and socket (the
host's munged, if any, is not touched), its own ports, state and logs. Every
daemon, and every process of every job, carries the environment variable
`MARK` = that directory, so `stop` can find and kill whatever a test left
behind (slurmstepd and job processes outlive their slurmd by design) and never
touches anything else on the machine.

Pitfalls (see /work/shared/facts/scaleout.md): a job on a node that died is
requeued only once its credential expired (120 s by default; here
``cred_expire`` is lowered); a requeued task keeps its job id and gets
``SLURM_RESTART_COUNT`` one higher.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARK = "SOAK_TEST_SLURM"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")
CRED_EXPIRE_S = 10
"""How long a dead node's job waits before it is requeued (Slurm's default: 120 s)."""
SLURMD_TIMEOUT_S = 10
"""How long slurmctld waits for a silent slurmd before it declares its node down."""


def missing_tools() -> list[str]:
    paths = {"munged": "/usr/sbin/munged", "slurmctld": "/usr/sbin/slurmctld", "slurmd": "/usr/sbin/slurmd"}
    return [name for name in DAEMONS if not (shutil.which(name) or os.path.exists(paths.get(name, "")))]


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _free_port_block(size: int) -> int:
    """The first of ``size`` consecutive free TCP ports on loopback."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + size > 65000:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no block of free ports")


@dataclass
class SlurmCluster:
    """``nodes`` slurmd nodes ``hv1..hvN`` with 2 CPUs and one ``kvm`` gres each."""

    root: Path
    nodes: int = 4
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def node_names(self) -> list[str]:
        return [f"hv{i}" for i in range(1, self.nodes + 1)]

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a client command (or a job: sbatch exports it)."""
        return {**os.environ, "SLURM_CONF": str(self.conf), MARK: str(self.root), **extra}

    # -- starting and stopping -----------------------------------------------------------

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)  # munged refuses a socket directory others may write to
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._spawn("munged", [_tool("munged"), "--foreground", "--force", f"--socket={self.root / 'munge.sock'}",
                               f"--key-file={key}", f"--pid-file={self.root / 'munged.pid'}",
                               f"--log-file={self.root / 'munged.log'}", f"--seed-file={self.root / 'munged.seed'}"])
        self._wait("munged's socket", lambda: (self.root / "munge.sock").exists(), 15)
        self._write_config()
        self._spawn("slurmctld", [_tool("slurmctld"), "-D", "-f", str(self.conf)])
        self._wait("slurmctld", lambda: self.run("scontrol", "ping", check=False).returncode == 0, 30)
        for node in self.node_names:
            self._spawn(f"slurmd-{node}", [_tool("slurmd"), "-D", "-N", node, "-f", str(self.conf)], node=node)
        self._wait("every node idle", lambda: self.idle_nodes() == set(self.node_names), 60)

    def stop(self) -> None:
        """Cancel every job, stop every daemon, kill whatever still carries the mark."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            self.run("scancel", "--full", "--user", "root", check=False)
            with contextlib.suppress(AssertionError):
                self._wait("no job left", lambda: not self.run("squeue", "-h", check=False).stdout.strip(), 20)
        for name in sorted(self.processes, key=lambda n: n != "munged"):  # munged last
            if name != "munged":
                self._terminate(self.processes[name])
        self.kill_marked()
        if "munged" in self.processes:
            self._terminate(self.processes["munged"])

    def _spawn(self, name: str, argv: list[str], node: str = "") -> None:
        log = open(self.root / f"{name}.out", "wb")  # noqa: SIM115 - kept open by the daemon
        env = {**os.environ, MARK: str(self.root), "SOAK_TEST_SLURM_NODE": node}
        env.pop("SLURM_CONF", None)
        self.processes[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    # -- failures a test provokes --------------------------------------------------------

    def kill_node(self, node: str) -> list[int]:
        """The node dies at once: its slurmd, the slurmstepd of its jobs and every process of them.

        Everything is frozen (SIGSTOP) before anything is killed, so no slurmstepd lives
        long enough to report its job's end: slurmctld only learns that the node is gone.
        """
        steps = self._steps(self.root / f"slurmd-{node}.log")
        jobs = self._marked(lambda env: env.get("SLURMD_NODENAME") == node)
        victims = [self.processes[f"slurmd-{node}"].pid, *steps, *jobs]
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        self.processes[f"slurmd-{node}"].wait(10)
        return victims

    def kill_marked(self) -> list[int]:
        """SIGKILL every slurmstepd of this cluster and every process that carries its mark."""
        pids = self._steps(self.root) + self._marked(lambda _env: True)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    @staticmethod
    def _steps(under: Path) -> list[int]:
        """slurmstepd processes writing to a file at or under ``under`` (their slurmd's log).

        A slurmstepd has an empty environment and outlives its slurmd: its open log
        file is what ties it to one node of one test cluster.
        """
        return [pid for pid in _pids() if _cmdline(pid).startswith("slurmstepd:") and _writes_under(pid, under)]

    def _marked(self, which: Callable[[dict[str, str]], bool]) -> list[int]:
        own = {p.pid for p in self.processes.values()} | {os.getpid()}
        found = []
        for pid in _pids():
            env = _environ(pid)
            if env.get(MARK) == str(self.root) and pid not in own and which(env):
                found.append(pid)
        return found

    def marked_pids(self) -> list[int]:
        return self._marked(lambda _env: True)

    # -- commands ------------------------------------------------------------------------

    def run(self, *argv: str, check: bool = True, env: dict[str, str] | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([_tool(argv[0]), *argv[1:]], capture_output=True, text=True,
                                env=env or self.env(), timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)}: rc={result.returncode}\n{result.stderr}{self.logs()}")
        return result

    def idle_nodes(self) -> set[str]:
        out = self.run("sinfo", "-h", "-N", "-o", "%N %t", check=False).stdout
        return {line.split()[0] for line in out.splitlines() if line.split()[1:] == ["idle"]}

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (for an array task: ``ARRAYID_TASK``)."""
        out = self.run("scontrol", "-o", "show", "job", job_id).stdout
        return dict(re.findall(r"(\w+)=(\S*)", out.splitlines()[0]))

    def logs(self) -> str:
        parts = []
        for path in sorted(self.root.glob("*.log")) + sorted(self.root.glob("*.out")):
            text = path.read_text(errors="replace")[-1500:]
            parts.append(f"\n--- {path.name}\n{text}")
        return "".join(parts)

    def _wait(self, what: str, check: Callable[[], Any], timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None and not name.startswith("slurmd-"):
                    raise AssertionError(f"{name} exited with {process.returncode}{self.logs()}")
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                if result := check():
                    return result
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}{self.logs()}")

    def _write_config(self) -> None:
        ctld, nodes = _free_port_block(1), _free_port_block(self.nodes)
        root, host = self.root, socket.gethostname()
        last = nodes + self.nodes - 1
        self.conf.write_text(f"""\
ClusterName=soaktest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root / 'munge.sock'},cred_expire={CRED_EXPIRE_S}
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}/%n
SlurmctldPidFile={root / 'slurmctld.pid'}
SlurmdPidFile={root / 'slurmd'}-%n.pid
SlurmctldLogFile={root / 'slurmctld.log'}
SlurmdLogFile={root / 'slurmd'}-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
GresTypes=kvm
JobRequeue=1
ReturnToService=2
SlurmdTimeout={SLURMD_TIMEOUT_S}
MinJobAge=600
SchedulerParameters=sched_interval=5
KillWait=30
NodeName=hv[1-{self.nodes}] NodeHostname={host} NodeAddr=127.0.0.1 Port=[{nodes}-{last}] CPUs=2 RealMemory=4000 Gres=kvm:1 State=UNKNOWN
PartitionName=soak Nodes=hv[1-{self.nodes}] Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
""")
        (root / "gres.conf").write_text(f"NodeName=hv[1-{self.nodes}] Name=kvm Count=1\n")
        for folder in ("state", *(f"spool/{n}" for n in self.node_names)):
            (root / folder).mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def slurm_cluster(root: Path, nodes: int = 4) -> Iterator[SlurmCluster]:
    cluster = SlurmCluster(root, nodes)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _writes_under(pid: int, under: Path) -> bool:
    try:
        targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return any(t == str(under) or t.startswith(f"{under}/") for t in targets)


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}
