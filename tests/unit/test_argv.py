"""The QEMU command line is a pure function of the VM's config."""

from pathlib import Path

from soak.vm.argv import QemuConfig, build_argv, kernel_command_line, shell_command


def config(**overrides: object) -> QemuConfig:
    values: dict[str, object] = dict(
        name="mixed-2", vcpus=4, memory_mib=384, kernel=Path("/img/vmlinuz"), initrd=Path("/img/initrd"),
        qmp_socket=Path("/tmp/s/mixed-2.qmp"), agent_socket=Path("/tmp/s/mixed-2.agent"),
        kernel_args=("soak_hb=1",), tsc_khz=2596000,
    )
    values.update(overrides)
    return QemuConfig(**values)  # type: ignore[arg-type]


def option(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_shape_and_channels() -> None:
    argv = build_argv(config())
    assert argv[0] == "qemu-system-x86_64"
    assert option(argv, "-smp") == ["4"]
    assert option(argv, "-m") == ["384"]
    assert option(argv, "-accel") == ["tcg,tb-size=64"]
    assert option(argv, "-serial") == ["stdio"]
    assert option(argv, "-qmp") == ["unix:/tmp/s/mixed-2.qmp,server=on,wait=off"]
    assert "socket,id=agent,path=/tmp/s/mixed-2.agent,server=on,wait=off" in option(argv, "-chardev")
    assert "isa-serial,chardev=agent" in option(argv, "-device")
    assert "pvpanic" in option(argv, "-device")
    assert option(argv, "-action") == ["panic=pause"]
    assert "-no-reboot" not in argv  # a host system_reset must reboot, not end, the guest
    assert "-daemonize" not in argv  # PR_SET_PDEATHSIG would not reach the daemon


def test_kernel_command_line() -> None:
    line = kernel_command_line(config())
    assert line.startswith("console=ttyS0,115200 panic=-1 ")
    assert "tsc_early_khz=2596000" in line
    assert line.endswith("soak_hb=1")
    assert option(build_argv(config()), "-append") == [line]


def test_kvm_hotplug_and_incoming() -> None:
    argv = build_argv(config(accel="kvm", max_vcpus=8, incoming="exec:cat /tmp/x"))
    assert option(argv, "-accel") == ["kvm"]
    assert option(argv, "-smp") == ["4,maxcpus=8"]
    assert option(argv, "-incoming") == ["exec:cat /tmp/x"]


def test_pure_and_quotable() -> None:
    assert build_argv(config()) == build_argv(config())
    assert "'console=ttyS0,115200 panic=-1" in shell_command(build_argv(config()))
