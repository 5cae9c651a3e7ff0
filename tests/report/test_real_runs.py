"""Two real short soaks of one profile, side by side: the report of one in Chromium, compare of both.

Run A: two tiny guests under stress-ng, a pause window, a console line with
``<script>`` written into the kernel log, then a kernel warning provoked
through soak's fault module (a failure with real evidence). Run B: the same
profile name and shapes, no faults. Both run at once in this event loop, so
the host's load weighs on both alike.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from soak import events as ev
from soak.report import write_report
from tests.integration.harness import LiveRun, live_run, write_profile
from tests.report.browser import assert_clean, chromium, drawn_plots, open_report, screenshot
from tests.report.journals import HOSTILE

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(600)]

GROUP = """
    [[group]]
    name = "{name}"
    count = 2
    vcpus = [1, 2]
    memory = "256M"

    [group.load]
    stressors = ["cpu"]
    pattern = "steady"
    period = "6s"
    idle = "1s"
"""
FAULTS = """
    [[group.fault]]
    type = "pause"
    at = ["5s"]
    duration = "3s"
    vms = [0]

    [[group.fault]]
    type = "warn"
    at = ["25s"]
    vms = [1]
"""
RATES_PER_VM = 4


def rates(run: LiveRun, vm: str) -> int:
    return len(run.probe.matching(lambda e: isinstance(e, ev.WorkloadMetrics) and e.vm == vm))


async def until_loaded(run: LiveRun, group: str) -> None:
    for vm in (f"{group}-0", f"{group}-1"):
        await run.probe.wait(lambda e, vm=vm: isinstance(e, ev.WorkloadMetrics) and e.vm == vm,  # type: ignore[misc]
                             count=RATES_PER_VM, timeout=300)


async def test_report_and_compare_of_two_real_runs(tmp_path: Path) -> None:
    profile_a = write_profile(tmp_path / "a.toml", GROUP.format(name="a") + FAULTS, duration="10m")
    profile_b = write_profile(tmp_path / "b.toml", GROUP.format(name="b"), duration="10m")
    run_a, run_b = tmp_path / "run-a", tmp_path / "run-b"
    async with live_run(profile_a, run_a) as a, live_run(profile_b, run_b) as b:
        await a.probe.wait(lambda e: isinstance(e, ev.VmReady) and e.vm == "a-1", timeout=300)
        agent = a.runner("a-1").machine.agent
        assert agent is not None
        await agent.run(f"echo '{HOSTILE}' > /dev/kmsg", timeout=30)
        await a.probe.wait(lambda e: isinstance(e, ev.Failure) and e.kind.value == "kernel-warning", timeout=300)
        await until_loaded(a, "a")
        await until_loaded(b, "b")
        a.stop()  # both at once: each run's exit checks that no QEMU of this process outlives it
        b.stop()
        async with asyncio.timeout(120):
            await asyncio.gather(asyncio.shield(a.task), asyncio.shield(b.task))

    report = write_report(run_a)
    with chromium() as browser:
        page = open_report(browser, report)
        assert_clean(page, report)
        plots = drawn_plots(page)
        assert set(plots) == {"timeline", "lateness", "throughput-0", "rss", "threads", "fds"}, plots
        assert all(drawn > 0 for drawn in plots.values()), plots
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        assert HOSTILE in page.evaluate("document.querySelector('#failures').innerText")  # the console tail
        assert page.evaluate("document.querySelectorAll('script').length") == 0
        assert page.evaluate("typeof window.__pwned") == "undefined"
        evidence = page.evaluate("Array.from(document.querySelectorAll('#failures a.file')).map(a => a.href)")
        assert any(href.endswith("/console-tail.log") for href in evidence)
        assert all(Path(href.removeprefix("file://")).exists() for href in evidence), evidence
        screenshot(page, tmp_path)

    result = compare(run_a, run_b, "--json", "--min-samples", "3")
    data = json.loads(result.stdout)
    assert result.returncode == data["exit_code"] == (1 if data["verdict"] == "regressed" else 0)
    keys = {(row["metric"], row["stressor"], row["vcpus"]) for row in data["rows"]}
    assert {("bogo-ops-per-s", "cpu", 1), ("bogo-ops-per-s", "cpu", 2), ("boot-s", None, 1)} <= keys
    for row in data["rows"]:
        assert row["verdict"] in ("faster", "slower", "no-difference", "too-few-samples")
        if row["ci"] is not None:
            low, high = row["ci"]  # lateness can be 0: a resample of B all zeros, of A too (no bound)
            assert 0 <= low <= row["ratio"] <= (math.inf if high is None else high), row
    assert [f["kind"] for f in data["only_a"]] == ["kernel-warning"] and data["only_b"] == []
    same = json.loads(compare(run_a, run_a, "--json", "--min-samples", "3").stdout)
    assert same["verdict"] in ("parity", "inconclusive") and same["exit_code"] == 0
    assert all(row["ratio"] == 1.0 for row in same["rows"] if row["ratio"] is not None)
    print(compare(run_a, run_b, "--min-samples", "3").stdout)


def compare(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "soak", "compare", *map(str, args)], capture_output=True,
                          text=True, timeout=120)
