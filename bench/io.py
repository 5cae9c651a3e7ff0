"""Guest block and network throughput per vCPU count, next to the host's own on the same backing.

Each size is a real `soak run` of three guests for `--seconds`: one with a qcow2 disk
(`cache = "none"`, the verified load back to back: 256 KiB O_DIRECT writes, read back,
compared, discarded) and a user-mode network, and a pair linked back to back. The guest
figures are the run's own (`devices` in summary.json: bytes over busy time). The host's
figures are measured here, on a file in the same directory as the run's images: the same
256 KiB O_DIRECT writes and reads of the same region; and 1 MiB echoed over loopback TCP.
The guest moves its data with busybox `dd` and `cmp` (a process per request), so under TCG the
guest's CPU, not virtio, bounds it: the ratio says what a soak's verified load costs here.

Usage: .venv/bin/python bench/io.py [--vcpus 1 2 4] [--seconds 70]
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

CHUNK = 256 << 10
REGION = 32 << 20
ECHO = 1 << 20


def profile(vcpus: int, seconds: int) -> str:
    return textwrap.dedent(f"""
        [run]
        name = "io-bench"
        duration = "{seconds}s"
        accel = "tcg"
        metrics_listen = ""

        [watch]
        hang_timeout = "60s"

        [[group]]
        name = "disk"
        vcpus = {vcpus}
        memory = "256M"
        network = "user"
        disks = [{{ size = "64M", format = "qcow2", cache = "none", io_size = "32M", io_idle = "0s" }}]

        [[group]]
        name = "pair"
        count = 2
        vcpus = {vcpus}
        memory = "256M"
        network = "pair"
    """)


def guest(vcpus: int, seconds: int, work: Path) -> dict[str, dict[str, float]]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "p.toml").write_text(profile(vcpus, seconds))
    subprocess.run([sys.executable, "-m", "soak", "run", str(work / "p.toml"), "--run-dir", str(work / "run"),
                    "--no-history"], capture_output=True, check=False)
    summary = json.loads((work / "run" / "summary.json").read_text())
    vms = {vm["name"]: vm["devices"] for vm in summary["vms"]}
    pair = [vms.get(f"pair-{i}", {}).get("net", {}) for i in (0, 1)]
    return {"disk": vms.get("disk-0", {}).get("disk0", {}), "user": vms.get("disk-0", {}).get("net", {}),
            "pair": {"read_mb_s": statistics.mean(p.get("read_mb_s", 0.0) for p in pair)}}


def host_disk(folder: Path, rounds: int = 3) -> tuple[float, float]:
    """(write, read) MB/s of 256 KiB O_DIRECT requests over the region, on a file in ``folder``."""
    path = folder / "host-io.raw"
    buf = mmap.mmap(-1, CHUNK)  # page-aligned, as O_DIRECT wants
    buf.write(os.urandom(CHUNK))
    writes, reads = [], []
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            for i in range(REGION // CHUNK):
                os.pwritev(fd, [buf], i * CHUNK)
            writes.append(REGION / (time.perf_counter() - start) / 1e6)
            start = time.perf_counter()
            for i in range(REGION // CHUNK):
                os.preadv(fd, [buf], i * CHUNK)
            reads.append(REGION / (time.perf_counter() - start) / 1e6)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(writes), statistics.median(reads)


def host_echo(rounds: int = 5) -> float:
    """MB/s one way of 1 MiB echoed over loopback TCP (the guest's figure is one way too)."""
    server = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        for _ in range(rounds):
            conn, _ = server.accept()
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    payload = os.urandom(ECHO)
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        with socket.create_connection(server.getsockname()) as conn:
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            got = 0
            while data := conn.recv(65536):
                got += len(data)
        rates.append(ECHO / (time.perf_counter() - start) / 1e6)
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vcpus", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=int, default=70)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="soak-iobench-"))
    host_write, host_read = host_disk(work)
    host_net = host_echo()
    print(f"host: O_DIRECT 256 KiB write {host_write:.0f} MB/s, read {host_read:.0f} MB/s; "
          f"loopback TCP echo {host_net:.0f} MB/s")
    print(f"{'vCPUs':>5} {'disk write':>11} {'disk read':>10} {'IOPS':>6} {'vs host w/r':>13} "
          f"{'user net':>9} {'pair net':>9} {'vs host':>8}")
    for vcpus in args.vcpus:
        g = guest(vcpus, args.seconds, work / f"v{vcpus}")
        disk, user, pair = g["disk"], g["user"], g["pair"]
        w, r = disk.get("write_mb_s", 0.0), disk.get("read_mb_s", 0.0)
        print(f"{vcpus:>5} {w:>8.1f} MB/s {r:>6.1f} MB/s {disk.get('iops', 0.0):>6.1f} "
              f"{w / host_write:>6.3f}/{r / host_read:<6.3f} {user.get('read_mb_s', 0.0):>6.2f} MB {pair['read_mb_s']:>6.2f} MB "
              f"{max(user.get('read_mb_s', 0.0), pair['read_mb_s']) / host_net:>8.4f}", flush=True)


if __name__ == "__main__":
    main()
