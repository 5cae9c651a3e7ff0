"""The machine interface (`base`), its real QEMU (`qemu`) and a scripted fake (`fake`)."""

from soak.machine.base import Machine, MachineLauncher, MigrationStats, Postmortem, ProcessFigures
from soak.machine.config import BootFiles, BootImage, Host, host_tsc_khz, machine_config
from soak.vm.console import ConsoleStream

__all__ = ["BootFiles", "BootImage", "ConsoleStream", "Host", "Machine", "MachineLauncher", "MigrationStats", "Postmortem", "ProcessFigures",
           "host_tsc_khz", "machine_config"]
