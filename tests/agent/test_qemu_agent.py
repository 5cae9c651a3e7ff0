"""The agent in real TCG guests: hello, heartbeats, commands, jobs, sysrq, poweroff."""

from __future__ import annotations

import itertools
import time

import pytest

from soak.image import GuestImage
from soak.vm.agent import (
    AgentEvent,
    AgentLog,
    CommandResult,
    Disconnected,
    Heartbeat,
    Hello,
    JobExit,
    JobOutput,
)

from .qemu_guest import boot

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(180)]


def _beats(events: list[AgentEvent]) -> list[Heartbeat]:
    return [e for e in events if isinstance(e, Heartbeat)]


@pytest.mark.parametrize("vcpus", [1, 2])
async def test_agent_end_to_end(default_image: GuestImage, vcpus: int) -> None:
    args = ("soak_hb=1", "soak_hung=77", "soak_sysctl=vm.swappiness=7,kernel.panic_on_warn=0")
    async with boot(default_image, vcpus=vcpus, kernel_args=args) as g:
        started = time.monotonic()
        hello = await g.agent.wait_hello(90)
        print(f"HELLO {time.monotonic() - started:.2f} s after connect")
        assert isinstance(hello, Hello)
        assert (hello.proto, hello.kernel_release, hello.nproc) == (1, default_image.kernel_release, vcpus)
        assert hello.image == default_image.key and "stress-ng" in hello.features
        assert 150_000 < hello.mem_total_kib < 262_144
        await g.console_line(r"^soak-agent: ready proto=1 ")

        # Heartbeats keep coming while commands and jobs run.
        result = await g.agent.run("uname -r", timeout=20)
        assert (result.rc, result.output.strip()) == (0, default_image.kernel_release)
        assert (await g.agent.run("echo out; echo err >&2; exit 7", timeout=20)) == CommandResult(7, "out\nerr\n")
        sysctls = await g.agent.run("cat /proc/sys/kernel/hung_task_timeout_secs /proc/sys/vm/swappiness", 20)
        assert sysctls.output.split() == ["77", "7"]
        assert not any(isinstance(e, AgentLog) for e in g.events)  # nothing failed at boot

        job = await g.agent.start_job("stress-ng --cpu 1 --timeout 2s --metrics-brief")
        done = await g.event(lambda e: isinstance(e, JobExit) and e.job == job, 60, "stress-ng exit")
        assert isinstance(done, JobExit) and done.rc == 0
        out = [e.text for e in g.events if isinstance(e, JobOutput) and e.job == job]
        assert any("successful run completed" in line for line in out), out
        assert any(line.startswith("stress-ng: metrc:") for line in out), out

        sleeper = await g.agent.start_job("sleep 300")
        await g.agent.stop_job(sleeper)
        stopped = await g.event(lambda e: isinstance(e, JobExit) and e.job == sleeper, 30, "stopped job")
        assert isinstance(stopped, JobExit) and stopped.rc == 143

        await g.event(lambda e: len(_beats(g.events)) >= 3, 30, "three heartbeats")
        seqs = [b.seq for b in _beats(g.events)]
        assert seqs == list(range(1, len(seqs) + 1))
        times = [b.t for b in _beats(g.events)]
        assert all(0.5 < b - a < 3.0 for a, b in itertools.pairwise(times)), times
        assert not any(isinstance(e, Hello) for e in g.events[1:])  # no agent restart

        await g.agent.poweroff()
        assert await g.qemu.wait() == 0
        await g.event(lambda e: isinstance(e, Disconnected), 10, "disconnect")


async def test_sysrq_crash_reaches_the_console(default_image: GuestImage) -> None:
    async with boot(default_image, vcpus=2) as g:
        await g.agent.wait_hello(90)
        await g.agent.sysrq("c")
        await g.console_line(r"sysrq: Trigger a crash")
        line = await g.console_line(r"Kernel panic - not syncing: sysrq triggered crash")
        assert "sysrq" in line
