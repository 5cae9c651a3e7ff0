"""`soak.vm.qga.QgaAgent` against a host-side qemu-ga (`tests.qga.fakeqga`): the logic, fast.

The real agent in a real Debian guest is tests/qga/test_debian.py.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from soak.errors import AgentError, AgentRefused
from soak.vm import qga
from soak.vm.agent import AgentEvent, Heartbeat, Hello, JobExit, JobOutput
from soak.vm.qga import QgaAgent
from soak.vm.qgashell import fallback_load
from tests.qga.fakeqga import FakeQga

pytestmark = pytest.mark.timeout(60)


class Events:
    """Every event of an agent, collected in the background."""

    def __init__(self, agent: QgaAgent) -> None:
        self.seen: list[AgentEvent] = []
        self._task = asyncio.create_task(self._collect(agent))

    async def _collect(self, agent: QgaAgent) -> None:
        async for event in agent.events():
            self.seen.append(event)

    async def wait(self, predicate: Callable[[AgentEvent], bool], count: int = 1, timeout: float = 20) -> list[AgentEvent]:
        async with asyncio.timeout(timeout):
            while len(found := [e for e in self.seen if predicate(e)]) < count:
                await asyncio.sleep(0.02)
        return found


@pytest.fixture
async def agent(fake_qga: FakeQga, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[QgaAgent]:
    monkeypatch.setattr(qga, "JOB_POLL_S", 0.1)
    client = QgaAgent(fake_qga.socket_path, name="vm", heartbeat_s=0.1, call_timeout=1.0)
    await client.connect(timeout=5)
    try:
        yield client
    finally:
        await client.close()


async def test_hello_carries_the_guests_facts(fake_qga: FakeQga, agent: QgaAgent) -> None:
    events = Events(agent)
    hello, = await events.wait(lambda e: isinstance(e, Hello))
    assert isinstance(hello, Hello)
    assert (hello.kernel_release, hello.nproc, hello.boot_id) == ("6.1.0-fake-amd64", 2,
                                                                  "11111111-2222-3333-4444-555555555555")
    assert hello.mem_total_kib > 0 and hello.image == "qemu-ga 7.2.22" and hello.proto == qga.PROTO
    assert {"qga", "exec", "files"} <= hello.features
    assert ("stress-ng" in hello.features) == (shutil.which("stress-ng") is not None)


async def test_heartbeats_read_proc_through_handles_kept_open(fake_qga: FakeQga, agent: QgaAgent) -> None:
    events = Events(agent)
    beats = await events.wait(lambda e: isinstance(e, Heartbeat), count=5)
    assert [b.seq for b in beats if isinstance(b, Heartbeat)] == [1, 2, 3, 4, 5]
    last = beats[-1]
    assert isinstance(last, Heartbeat)
    assert last.uptime_s > 0 and last.mem_available_kib > 0 and last.mem_free_kib > 0
    # three files kept open plus the boot id once: never an open per beat, never a ping (it is logged)
    assert fake_qga.calls.count("guest-file-open") == 4, fake_qga.calls
    assert "guest-ping" not in fake_qga.calls
    assert fake_qga.calls.count("guest-get-time") >= 5


async def test_a_reboot_is_a_new_hello_with_the_new_boot_id(fake_qga: FakeQga, agent: QgaAgent) -> None:
    events = Events(agent)
    await events.wait(lambda e: isinstance(e, Heartbeat), count=2)
    fake_qga.boot_id.write_text("99999999-2222-3333-4444-555555555555\n")
    fake_qga.restart()  # the new agent knows none of soak's handles
    hellos = await events.wait(lambda e: isinstance(e, Hello), count=2)
    assert isinstance(hellos[1], Hello) and hellos[1].boot_id.startswith("99999999")
    new_boot = events.seen.index(hellos[1])
    beat = (await events.wait(lambda e: isinstance(e, Heartbeat) and events.seen.index(e) > new_boot))[0]
    assert isinstance(beat, Heartbeat) and beat.seq == 1, "a new boot counts its heartbeats afresh"


async def test_a_silent_guest_gives_no_heartbeat_then_resumes_after_a_resync(fake_qga: FakeQga,
                                                                              agent: QgaAgent) -> None:
    events = Events(agent)
    await events.wait(lambda e: isinstance(e, Heartbeat), count=2)
    fake_qga.mute = True  # a paused guest: commands pile up, nothing answers
    await asyncio.sleep(0.3)
    before = len([e for e in events.seen if isinstance(e, Heartbeat)])
    await asyncio.sleep(2.5)
    assert len([e for e in events.seen if isinstance(e, Heartbeat)]) <= before + 1
    fake_qga.mute = False  # the late answers to commands whose deadline passed are dropped
    beats = await events.wait(lambda e: isinstance(e, Heartbeat), count=before + 3)
    assert [b.seq for b in beats if isinstance(b, Heartbeat)] == list(range(1, len(beats) + 1))
    assert len([e for e in events.seen if isinstance(e, Hello)]) == 1, "the same boot: no new hello"
    assert agent.channel.dropped_replies >= 1


async def test_a_job_reports_its_output_and_exit(agent: QgaAgent) -> None:
    events = Events(agent)
    await events.wait(lambda e: isinstance(e, Hello))
    job = await agent.start_job("echo first; echo second >&2; exit 3")
    exit_, = await events.wait(lambda e: isinstance(e, JobExit) and e.job == job)
    assert isinstance(exit_, JobExit) and (exit_.rc, exit_.truncated) == (3, False)
    lines = [e.text for e in events.seen if isinstance(e, JobOutput) and e.job == job]
    assert lines == ["first", "second"]


async def test_stop_reaches_the_whole_job_and_its_exit_follows(agent: QgaAgent) -> None:
    events = Events(agent)
    await events.wait(lambda e: isinstance(e, Hello))
    job = await agent.start_job("sleep 60 & sleep 60; echo never")
    await asyncio.sleep(0.3)
    await agent.stop_job(job)
    exit_, = await events.wait(lambda e: isinstance(e, JobExit) and e.job == job, timeout=10)
    assert isinstance(exit_, JobExit) and exit_.rc == 128 + 15
    assert not [e for e in events.seen if isinstance(e, JobOutput) and e.text == "never"]
    stray = subprocess.run(["pgrep", "-f", "sleep 60 & sleep 60"], capture_output=True, text=True, check=False)
    assert not stray.stdout.strip(), "the job's process group is gone"


async def test_output_is_cut_in_the_guest(agent: QgaAgent) -> None:
    events = Events(agent)
    await events.wait(lambda e: isinstance(e, Hello))
    job = await agent.start_job("head -c 300000 /dev/zero | tr '\\0' x | fold -w 100")
    exit_, = await events.wait(lambda e: isinstance(e, JobExit) and e.job == job)
    assert isinstance(exit_, JobExit) and exit_.rc == 0 and exit_.truncated
    text = "\n".join(e.text for e in events.seen if isinstance(e, JobOutput) and e.job == job)
    assert "bytes of output dropped]" in text and len(text) < 70_000


async def test_run_returns_output_and_kills_at_its_timeout(agent: QgaAgent) -> None:
    result = await agent.run("echo hi; exit 4", timeout=5)
    assert (result.rc, result.output, result.timed_out) == (4, "hi\n", False)
    slow = await agent.run("sleep 10", timeout=1)
    assert (slow.rc, slow.timed_out) == (137, True)


async def test_faults_a_shell_can_provoke_and_the_ones_it_cannot(agent: QgaAgent) -> None:
    with pytest.raises(AgentError, match="needs soak's agent and fault module"):
        await agent.fault("panic")
    with pytest.raises(ValueError):
        await agent.sysrq("cc")


async def test_poweroff_is_quiet_on_success_and_an_error_on_failure(fake_qga: FakeQga, agent: QgaAgent) -> None:
    await agent.poweroff(timeout=5)
    assert fake_qga.shutdowns == 1
    fake_qga.shutdown_error = "child process has failed to shutdown"
    with pytest.raises(AgentRefused, match="failed to shutdown"):
        await agent.poweroff(timeout=5)


async def test_without_file_commands_the_boot_id_comes_from_exec(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="qga-") as short:
        fake = FakeQga(Path(short) / "q.sock", tmp_path,
                       disabled=("guest-file-open", "guest-file-read", "guest-file-seek", "guest-file-close"))
        fake.boot_id = Path("/proc/sys/kernel/random/boot_id")  # read by `cat` on this host
        await fake.start()
        client = QgaAgent(fake.socket_path, name="vm", heartbeat_s=0.1, call_timeout=1.0)
        await client.connect(timeout=5)
        try:
            events = Events(client)
            hello, = await events.wait(lambda e: isinstance(e, Hello))
            beat, = await events.wait(lambda e: isinstance(e, Heartbeat))
        finally:
            await client.close()
            await fake.stop()
    assert isinstance(hello, Hello) and hello.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert "files" not in hello.features
    assert isinstance(beat, Heartbeat) and beat.uptime_s == 0 and beat.mem_available_kib == 0
    assert "guest-file-open" not in fake.calls


async def test_without_exec_there_is_no_load(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="qga-") as short:
        fake = FakeQga(Path(short) / "q.sock", tmp_path, disabled=("guest-exec", "guest-exec-status"))
        await fake.start()
        client = QgaAgent(fake.socket_path, name="vm", heartbeat_s=0.1, call_timeout=1.0)
        await client.connect(timeout=5)
        try:
            hello, = await Events(client).wait(lambda e: isinstance(e, Hello))
            with pytest.raises(AgentError, match="does not allow guest-exec"):
                await client.start_job("true")
        finally:
            await client.close()
            await fake.stop()
    assert isinstance(hello, Hello) and "exec" not in hello.features and "stress-ng" not in hello.features


async def test_a_migrations_destination_takes_the_jobs_over_once_it_is_answered(
        fake_qga: FakeQga, agent: QgaAgent, tmp_path: Path) -> None:
    source_events = Events(agent)
    await source_events.wait(lambda e: isinstance(e, Heartbeat))
    job = await agent.start_job("sleep 0.5; echo done")
    with tempfile.TemporaryDirectory(prefix="qga-") as short:
        dest_path = Path(short) / "dest.sock"
        await fake_qga.start(dest_path)  # the same guest, reached through the destination's socket
        dest = QgaAgent(dest_path, name="vm", heartbeat_s=0.1, call_timeout=1.0, resume=agent)
        await dest.connect(timeout=5)
        try:
            dest_events = Events(dest)
            exit_, = await dest_events.wait(lambda e: isinstance(e, JobExit) and e.job == job)
            beats = await dest_events.wait(lambda e: isinstance(e, Heartbeat), count=2)
        finally:
            await dest.close()
    assert isinstance(exit_, JobExit) and exit_.rc == 0
    assert dest._resumed_from is None, "once it took over, the source agent is not kept (nor the one before it)"
    assert not [e for e in dest_events.seen if isinstance(e, Hello)], "the same guest: no new hello"
    first = beats[0]
    assert isinstance(first, Heartbeat) and first.seq > 1, "the heartbeat sequence goes on"
    assert not [e for e in source_events.seen if isinstance(e, JobExit)], "reported once, by the destination"


async def test_a_failed_migration_gives_the_jobs_back(fake_qga: FakeQga, agent: QgaAgent) -> None:
    events = Events(agent)
    await events.wait(lambda e: isinstance(e, Heartbeat))
    job = await agent.start_job("sleep 1; echo done")
    with tempfile.TemporaryDirectory(prefix="qga-") as short:
        silent = await asyncio.start_unix_server(lambda r, w: None, path=str(Path(short) / "dead.sock"))
        dest = QgaAgent(Path(short) / "dead.sock", name="vm", heartbeat_s=0.1, call_timeout=0.5, resume=agent)
        await dest.connect(timeout=5)
        await asyncio.sleep(0.5)
        await dest.close()  # the destination never ran the guest
        silent.close()
    exit_, = await events.wait(lambda e: isinstance(e, JobExit) and e.job == job)
    assert isinstance(exit_, JobExit) and exit_.rc == 0


def test_a_guest_without_stress_ng_runs_busy_loops_instead() -> None:
    planned = ("stress-ng --cpu 2 --vm 1 --vm-bytes 64M --vm-method flip --temp-path /tmp --timeout 1s "
               "--metrics-brief --oom-avoid --verbose --verify")
    fallback = fallback_load(planned)
    done = subprocess.run(["sh", "-c", fallback], capture_output=True, text=True, timeout=20, check=False)
    assert done.returncode == 0
    assert done.stdout.strip() == "soak: no stress-ng in this guest: ran 3 busy loops for 1 s"
