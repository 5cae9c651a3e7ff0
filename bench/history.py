"""Cost of the run history: bytes per run, time to record a run, to rate one, to list a year.

    .venv/bin/python bench/history.py [--runs 365] [--signatures 10] [--vms 32]

Records a year of nightly runs (``--runs``), each seeing ``--signatures``
failure titles drawn from a pool of 60 on a few of its ``--vms`` VMs, into a
fresh history; then one worst-case run (the run model's bound: 1000 signatures,
each on 64 VMs). Prints the file size per run, the time per record, and the time
of `run_statuses` (the end of ``soak run``, ``soak summary``), `list_signatures`
(``soak history``) and `list_runs` (``soak history runs``) over the whole year.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from soak.history import (
    Filters,
    HistoryLocation,
    HistoryStore,
    Policy,
    list_runs,
    list_signatures,
    run_statuses,
)
from soak.runmodel import RunFacts, SignatureFacts, VmShape

DAY = 86400.0
KINDS = ["kernel-warning", "soft-lockup", "rcu-stall", "qemu-crash", "hung-task", "kernel-oops"]


def facts(i: int, rng: random.Random, signatures: int, vms: int, *, per_signature_vms: int = 3) -> RunFacts:
    start = 1_760_000_000.0 + i * DAY
    shapes = [VmShape(1 << (v % 4), 512 << (v % 3), "pc", "default:6.1.0-28-cloud-amd64", "6.1.0-28-cloud-amd64")
              for v in range(vms)]
    seen = []
    for n, title_no in enumerate(rng.sample(range(max(60, signatures)), signatures)):
        hit = sorted(rng.sample(range(vms), min(per_signature_vms, vms)))
        seen.append(SignatureFacts(
            kind=KINDS[title_no % len(KINDS)], title=f"WARNING in some_kernel_function_{title_no}+0x{title_no:x}/0x200",
            count=rng.randint(1, 5), expected=0, corrupted=False, first_seen=start + 60 + n, last_seen=start + 3600,
            evidence=f"vms/g-{hit[0]}/failures/{n + 1:03d}-kernel-warning",
            last_evidence=f"vms/g-{hit[-1]}/failures/{n + 9:03d}-kernel-warning",
            vms=tuple(f"g-{v}" for v in hit), shapes=tuple(dict.fromkeys(shapes[v] for v in hit))))
    return RunFacts(run_id=f"{i:012x}", profile="nightly", profile_path="/opt/soak/profiles/nightly.toml", seed=i,
                    accel="tcg", version="0.1.0", qemu_version="7.2.0", started=start, ended=start + 8 * 3600,
                    finish_reason="deadline", verdict="failures" if seen else "clean", vm_hours=8.0 * vms, vms=vms,
                    boots=vms + 3, signatures=tuple(seen))


def size(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db.stat().st_size


def timed(label: str, fn: object, repeat: int = 3) -> None:
    best = min(_once(fn) for _ in range(repeat))
    print(f"  {label:52} {best * 1000:8.1f} ms")


def _once(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=365)
    parser.add_argument("--signatures", type=int, default=10)
    parser.add_argument("--vms", type=int, default=32)
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "history.db"
        store = HistoryStore.open(HistoryLocation(db, True))
        assert store is not None
        empty = size(db)
        year = [facts(i, rng, args.signatures, args.vms) for i in range(args.runs)]
        start = time.perf_counter()
        for f in year:
            store.record(f, Path(folder) / f.run_id)
        per_record = (time.perf_counter() - start) / args.runs
        grown = size(db) - empty
        print(f"{args.runs} runs x {args.signatures} signatures ({args.vms} VMs, 3 hit per signature):")
        print(f"  file {size(db) / 1024:.0f} KiB: {grown / args.runs / 1024:.2f} KiB per run "
              f"({grown / (args.runs * max(1, args.signatures)):.0f} B per signature seen)")
        print(f"  record one run (one transaction, WAL, synchronous=NORMAL) {per_record * 1000:6.2f} ms")
        policy = Policy()
        timed("rate the last run (run_statuses: soak run, soak summary)",
              lambda: run_statuses(year[-1], store, policy))
        timed("soak history (list_signatures over the year)", lambda: list_signatures(store, Filters(), policy))
        timed("soak history runs (list_runs over the year)", lambda: list_runs(store, Filters(), policy), repeat=1)
        before = size(db)
        worst = facts(args.runs, rng, 1000, 64, per_signature_vms=64)
        store.record(worst, Path(folder) / "worst")
        print(f"worst-case run (1000 signatures, each on 64 VMs): {(size(db) - before) / 1024:.0f} KiB")
        store.close()


if __name__ == "__main__":
    main()
