"""Benchmark the console classifier (issue 3 acceptance figures), single process.

Prints:
  * MB/s of classify() on crash-free console text: the clean-boot guest log
    plus generated boot and user-space chatter (tens of MB);
  * MB/s of classify() over the whole syzkaller dev corpus, and the per-log
    latency p50/p99;
  * the dev primary-title accuracy and whether every non-crash row is quiet;
  * the streaming cost: microseconds per ConsoleTriage.feed() line.

CPU time (time.process_time) is measured, best of several rounds, so other
processes on the machine disturb the figures less.

    .venv/bin/python bench/classify.py [--mb 64] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from soak.classify import ConsoleTriage, classify

CORPORA = Path(__file__).resolve().parents[1] / "tests" / "data" / "corpora"

CHATTER = (
    "[{t:12.6f}] systemd[1]: Started {unit}.service - {unit} daemon.",
    "[{t:12.6f}] systemd[1]: Reached target {unit}.target - {unit} target.",
    "[{t:12.6f}] EXT4-fs (vda1): mounted filesystem with ordered data mode. Quota mode: none.",
    "[{t:12.6f}] virtio_net virtio1 ens3: renamed from eth0",
    "[{t:12.6f}] audit: type=1400 audit({t:.3f}:{n}): apparmor=\"STATUS\" operation=\"profile_load\" "
    "name=\"/usr/bin/{unit}\" pid={n} comm=\"apparmor_parser\"",
    "[{t:12.6f}] random: crng init done",
    "[{t:12.6f}] NET: Registered PF_INET6 protocol family",
    "[{t:12.6f}] Freeing unused kernel image (initmem) memory: 2664K",
    "[{t:12.6f}] Run /init as init process",
    "[{t:12.6f}] x86/fpu: Supporting XSAVE feature 0x002: 'SSE registers', using default format",
    "[{t:12.6f}] clocksource: Switched to clocksource tsc",
    "stress-ng: info:  [{n}] dispatching hogs: 2 cpu, 2 vm, 1 hdd",
    "stress-ng: info:  [{n}] successful run completed in 60.01s",
    "{unit}[{n}]: connection from 10.0.2.2 port {n}: accepted, no error",
    "GUEST-HEARTBEAT seq={n} load=0.{n} mem_free={n}kB",
    "Welcome to Debian GNU/Linux 12 (bookworm)!",
    "[  OK  ] Started {unit}.service.",
)
UNITS = ("sshd", "cron", "rsyslog", "soak-agent", "networkd", "journald", "udevd", "timesyncd")


def chatter(megabytes: int) -> str:
    """Crash-free console text: the clean-boot log, then generated lines to size."""
    baseline = CORPORA / "guest-faults" / "baseline.log"
    parts = [baseline.read_bytes().decode("utf-8", "replace")] if baseline.is_file() else []
    rng = random.Random(3)
    size = sum(map(len, parts))
    t = 10.0
    while size < megabytes * 1_000_000:
        lines = []
        for _ in range(1000):
            t += rng.random() / 50
            line = rng.choice(CHATTER).format(t=t, n=rng.randrange(1, 99999), unit=rng.choice(UNITS))
            lines.append(line + "\r\n")
        block = "".join(lines)
        parts.append(block)
        size += len(block)
    return "".join(parts)


def cpu_best(rounds: int, work: object) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        work()  # type: ignore[operator]
        best = min(best, time.process_time() - start)
    return best


def dev_logs() -> list[tuple[str | None, str]]:
    rows = []
    for line in (CORPORA / "syzkaller-linux" / "dev.jsonl").open(encoding="utf-8"):
        raw = json.loads(line)
        log = raw["log"]
        cut = log.find("\n\nREPORT:\n")
        rows.append((raw["title"] or None, log if cut == -1 else log[:cut]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=64, help="size of the crash-free text (MB)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    clean = chatter(args.mb)
    clean_bytes = clean.encode()
    assert classify(clean) == [], "the crash-free text produced a report"
    seconds = cpu_best(args.rounds, lambda: classify(clean))
    print(f"crash-free console text, str:   {len(clean_bytes) / 1e6:6.1f} MB at {len(clean_bytes) / seconds / 1e6:7.1f} MB/s")
    seconds = cpu_best(args.rounds, lambda: classify(clean_bytes))
    print(f"crash-free console text, bytes: {len(clean_bytes) / 1e6:6.1f} MB at {len(clean_bytes) / seconds / 1e6:7.1f} MB/s")

    rows = dev_logs()
    logs = [log for _, log in rows]
    total = sum(len(log.encode()) for log in logs)
    for log in logs:  # warm the memo tables once, as a long-running supervisor has them
        classify(log)
    seconds = cpu_best(args.rounds, lambda: [classify(log) for log in logs])
    print(f"syzkaller dev corpus:           {total / 1e6:6.1f} MB at {total / seconds / 1e6:7.1f} MB/s ({len(logs)} logs)")
    latencies = []
    for log in logs:
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            classify(log)
            best = min(best, time.process_time() - start)
        latencies.append(best)
    cuts = statistics.quantiles(latencies, n=100)
    print(f"per-log latency:                p50 {cuts[49] * 1e3:.2f} ms, p99 {cuts[98] * 1e3:.2f} ms, "
          f"max {max(latencies) * 1e3:.2f} ms")

    right = quiet = nulls = 0
    for title, log in rows:
        reports = classify(log)
        got = reports[0].title if reports else None
        right += got == title
        if title is None:
            nulls += 1
            quiet += not reports
    print(f"dev primary-title accuracy:     {right}/{len(rows)} = {right / len(rows):.2%}; "
          f"non-crash rows with no report: {quiet}/{nulls}")

    lines = clean.split("\r\n")[:200_000]
    triage = ConsoleTriage()
    start = time.process_time()
    for line in lines:
        triage.feed(line, 0.0)
    per_line = (time.process_time() - start) / len(lines)
    print(f"ConsoleTriage.feed():           {per_line * 1e6:.2f} us per line ({len(lines)} lines)")


if __name__ == "__main__":
    main()
