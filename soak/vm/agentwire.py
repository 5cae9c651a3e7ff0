"""The wire of soak's guest agent channel: its protocol, typed messages, and their parser.

The agent is soak's ``/init`` (``soak/image/guest/init.sh``). It talks on the
guest's ttyS1, a QEMU ``isa-serial`` bound to a unix socket, so the kernel
console (ttyS0) stays whole and separate.

Protocol, version 1. UTF-8 text lines ending in ``\\n``; fields are separated
by one space; ``k=v`` fields may come in any order and unknown keys are ignored,
so a guest may add fields without a version bump.

Guest to host::

    HELLO <proto> release=R nproc=N memtotal=KIB boot=UUID image=KEY features=a,b hb=SECS
        at every agent start (boot, or agent respawn: then ``boot`` is unchanged)
        and in answer to ``hello``
    HB <seq> up=SECS load1=L memfree=KIB memavail=KIB
        every ``soak_hb`` seconds; seq starts at 1 with each HELLO
    OUT <id> <text>   a line of output of command or job <id> (text may be empty)
    EXIT <id> <rc> [truncated=1]
                      command or job <id> ended (rc 128+N: killed by signal N);
                      truncated=1: a run's output was longer than the 64 KiB sent
    ACK <id>          command <id> was accepted (start, stop, sysrq, poweroff, hello, fault)
    ERR <id> <text>   command <id> was refused; nothing else follows for it
    LOG <text>        something the agent wants on record (e.g. a module that failed to load)

Host to guest: ``<id> <verb> [args]`` with a positive integer id chosen by the host::

    <id> run <secs> <shell command>   run, kill at <secs>; OUT lines (first 64 KiB) then EXIT
    <id> start <shell command>        ACK, then OUT lines as they come, then EXIT: a job named <id>
    <id> stop <job>                   SIGTERM to the job's process group (SIGKILL 5 s later); ACK
    <id> sysrq <char>                 ACK, then write <char> to /proc/sysrq-trigger
    <id> poweroff                     ACK, then power the guest off
    <id> hello                        HELLO again, then ACK
    <id> fault <name> [secs]          ACK, then provoke a real failure (soak.image.faults) in a
                                      child process; OUT/EXIT follow if the trigger returns

Writes from the guest while no host is connected are dropped by QEMU, so a
client that connects late asks for ``hello``. Every command runs in its own
guest process: the heartbeat never waits for one.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTO = 1
MAX_LINE = 64 * 1024
"""Longer guest lines are dropped (reported as `Garbled`)."""


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """Something the guest said; ``t`` is the host's ``soak.clock.now()`` at receipt."""

    t: float


@dataclass(frozen=True, slots=True)
class Hello(AgentEvent):
    proto: int
    kernel_release: str
    nproc: int
    mem_total_kib: int
    boot_id: str
    """New on every guest boot; the same value in a later HELLO means only the agent restarted."""
    image: str
    features: frozenset[str]
    heartbeat_s: float


@dataclass(frozen=True, slots=True)
class Heartbeat(AgentEvent):
    seq: int
    uptime_s: float
    load1: float
    mem_free_kib: int
    mem_available_kib: int


@dataclass(frozen=True, slots=True)
class JobOutput(AgentEvent):
    job: int
    text: str


@dataclass(frozen=True, slots=True)
class JobExit(AgentEvent):
    job: int
    rc: int
    truncated: bool = False
    """The guest sent only the first 64 KiB of a `run`'s output."""


@dataclass(frozen=True, slots=True)
class AgentLog(AgentEvent):
    text: str


@dataclass(frozen=True, slots=True)
class Garbled(AgentEvent):
    """A line that is not protocol: guest noise, or a line cut by a reboot."""

    line: str


@dataclass(frozen=True, slots=True)
class EventsDropped(AgentEvent):
    """``count`` events were dropped because the consumer fell behind."""

    count: int


@dataclass(frozen=True, slots=True)
class Disconnected(AgentEvent):
    """The channel closed (QEMU exited, or `close`); always the last event."""

    reason: str


@dataclass(frozen=True, slots=True)
class Ack:
    id: int
    t: float


@dataclass(frozen=True, slots=True)
class Err:
    id: int
    message: str
    t: float


Message = AgentEvent | Ack | Err


@dataclass(frozen=True, slots=True)
class CommandResult:
    rc: int
    output: str
    truncated: bool = False
    """The guest or the host cut the output at its bound."""
    timed_out: bool = False
    """The guest killed the command at its timeout (rc is then 137)."""


def _fields(tokens: list[str]) -> dict[str, str]:
    return dict(tok.split("=", 1) for tok in tokens if "=" in tok)


def parse_line(line: str, t: float) -> Message:
    """One guest line as a typed message; anything unexpected becomes `Garbled`, never an error."""
    verb, _, rest = line.partition(" ")
    try:
        if verb == "HB":
            seq, *kv = rest.split(" ")
            f = _fields(kv)
            return Heartbeat(t, int(seq), float(f["up"]), float(f["load1"]),
                             int(f["memfree"]), int(f["memavail"]))
        if verb == "OUT":
            ident, _, text = rest.partition(" ")
            return JobOutput(t, int(ident), text)
        if verb == "EXIT":
            ident, rc, *kv = rest.split(" ")
            return JobExit(t, int(ident), int(rc), _fields(kv).get("truncated") == "1")
        if verb == "ACK":
            return Ack(int(rest.split(" ")[0]), t)
        if verb == "ERR":
            ident, _, text = rest.partition(" ")
            return Err(int(ident), text, t)
        if verb == "LOG":
            return AgentLog(t, rest)
        if verb == "HELLO":
            proto, *kv = rest.split(" ")
            f = _fields(kv)
            return Hello(
                t, int(proto), f.get("release", ""), int(f.get("nproc", 0)),
                int(f.get("memtotal", 0)), f.get("boot", ""), f.get("image", ""),
                frozenset(filter(None, f.get("features", "").split(","))), float(f.get("hb", 0)),
            )
    except (ValueError, KeyError):
        pass
    return Garbled(t, line)


def format_command(ident: int, verb: str, args: str = "") -> bytes:
    """A host command line. :raise ValueError: ``args`` spans lines (it would be two commands)."""
    if "\n" in args or "\r" in args:
        raise ValueError(f"agent command arguments must be one line: {args!r}")
    return f"{ident} {verb} {args}".rstrip(" ").encode() + b"\n"

