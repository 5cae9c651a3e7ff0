"""``image = { disk = ... }``: what a profile may ask, the command line it gives, the overlay, and
``soak profile check`` on files qemu-img can and cannot read (real qemu-img, no guest)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from soak.errors import LaunchError, ProfileError
from soak.machine import BootFiles, BootImage, Host, machine_config
from soak.machine.diskfiles import create_overlay
from soak.profile import expand_fleet, validate_profile
from soak.vm.argv import QGA_PORT, SNAPSHOT_NODE, build_argv

REPO = Path(__file__).resolve().parents[2]


def _profile(groups: str) -> dict[str, object]:
    import tomllib

    return tomllib.loads(textwrap.dedent(groups))


def option(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


@pytest.mark.parametrize(("group", "message"), [
    ('image = { disk = "soak:fedora" }', "no disk image 'soak:fedora'; soak builds soak:debian"),
    ('image = { disk = "soak:debian", kernel = "/k", initrd = "/i" }', "soak:debian boots its own kernel"),
    ('image = { disk = "/x.img", append = "quiet" }', "append needs kernel and initrd"),
    ('image = { agent = "qga" }', "agent applies to a disk image: set disk too"),
    ('image = { disk = "/x.img", agent = "soak" }', "image.agent: Input should be 'qga' or 'none'"),
    ('image = { disk = "/x.img", format = "QCOW2!" }', "image.format: String should match pattern"),
    ('arch = "aarch64"\nimage = { disk = "soak:debian" }', "soak:debian is built for x86_64 guests, not aarch64"),
    ('arch = "aarch64"\nimage = { disk = "/x.img", agent = "qga" }',
     "a disk without kernel and initrd boots through its bootloader, which firmware 'none' cannot load"),
    ('image = { disk = "soak:debian" }\nfault = [{ type = "panic", at = ["30s"] }]',
     "fault 'panic' needs soak's agent and its fault module; a disk image runs QEMU's guest agent, "
     "which can provoke oom, sysrq-crash and corrupt"),
    ('image = { disk = "/x.img" }\nfault = [{ type = "oom", at = ["30s"] }]',
     "guest fault 'oom' needs an agent in the guest, and the disk image has none"),
    ('image = { disk = "/x.img" }\n[group.load]\nstressors = ["cpu"]', "load needs an agent in the guest"),
])
def test_combinations_that_cannot_work_are_one_line_errors(group: str, message: str) -> None:
    with pytest.raises(ProfileError) as err:
        validate_profile(_profile(f'[[group]]\nname = "g"\n{group}\n'), "p.toml")
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert str(err.value).startswith("p.toml: group[0]")


def test_what_a_disk_image_may_do() -> None:
    profile = validate_profile(_profile("""
        [[group]]
        name = "deb"
        image = { disk = "soak:debian", append = "quiet" }
        fault = [{ type = "sysrq-crash", at = ["60s"] }, { type = "oom", at = ["90s"] },
                 { type = "reset", at = ["30s"] }, { type = "snapshot", at = ["40s"] }]
        [group.load]
        stressors = ["cpu", "vm"]
        [[group]]
        name = "own"
        firmware = "uefi"
        image = { disk = "/srv/fedora.qcow2", agent = "qga", format = "qcow2" }
        [[group]]
        name = "mute"
        image = { disk = "/srv/win.vhdx" }
        fault = [{ type = "pause", at = ["30s"] }]
    """), "p.toml")
    images = {vm.group: vm.image for vm in expand_fleet(profile)}
    assert [images[g].disk_agent for g in ("deb", "own", "mute")] == ["qga", "qga", "none"]
    assert not images["deb"].is_default and images["deb"].soak_disk and not images["own"].soak_disk


def _disk_config(image: BootImage, *, snapshot: bool = False, incoming: bool = False) -> list[str]:
    faults = '\nfault = [{ type = "snapshot", at = ["30s"] }]' if snapshot else ""
    profile = validate_profile(_profile(f'[[group]]\nname = "d"\nimage = {{ disk = "soak:debian" }}{faults}\n'),
                               "p.toml")
    (spec,) = expand_fleet(profile)
    files = BootFiles(qmp_socket=Path("/s/d-0.qmp"), agent_socket=Path("/s/d-0.agent"),
                      boot_disk=Path("/run/vms/d-0/disk.qcow2"),
                      migration_socket=Path("/s/d-0.mig") if incoming else None)
    return build_argv(machine_config(spec, image, Host(qemu="qemu-system-x86_64", accel="tcg", tsc_khz=None),
                                     files, boot=1, heartbeat_interval=1.0))


def test_a_disk_boots_from_the_vms_overlay_and_talks_to_qemus_guest_agent() -> None:
    image = BootImage(Path("/c/vmlinuz"), Path("/c/initrd.img"), ("root=/dev/vda", "rw"), "soak:debian@x",
                      agent=True, disk=Path("/c/disk.qcow2"), agent_kind="qga")
    argv = _disk_config(image)
    assert option(argv, "-blockdev") == [f"driver=qcow2,node-name={SNAPSHOT_NODE},file.driver=file,"
                                         "file.filename=/run/vms/d-0/disk.qcow2"]
    devices = option(argv, "-device")
    assert f"virtio-blk-pci,drive={SNAPSHOT_NODE}" in devices  # -kernel's option ROM has boot index 0
    assert "virtio-serial-pci,id=qgaserial" in devices
    assert f"virtserialport,bus=qgaserial.0,chardev=agent,name={QGA_PORT}" in devices
    assert "virtio-rng-pci,rng=soak-osrng" in devices and "isa-serial,chardev=agent" not in devices
    append = option(argv, "-append")[0]
    assert append.endswith("root=/dev/vda rw") and "soak_hb" not in append, "no soak agent to configure"
    assert "/c/disk.qcow2" not in " ".join(argv), "QEMU sees the image only as the overlay's backing file"


def test_a_users_disk_boots_its_bootloader_and_a_snapshot_saves_the_disk_with_the_memory() -> None:
    image = BootImage(None, None, (), "disk:own.qcow2", agent=False, disk=Path("/srv/own.qcow2"), agent_kind="none")
    argv = _disk_config(image, snapshot=True)
    assert "-kernel" not in argv and "-append" not in argv and "-initrd" not in argv
    assert f"virtio-blk-pci,drive={SNAPSHOT_NODE},bootindex=0" in option(argv, "-device")
    assert len(option(argv, "-blockdev")) == 1, "the overlay is the snapshot node: no second qcow2"
    assert not [d for d in option(argv, "-device") if "virtserialport" in d or "isa-serial" in d]


def _image(path: Path, fmt: str, size: str = "64M") -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), size], check=True)
    return path


async def test_the_overlay_takes_every_write_and_the_image_stays_untouched(tmp_path: Path) -> None:
    base = _image(tmp_path / "base.raw", "raw")
    before = hashlib.sha256(base.read_bytes()).hexdigest()
    overlay = tmp_path / "vm" / "disk.qcow2"
    overlay.parent.mkdir()
    for _ in range(2):  # made afresh at every boot
        await create_overlay(overlay, base, "raw")
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", str(overlay)], check=True,
                       capture_output=True)
    assert hashlib.sha256(base.read_bytes()).hexdigest() == before
    info = subprocess.run(["qemu-img", "info", "--output=json", str(overlay)], capture_output=True, text=True,
                          check=True).stdout
    assert str(base.resolve()) in info and '"backing-filename-format": "raw"' in info


async def test_an_overlay_of_a_missing_image_is_a_launch_error(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match=r"cannot make the overlay .* of .*gone.qcow2"):
        await create_overlay(tmp_path / "disk.qcow2", tmp_path / "gone.qcow2", "qcow2")


def _check(profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "soak", "profile", "check", str(profile)], capture_output=True,
                          text=True, timeout=60, cwd=REPO, check=False)


@pytest.mark.parametrize(("make", "fmt", "problem"), [
    (None, None, "no such file"),
    ("garbage", "qcow2", "qemu-img cannot read it as qcow2: "),
    ("raw", "qcow2", "qemu-img cannot read it as qcow2: "),
    ("dir", None, "not a regular file"),
])
def test_profile_check_refuses_a_disk_qemu_img_cannot_read(tmp_path: Path, make: str | None, fmt: str | None,
                                                           problem: str) -> None:
    disk = tmp_path / "os.img"
    if make == "garbage":
        disk.write_bytes(b"not an image" * 100)
    elif make == "raw":
        _image(disk, "raw", "1M")
    elif make == "dir":
        disk.mkdir()
    fmt_line = f', format = "{fmt}"' if fmt else ""
    profile = tmp_path / "p.toml"
    profile.write_text(f'[[group]]\nname = "own"\nimage = {{ disk = "{disk}"{fmt_line} }}\n')
    done = _check(profile)
    assert done.returncode == 2, done
    line = done.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    assert f"{profile}: group[0].image.disk: disk image {disk}: {problem}" in line, line


def test_profile_check_accepts_a_readable_disk_of_any_format(tmp_path: Path) -> None:
    disk = _image(tmp_path / "os.vmdk", "vmdk")
    profile = tmp_path / "p.toml"
    profile.write_text(f'[[group]]\nname = "own"\nfirmware = "uefi"\nimage = {{ disk = "{disk}" }}\n')
    done = _check(profile)
    assert done.returncode == 0, done.stderr
    assert "1 VMs: own-0" in done.stdout
