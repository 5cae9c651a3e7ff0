"""Boot-time figures per firmware in the summary: `VmReady.boot_s` folded per VM, grouped by arch/firmware."""

from __future__ import annotations

import io
import json

from rich.console import Console

from soak.events import RunFinished, VmInfo, VmReady, VmStarting
from soak.render import render_summary
from soak.summary import summarize
from tests.metrics.scenario import run_started


def test_boot_times_per_arch_and_firmware() -> None:
    vms = [VmInfo(name="bios-0", group="bios", vcpus=1, memory_mib=256, machine="pc", image="img"),
           VmInfo(name="efi-0", group="efi", vcpus=1, memory_mib=256, machine="pc", image="img", firmware="uefi"),
           VmInfo(name="efi-1", group="efi", vcpus=1, memory_mib=256, machine="pc", image="img", firmware="uefi"),
           VmInfo(name="arm-0", group="arm", vcpus=1, memory_mib=256, machine="virt", image="img", arch="aarch64",
                  firmware="none"),
           VmInfo(name="never-0", group="never", vcpus=1, memory_mib=256, machine="pc", image="img")]
    events = [run_started(1000.0, vms)]
    for vm, boots in (("bios-0", [2.0, 3.0]), ("efi-0", [7.0]), ("efi-1", [8.0, 6.0]), ("arm-0", [2.5])):
        for boot, seconds in enumerate(boots, 1):
            events += [VmStarting(t=1000.0 + boot, vm=vm, boot=boot, pid=1, argv=[]),
                       VmReady(t=1000.0 + boot + seconds, vm=vm, boot=boot, boot_s=seconds, kernel="6.1")]
    events.append(RunFinished(t=2000.0, reason="deadline", verdict="clean", failures=0, infra_problems=0))

    summary = summarize(events)
    times = summary.to_json()["boot_time"]
    assert times == {"aarch64/none": {"boots": 1, "mean_s": 2.5, "max_s": 2.5},
                     "x86_64/bios": {"boots": 2, "mean_s": 2.5, "max_s": 3.0},
                     "x86_64/uefi": {"boots": 3, "mean_s": 7.0, "max_s": 8.0}}
    per_vm = {v["name"]: v["boot_s"] for v in json.loads(json.dumps(summary.to_json()))["vms"]}
    assert per_vm == {"bios-0": 2.5, "efi-0": 7.0, "efi-1": 7.0, "arm-0": 2.5, "never-0": 0.0}

    text = io.StringIO()
    render_summary(summary, Console(file=text, width=200, color_system=None))
    assert ("Boot to ready: aarch64/none 2.5 s (max 2.5 s, 1 boots) · x86_64/bios 2.5 s (max 3.0 s, 2 boots) · "
            "x86_64/uefi 7.0 s (max 8.0 s, 3 boots)") in text.getvalue()
