"""Benchmark the leak detectors: CPU cost per sample and per judgement, and memory held.

A VM feeds its `ResourceTrends` one process sample every 5 s and a heartbeat
every second; a judgement runs when a bucket (60 s) closes. Prints:

  * microseconds per `add` (the per-sample cost);
  * milliseconds per judgement of one detector: over the recent windows only
    (the common case) and when the whole-run series changed too (the worst);
  * points held after a simulated week.

    .venv/bin/python bench/trend.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import time

from soak.detect.trend import ResourceTrends

HOUR = 3600.0
WEEK_S = 7 * 24 * HOUR


def noisy_rss(rng: random.Random, t: float) -> float:
    return 330 + 4 * t / HOUR + rng.gauss(0, 1.5)


def per_add_us(rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        rng = random.Random(1)
        detector = ResourceTrends().rss
        values = [noisy_rss(rng, i * 5.0) for i in range(100_000)]
        start = time.process_time()
        for i, v in enumerate(values):
            detector.add(i * 5.0, v)
        best = min(best, (time.process_time() - start) / len(values) * 1e6)
    return best


def per_check_ms(rounds: int) -> tuple[float, float, int]:
    """Cost of a judgement with full windows and a full whole-run series (after a week)."""
    rng = random.Random(2)
    detector = ResourceTrends().rss
    t = 0.0
    while t < WEEK_S:
        detector.add(t, noisy_rss(rng, t))
        t += 5.0
    recent_only, worst = float("inf"), float("inf")
    for _ in range(rounds):
        detector.add(t, noisy_rss(rng, t))
        t += 60.0  # close a bucket: the next check judges afresh
        detector.add(t, noisy_rss(rng, t))
        start = time.process_time()
        detector.check(t)
        recent_only = min(recent_only, (time.process_time() - start) * 1e3)
        start = time.process_time()
        detector.end_of_run_check(t)  # judges the whole-run series too
        worst = min(worst, (time.process_time() - start) * 1e3)
    return recent_only, worst, detector.stored_points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    add_us = per_add_us(args.rounds)
    recent_ms, worst_ms, points = per_check_ms(args.rounds)
    per_vm_minute_ms = 4 * recent_ms + 4 * 12 * add_us / 1e3
    print(f"add:                   {add_us:8.2f} us per sample")
    print(f"check (recent windows): {recent_ms:7.2f} ms per detector per bucket")
    print(f"check (+ whole run):    {worst_ms:7.2f} ms per detector")
    print(f"points held after a week: {points} per detector")
    print(f"steady cost per VM: ~{per_vm_minute_ms:.1f} ms of CPU per minute (4 detectors)")


if __name__ == "__main__":
    main()
