"""soak:debian, a real Debian with systemd, booted under TCG and driven through QEMU's guest agent.

The image is built from Debian's packages by `soak.image.osdisk` (or found in the cache;
`scripts/bootstrap` builds it on a fresh machine). One run, two guests:

- ``deb-0`` (SeaBIOS): heartbeats with the guest's figures, stress-ng started by ``guest-exec``
  with its metrics, host faults it must survive (pause, NMI, a paused migration to a new QEMU
  sharing its overlay, where the agent conversation and the running stress-ng move along, and a
  reset: the new boot id read through the agent is the guest coming back), and at the end a
  clean ``guest-shutdown`` (systemd stops, the kernel powers off, QEMU exits 0, before any QMP
  quit).
- ``crash-0`` (OVMF): a guest fault through the agent, ``sysrq-crash``, found as the kernel
  panic it is.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from soak import events as ev
from soak.image.osdisk import ensure_os_disk
from soak.kinds import Kind
from tests.integration.harness import live_run

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(900)]

PROFILE = """
    [run]
    name = "qga"
    duration = "15m"
    accel = "tcg"
    metrics_listen = ""
    max_parallel_boots = 2

    [watch]
    boot_timeout = "240s"
    heartbeat_interval = "1s"
    hang_timeout = "30s"
    console_grace = "5s"
    qmp_timeout = "5s"
    shutdown_timeout = "60s"

    [restart]
    policy = "never"

    [[group]]
    name = "deb"
    vcpus = 2
    memory = "512M"
    image = { disk = "soak:debian" }
    fault = [{ type = "pause", at = ["15s"], duration = "5s" }, { type = "nmi", at = ["25s"] },
             { type = "migrate", mode = "paused", at = ["30s"] }, { type = "reset", at = ["40s"] }]
    [group.load]
    stressors = ["cpu", "vm"]
    pattern = "bursts"
    period = "10s"
    idle = "3s"
    memory_share = 0.3

    [[group]]
    name = "crash"
    vcpus = 1
    memory = "384M"
    firmware = "uefi"
    image = { disk = "soak:debian" }
    expect = ["kernel-panic"]
    fault = [{ type = "sysrq-crash", at = ["10s"] }]
"""


@pytest.fixture(scope="module")
def debian_built() -> float:
    """Build soak:debian (or find it cached); a failure fails the test, it never skips."""
    started = time.monotonic()
    image = ensure_os_disk("debian", progress=print)
    print(f"soak:debian {image.label}: {time.monotonic() - started:.1f} s")
    return time.monotonic() - started


async def test_a_debian_guest_through_qemus_guest_agent(tmp_path: Path, debian_built: float) -> None:
    profile = tmp_path / "qga.toml"
    profile.write_text(textwrap.dedent(PROFILE))
    run_dir = tmp_path / "run"
    async with live_run(profile, run_dir) as run:
        ready = await run.probe.wait(lambda e: isinstance(e, ev.VmReady), count=2, timeout=480)
        for r in ready:
            assert isinstance(r, ev.VmReady)
            print(f"{r.vm}: boot to the guest agent's hello {r.boot_s:.1f} s")
        panic, = await run.probe.wait(lambda e: isinstance(e, ev.Failure) and e.vm == "crash-0", timeout=180)
        reset, = await run.probe.wait(lambda e: isinstance(e, ev.FaultInjected) and e.vm == "deb-0"
                                      and e.fault == "reset", timeout=240)
        # the reset guest's agent answers again with a new boot id: its heartbeats count from 1
        back = await run.probe.wait(lambda e: isinstance(e, ev.Heartbeat) and e.vm == "deb-0" and e.seq == 3
                                    and e.t > reset.t, timeout=300)
        print(f"deb-0: back {back[0].t - reset.t:.1f} s after the reset")
        await run.probe.wait(lambda e: isinstance(e, ev.WorkloadMetrics) and e.vm == "deb-0" and e.t > back[0].t,
                             timeout=120)
        stop_asked = time.monotonic()
        run.stop()  # the stop ladder starts with the guest agent's guest-shutdown
        await run.task
        print(f"deb-0: stopped {time.monotonic() - stop_asked:.1f} s after the stop")

    assert isinstance(panic, ev.Failure)
    assert (panic.kind, panic.expected) == (Kind.KERNEL_PANIC, True), panic
    assert "sysrq triggered crash" in panic.title

    events = run.probe.events
    deb = [e for e in events if isinstance(e, ev.VmEvent) and e.vm == "deb-0"]
    hello = next(e for e in deb if isinstance(e, ev.VmReady))
    assert isinstance(hello, ev.VmReady) and hello.kernel.endswith("-cloud-amd64")
    beats = [e for e in deb if isinstance(e, ev.Heartbeat)]
    assert len(beats) >= 20 and all(b.uptime_s > 0 and b.mem_available_kib > 0 for b in beats), beats[-1]
    assert {e.stressor for e in deb if isinstance(e, ev.WorkloadMetrics)} >= {"cpu", "vm"}
    assert {e.fault for e in deb if isinstance(e, ev.FaultInjected)} >= {"pause", "nmi", "migrate", "reset"}
    migrated = [e for e in deb if isinstance(e, ev.Migrated)]
    assert len(migrated) == 1 and migrated[0].ok, migrated
    hello_t = [e.t for e in deb if isinstance(e, ev.VmReady)]
    assert len(hello_t) == 1, "a migration and a reset are not new boots"
    assert not [e for e in deb if isinstance(e, ev.Failure)], "deb-0 must survive its faults"

    stopped = next(e for e in deb if isinstance(e, ev.VmStopped))
    assert isinstance(stopped, ev.VmStopped) and (stopped.exit_code, stopped.signal) == (0, None), stopped
    console = (run_dir / "vms" / "deb-0" / "console.log").read_text(errors="replace")
    assert "systemd-shutdown[1]: Powering off." in console and "reboot: Power down" in console, console[-2000:]

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["totals"]["unexpected_failures"] == 0, summary["failures"]
    vms = {vm["name"]: vm for vm in summary["vms"]}
    assert (vms["crash-0"]["arch"], vms["crash-0"]["firmware"]) == ("x86_64", "uefi")
    overlay = run_dir / "vms" / "deb-0" / "disk.qcow2"
    assert overlay.is_file(), "the guest wrote to its own overlay"
