"""Devices from profile to argv, pure: disks, networks, RNG, balloon; what profiles may not ask; pre-flight."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from soak.errors import CapacityError, ProfileError
from soak.machine.config import BootFiles, BootImage, Host, machine_config
from soak.preflight import HostFacts, check_devices, check_disk, check_memory, estimate_disk
from soak.profile import Profile, expand_fleet, validate_profile
from soak.vm.argv import build_argv

IMAGE = BootImage(kernel=Path("/img/vmlinuz"), initrd=Path("/img/initrd"), kernel_args=(), label="default",
                  agent=True)
HOST = Host(qemu="qemu-system-x86_64", accel="tcg", tsc_khz=None)


def profile(*groups: dict[str, Any]) -> Profile:
    return validate_profile({"run": {}, "group": list(groups)}, "p.toml")


def argv_of(p: Profile, index: int = 0, **files: Any) -> list[str]:
    spec = expand_fleet(p)[index]
    disks = tuple(Path(f"/run/vms/{spec.name}/disk{i}.{d.format}") for i, d in enumerate(spec.disks))
    boot = BootFiles(qmp_socket=Path("/s/q"), agent_socket=Path("/s/a"), disks=disks, **files)
    return build_argv(machine_config(spec, IMAGE, HOST, boot, boot=1, heartbeat_interval=1.0))


def option(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_a_disk_is_a_node_graph_behind_virtio_blk_with_its_cache_and_error_policy() -> None:
    argv = argv_of(profile({"name": "g", "disks": [{"size": "64M"}, {"size": "1G", "format": "raw",
                                                                     "cache": "unsafe", "on_error": "enospc"}]}))
    assert option(argv, "-blockdev") == [
        "driver=file,node-name=soak-disk0-file,filename=/run/vms/g-0/disk0.qcow2,cache.direct=on,"
        "cache.no-flush=off,discard=unmap",
        "driver=qcow2,node-name=soak-disk0,file=soak-disk0-file,cache.direct=on,cache.no-flush=off,discard=unmap",
        "driver=file,node-name=soak-disk1-file,filename=/run/vms/g-0/disk1.raw,cache.direct=off,"
        "cache.no-flush=on,discard=unmap",
        "driver=raw,node-name=soak-disk1,file=soak-disk1-file,cache.direct=off,cache.no-flush=on,discard=unmap",
    ]
    devices = option(argv, "-device")
    assert ("virtio-blk-pci,drive=soak-disk0,id=soak-disk0-dev,serial=soak-disk0,write-cache=on,werror=report,"
            "rerror=report") in devices
    assert any(d.startswith("virtio-blk-pci,drive=soak-disk1,") and d.endswith("werror=enospc,rerror=report")
               for d in devices)
    assert "soak_dev=blk" in option(argv, "-append")[0]


def test_networks_rng_and_balloon() -> None:
    p = profile({"name": "u", "network": "user", "rng": True,
                 "fault": [{"type": "balloon", "every": "60s"}]},
                {"name": "p", "count": 3, "network": "pair"})
    user = argv_of(p)
    assert option(user, "-netdev") == ["user,id=soak-net0,guestfwd=tcp:10.0.2.100:7-cmd:cat"]
    assert "virtio-net-pci,netdev=soak-net0,id=soak-nic0,mac=52:54:00:5a:00:00" in option(user, "-device")
    assert option(user, "-object") == ["rng-random,id=soak-rng0,filename=/dev/urandom"]
    assert "virtio-balloon-pci,id=soak-balloon" in option(user, "-device")
    append = option(user, "-append")[0]
    assert "soak_dev=net,rng,balloon" in append and "soak_net=user" in append

    linked = argv_of(p, 2, net_socket=Path("/s/p-1.net"), net_peer_socket=Path("/s/p-0.net"))
    assert option(linked, "-netdev") == ["dgram,id=soak-net0,local.type=unix,local.path=/s/p-1.net,"
                                         "remote.type=unix,remote.path=/s/p-0.net"]
    assert "soak_net=pair:10.11.0.2:10.11.0.1" in option(linked, "-append")[0]
    fleet = expand_fleet(p)
    assert [(s.name, s.network, s.net_peer) for s in fleet[1:]] == [
        ("p-0", "pair", "p-1"), ("p-1", "pair", "p-0"), ("p-2", "user", None)]  # the odd VM out: user-mode


@pytest.mark.parametrize(("group", "field", "words"), [
    ({"fault": [{"type": "disk-error", "every": "1m"}]}, "group[0]", "needs a disk"),
    ({"disks": [{"size": "64M"}], "fault": [{"type": "disk-full", "every": "1m"}]}, "group[0]", "backing = 'tmpfs'"),
    ({"fault": [{"type": "link-down", "every": "1m"}]}, "group[0]", "needs a network"),
    ({"network": "pair", "count": 2, "fault": [{"type": "migrate", "every": "1m"}]}, "group[0]",
     "does not apply to network = 'pair'"),
    ({"disks": [{"size": "64M", "backing": "tmpfs"}]}, "group[0].disks[0]", "O_DIRECT"),
    ({"disks": [{"size": "64M", "io_size": "128M"}]}, "group[0].disks[0]", "more than the disk"),
    ({"disks": [{"size": "64K"}]}, "group[0].disks[0].size", "greater than or equal"),
    ({"fault": [{"type": "pause", "every": "1m", "target": 0.5}]}, "group[0].fault[0]", "balloon fault only"),
    ({"network": "tap"}, "group[0].network", "'user' or 'pair'"),
])
def test_what_a_profile_may_not_ask_is_one_line(group: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ProfileError) as caught:
        profile({"name": "g", **group})
    assert caught.value.field == field and words in str(caught.value)


def test_preflight_counts_images_and_tmpfs_and_needs_root_for_tmpfs() -> None:
    run_disks = profile({"name": "g", "count": 2, "disks": [{"size": "10G"}]})
    assert estimate_disk(run_disks, expand_fleet(run_disks)).images_bound == 2 * (10 << 30)
    small = HostFacts(disk_free=15 << 30, disk_total=100 << 30, memory_total=64 << 30, memory_available=60 << 30)
    with pytest.raises(CapacityError, match="of disk images"):
        check_disk("p.toml", run_disks, expand_fleet(run_disks), small, Path("runs/x"))

    tmpfs = profile({"name": "t", "count": 2, "memory": "256M",
                     "disks": [{"size": "2G", "backing": "tmpfs", "cache": "writeback"}]})
    check_devices("p.toml", expand_fleet(tmpfs), root=True)
    with pytest.raises(CapacityError, match=r"group 't' has disks with backing = 'tmpfs'.*needs root"):
        check_devices("p.toml", expand_fleet(tmpfs), root=False)
    host = HostFacts(disk_free=1 << 40, disk_total=1 << 40, memory_total=4 << 30, memory_available=4 << 30)
    with pytest.raises(CapacityError, match="disks on tmpfs"):  # 2 x 2 GiB of tmpfs on a 4 GiB host
        check_memory("p.toml", tmpfs, expand_fleet(tmpfs), host, "tcg")
