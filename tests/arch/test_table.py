"""The per-architecture table drives the argv, the profile's validation and the fault catalogue's reach."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from soak.arch import AAVMF, ARCHES, OVMF, arch
from soak.errors import ProfileError
from soak.faults.catalog import FAULT_TYPES
from soak.firmware import sparse_copy, vars_store
from soak.image.faults import FAULTS, console_pattern
from soak.profile import expand_fleet, validate_profile
from soak.vm.argv import QemuConfig, build_argv, kernel_command_line


def config(**overrides: object) -> QemuConfig:
    values: dict[str, object] = dict(
        name="g-0", vcpus=2, memory_mib=256, kernel=Path("/img/vmlinuz"), initrd=Path("/img/initrd"),
        qmp_socket=Path("/s/g-0.qmp"), agent_socket=Path("/s/g-0.agent"), kernel_args=("soak_hb=1",),
        tsc_khz=2596000,
    )
    values.update(overrides)
    return QemuConfig(**values)  # type: ignore[arg-type]


def option(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_x86_64_bios_is_todays_argv() -> None:
    argv = build_argv(config())
    assert argv[0] == "qemu-system-x86_64"
    assert option(argv, "-machine") == ["pc,dump-guest-core=off"] and "-cpu" not in argv and "-drive" not in argv
    assert option(argv, "-device") == ["isa-serial,chardev=agent", "pvpanic"]
    line = kernel_command_line(config())
    assert line.startswith("console=ttyS0,115200 panic=-1 no_timer_check tsc=reliable clocksource=tsc ")
    assert "tsc_early_khz=2596000" in line


def test_aarch64_virt() -> None:
    argv = build_argv(config(arch="aarch64"))
    assert argv[0] == "qemu-system-aarch64"
    assert option(argv, "-machine") == ["virt,gic-version=3,dump-guest-core=off"] and option(argv, "-cpu") == ["cortex-a57"]
    assert option(argv, "-device") == ["virtio-serial-device", "virtserialport,chardev=agent,name=soak.agent"]
    assert option(argv, "-serial") == ["stdio"] and option(argv, "-action") == ["panic=pause"]
    line = kernel_command_line(config(arch="aarch64"))
    assert line == "console=ttyAMA0 panic=-1 soak_hb=1"  # no x86 clock arguments


def test_i386_and_an_explicit_binary() -> None:
    argv = build_argv(config(arch="i386", qemu="/opt/qemu/bin/qemu-system-i386", machine="q35"))
    assert argv[0] == "/opt/qemu/bin/qemu-system-i386" and option(argv, "-machine") == ["q35,dump-guest-core=off"]
    assert "isa-serial,chardev=agent" in option(argv, "-device")


@pytest.mark.parametrize(("name", "fw"), [("x86_64", OVMF), ("aarch64", AAVMF)])
def test_uefi_is_pflash_with_the_vms_own_store(name: str, fw: object) -> None:
    argv = build_argv(config(arch=name, firmware="uefi", firmware_vars=Path("/run/vms/g-0/efivars.fd")))
    assert option(argv, "-drive") == [
        f"if=pflash,format=raw,unit=0,readonly=on,file={ARCHES[name].firmware('uefi').code}",
        "if=pflash,format=raw,unit=1,file=/run/vms/g-0/efivars.fd"]
    assert ARCHES[name].firmware("uefi") is fw
    with pytest.raises(ValueError, match="own copy of its variable store"):
        build_argv(config(arch=name, firmware="uefi"))


def test_a_firmware_the_arch_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match=r"firmware 'bios' does not boot aarch64 guests here \(choose none or uefi\)"):
        build_argv(config(arch="aarch64", firmware="bios"))
    with pytest.raises(ValueError, match="unknown architecture 'sparc'"):
        arch("sparc")


def test_the_vars_store_is_a_sparse_copy_made_once(tmp_path: Path) -> None:
    template = tmp_path / "VARS.fd"
    template.write_bytes(b"\0" * (1 << 20) + b"NVRAM" + b"\0" * (1 << 20))
    copy = tmp_path / "vm" / "efivars.fd"
    copy.parent.mkdir()
    fw = type(OVMF)("uefi", "ovmf", tmp_path / "CODE.fd", template)
    assert vars_store(fw, copy) == copy
    assert copy.read_bytes() == template.read_bytes()
    assert copy.stat().st_blocks * 512 < 256 * 1024  # holes, not 2 MiB of zeros
    copy.write_bytes(b"written by the guest")
    vars_store(fw, copy)
    assert copy.read_bytes() == b"written by the guest"  # kept across boots
    sparse_copy(template, tmp_path / "again")
    assert vars_store(type(OVMF)("bios"), tmp_path / "none") is None


def _profile(group: str) -> dict[str, object]:
    import tomllib
    return tomllib.loads(textwrap.dedent(group))


def test_groups_take_arch_machine_and_firmware_defaults() -> None:
    profile = validate_profile(_profile("""
        [[group]]
        name = "arm"
        arch = "aarch64"
        [[group]]
        name = "efi"
        firmware = "uefi"
        [[group]]
        name = "old"
        arch = "i386"
        machine = "q35"
    """), "p.toml")
    fleet = {vm.group: vm for vm in expand_fleet(profile)}
    assert (fleet["arm"].arch, fleet["arm"].machine, fleet["arm"].firmware) == ("aarch64", "virt", "none")
    assert (fleet["efi"].arch, fleet["efi"].machine, fleet["efi"].firmware) == ("x86_64", "pc", "uefi")
    assert (fleet["old"].arch, fleet["old"].machine, fleet["old"].firmware) == ("i386", "q35", "bios")


@pytest.mark.parametrize(("group", "message"), [
    ('arch = "sparc"', "group[0].arch: unknown architecture 'sparc'; known: x86_64, i386, aarch64"),
    ('arch = "aarch64"\nmachine = "pc"', "group[0]: machine 'pc' is not a machine of aarch64 (choose virt)"),
    ('arch = "i386"\nfirmware = "uefi"', "group[0]: firmware 'uefi' does not boot i386 guests here (choose bios)"),
    ('arch = "aarch64"\nfault = [{ type = "nmi", at = ["30s"] }]',
     "group[0]: group g: fault 'nmi' does not apply to aarch64: QEMU 7.2's virt machine cannot inject an NMI"),
    ('arch = "aarch64"\nfault = [{ type = "vcpu-hotplug", at = ["30s"] }]',
     "group g: fault 'vcpu-hotplug' does not apply to aarch64: QEMU 7.2's virt machine has no vCPU hotplug"),
    ('arch = "i386"\nfault = [{ type = "gpf", at = ["30s"] }]',
     "group g: fault 'gpf' does not apply to i386: a general protection fault on a non-canonical address"),
])
def test_combinations_that_cannot_work_are_one_line_errors(group: str, message: str) -> None:
    with pytest.raises(ProfileError) as err:
        validate_profile(_profile(f'[[group]]\nname = "g"\n{group}\n'), "p.toml")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("p.toml: group[0]")


def test_every_unsupported_fault_is_a_real_fault_and_every_console_override_a_guest_fault() -> None:
    for a in ARCHES.values():
        assert set(a.unsupported_faults) <= set(FAULT_TYPES), a.name
        assert set(a.fault_console) <= set(FAULTS), a.name
        assert not set(a.fault_console) & set(a.unsupported_faults), a.name
        assert a.machines and a.firmwares and a.console
    assert console_pattern("oops", "aarch64") != console_pattern("oops")


def test_profile_check_refuses_kernel_faults_without_a_cross_compiler(tmp_path: Path) -> None:
    """The real CLI on a host whose PATH has make but no aarch64 cross toolchain."""
    import os
    import shutil
    import subprocess
    import sys

    from soak.image.cache import ImageCache, Resolved

    ImageCache(tmp_path / "cache").write_resolved("aarch64", Resolved((), "gcc-12"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").symlink_to(shutil.which("make") or "/usr/bin/make")
    env = {**os.environ, "SOAK_CACHE_DIR": str(tmp_path / "cache"), "PATH": str(bin_dir)}
    profile = tmp_path / "p.toml"

    def check(fault: str) -> subprocess.CompletedProcess[str]:
        profile.write_text(f'[[group]]\nname = "arm"\narch = "aarch64"\nfault = [{{ type = "{fault}", at = ["1m"] }}]\n')
        return subprocess.run([sys.executable, "-m", "soak", "profile", "check", str(profile)], env=env,
                              capture_output=True, text=True, timeout=60)

    refused = check("softlockup")
    assert refused.returncode == 2, refused.stderr
    assert (f"{profile}: group[0].fault: group arm (aarch64): fault 'softlockup' needs soak's fault module, which "
            "cannot be built here: aarch64-linux-gnu-gcc-12, aarch64-linux-gnu-strip not found "
            "(apt-get install gcc-12-aarch64-linux-gnu make)") in " ".join(refused.stderr.split())
    assert check("oom").returncode == 0  # a user-space fault needs no module


OVMF_PREAMBLE = ("\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01H\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01H"
                 "EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path\r\n")


def test_ovmf_screen_codes_neither_hide_nor_fake_a_crash() -> None:
    """OVMF clears the screen on the serial console right before the kernel's first line."""
    from soak.classify import classify

    boot = OVMF_PREAMBLE + "[    0.000000] Linux version 6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org)\n"
    assert classify(boot.encode()) == []
    reports = classify((OVMF_PREAMBLE.replace("EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path\r\n",
                                            "[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n")
                      + "[    1.1] CPU: 0 PID: 1 Comm: swapper Not tainted 6.1.0 #1\n").encode())
    assert [r.title for r in reports] == ["kernel panic: VFS: Unable to mount root fs"]


def test_machine_config_carries_the_groups_arch_and_firmware() -> None:
    """The runner's pure QemuConfig: the architecture's binary beside run.qemu, TCG for a foreign guest."""
    from soak.machine import BootFiles, BootImage, Host, machine_config

    profile = validate_profile(_profile('[[group]]\nname = "arm"\narch = "aarch64"\nfirmware = "uefi"\n'), "p.toml")
    (spec,) = expand_fleet(profile)
    image = BootImage(Path("/img/vmlinuz"), Path("/img/initrd"), (), "default:6.1.0-57-cloud-arm64", agent=True)
    files = BootFiles(qmp_socket=Path("/s/arm-0.qmp"), agent_socket=Path("/s/arm-0.agent"),
                      firmware_vars=Path("/run/vms/arm-0/efivars.fd"))
    config = machine_config(spec, image, Host(qemu="/opt/qemu/bin/qemu-system-x86_64", accel="kvm", tsc_khz=None),
                            files, boot=1, heartbeat_interval=1.0)
    argv = build_argv(config)
    assert argv[0] == "/opt/qemu/bin/qemu-system-aarch64"
    assert option(argv, "-accel") == ["tcg,tb-size=64"]  # no KVM for an arm guest on an x86_64 host
    assert "if=pflash,format=raw,unit=1,file=/run/vms/arm-0/efivars.fd" in option(argv, "-drive")
    assert kernel_command_line(config).startswith("console=ttyAMA0 panic=-1 soak_hb=1 soak_vm=arm-0 soak_boot=1")
