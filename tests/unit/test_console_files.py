"""A VM's console on disk: heads of boots and a rolling tail within the limit (soak.vm.segments)."""

from __future__ import annotations

import random
from pathlib import Path

from soak.vm.console import read_console_tail
from soak.vm.segments import LIVE_NAME, ConsoleFiles


def on_disk(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("console*"))


def noise(n: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(32, 127) for _ in range(n))


def test_a_quiet_console_stays_in_one_file(tmp_path: Path) -> None:
    files = ConsoleFiles(tmp_path, 1 << 20)
    for boot in (1, 2):
        files.begin_boot(boot, f"== boot {boot} ==\n".encode())
        files.append(b"Linux version 6.1\n" * 100)
    files.close()
    assert [p.name for p in tmp_path.iterdir()] == [LIVE_NAME]
    text = (tmp_path / LIVE_NAME).read_text()
    assert text.startswith("== boot 1 ==") and "== boot 2 ==" in text
    assert files.dropped_bytes == 0 and files.kept_bytes == files.written_bytes == len(text)


def test_a_flood_keeps_every_head_and_the_newest_bytes_within_the_limit(tmp_path: Path) -> None:
    limit = 64 * 1024
    files = ConsoleFiles(tmp_path, limit)
    written = bytearray()
    for boot in (1, 2, 3):
        head = f"== boot {boot} ==\nLinux version boot {boot}\n".encode()
        files.begin_boot(boot, head)
        written += head
        for i in range(40):
            chunk = noise(7000, seed=boot * 100 + i)
            files.append(chunk)
            written += chunk
            assert on_disk(tmp_path) <= limit
    files.close()
    assert on_disk(tmp_path) == files.kept_bytes <= limit
    for boot in (1, 2, 3):
        head = (tmp_path / f"console.head-{boot}.log").read_bytes()
        assert head.startswith(f"== boot {boot} ==\nLinux version boot {boot}\n".encode())
        assert len(head) == files.head_bytes
    assert files.tail(20000) == bytes(written[-20000:])
    assert read_console_tail(tmp_path, 20000) == bytes(written[-20000:])
    # every byte is either on disk once (heads may repeat segment bytes) or counted as dropped
    segments = sorted(tmp_path.glob("console.[0-9]*.log"))
    in_order = b"".join(p.read_bytes() for p in segments) + (tmp_path / LIVE_NAME).read_bytes()
    assert bytes(written).endswith(in_order)
    assert files.dropped_bytes == len(written) - len(in_order) - 3 * files.head_bytes


def test_tail_reads_across_segments(tmp_path: Path) -> None:
    files = ConsoleFiles(tmp_path, 64 * 1024)  # 8 KiB segments
    data = noise(30000)
    files.begin_boot(1, b"")
    files.append(data)
    assert len(list(tmp_path.glob("console.[0-9]*.log"))) == 3
    assert files.tail(25000) == data[-25000:]
    assert files.tail(10**9) == data
    files.close()


def test_a_later_run_in_the_same_directory_counts_what_is_there(tmp_path: Path) -> None:
    first = ConsoleFiles(tmp_path, 64 * 1024)
    first.begin_boot(1, b"== run 1 ==\n")
    first.append(noise(60000))
    first.close()
    second = ConsoleFiles(tmp_path, 64 * 1024)
    second.begin_boot(1, b"== run 2 ==\n")
    for i in range(20):
        second.append(noise(5000, seed=i))
        assert on_disk(tmp_path) <= 64 * 1024
    second.close()
    assert (tmp_path / "console.head-1.log").read_bytes().startswith(b"== run 2 ==")
