"""Live migration cost under TCG: total time and downtime per guest size and load, and the
ping-pong rate this host sustains.

Each case is a real `soak run` of one guest migrated on a fixed timeline (the
`migrate` fault); the figures are QEMU's own (`query-migrate`, journaled as
`migrated` records). Loaded guests run `stress-ng --vm` on 40 % of their memory.
Live migration of a loaded guest under TCG on QEMU 7.2 may corrupt it (see
profiles/migration-tcg-bug.toml): the timings are still QEMU's, the guest's fate
is not this bench's business. The ping-pong case migrates back to back (a new
migration 1 s after the last one ended) and counts completed migrations per minute.

Usage: .venv/bin/python bench/migration.py [--migrations 5] [--pingpong 120]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path


def profile(memory: str, loaded: bool, mode: str, every: float, duration: float) -> str:
    load = ('load = { stressors = ["vm"], pattern = "steady", period = "30s", memory_share = 0.4 }'
            if loaded else "")
    return textwrap.dedent(f"""
        [run]
        name = "migration-bench"
        duration = "{duration:.0f}s"
        accel = "tcg"
        metrics_listen = ""

        [watch]
        hang_timeout = "60s"

        [restart]
        policy = "never"

        [[group]]
        name = "g"
        vcpus = 2
        memory = "{memory}"
        {load}
        fault = [{{ type = "migrate", mode = "{mode}", every = "{every}s", start = "10s", jitter = 0.0 }}]
    """)


def run_case(memory: str, loaded: bool, mode: str, *, every: float, duration: float) -> list[dict[str, float]]:
    work = Path(tempfile.mkdtemp(prefix="soak-migbench-"))
    (work / "p.toml").write_text(profile(memory, loaded, mode, every, duration))
    subprocess.run([sys.executable, "-m", "soak", "run", str(work / "p.toml"), "--run-dir", str(work / "run"),
                    "--no-history"], capture_output=True, check=False)
    done = []
    for line in (work / "run" / "journal.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["type"] == "migrated" and record["ok"]:
            done.append(record)
    return done


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--migrations", type=int, default=5, help="migrations per case")
    parser.add_argument("--pingpong", type=float, default=120, help="seconds of back-to-back migrations")
    args = parser.parse_args()
    every = 20.0
    print(f"{'guest':<8} {'load':<7} {'mode':<7} {'n':>3} {'total p50':>10} {'total max':>10} "
          f"{'downtime p50':>13} {'downtime max':>13} {'MiB sent':>9}")
    for memory in ("256M", "1G"):
        for loaded, mode in ((False, "live"), (True, "live"), (True, "paused")):
            duration = 10 + every * args.migrations + 30
            done = run_case(memory, loaded, mode, every=every, duration=duration)
            totals = [r["total_s"] for r in done]
            downs = [r["downtime_s"] for r in done]
            sent = [r["transferred_bytes"] / 2**20 for r in done]
            print(f"{memory:<8} {'vm 40%' if loaded else 'idle':<7} {mode:<7} {len(done):>3} "
                  f"{median(totals):>9.2f}s {max(totals, default=float('nan')):>9.2f}s "
                  f"{median(downs) * 1000:>11.0f}ms {max(downs, default=float('nan')) * 1000:>11.0f}ms "
                  f"{median(sent):>9.0f}")
    done = run_case("256M", True, "paused", every=1.0, duration=10 + args.pingpong)
    if done:
        span = done[-1]["t"] - done[0]["t"] + done[0]["total_s"]
        print(f"ping-pong: {len(done)} paused migrations of a loaded 256 MiB guest in {span:.0f}s "
              f"= {60 * len(done) / span:.1f} per minute (each followed by a 1 s gap)")


if __name__ == "__main__":
    main()
