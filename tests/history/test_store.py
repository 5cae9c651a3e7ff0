"""The store: idempotent imports, runs recorded while unfinished, bad and busy databases, two writers at once."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from soak.errors import HistoryError, UsageError
from soak.history import HistoryLocation, HistoryStore, import_runs, read_facts
from soak.history.store import SCHEMA_VERSION
from tests.conftest import REPO
from tests.history.journals import DAY, LOCKUP, T0, WARN, run_events, write_run


def opened(path: Path, *, user_given: bool = True, timeout: float = 30.0) -> HistoryStore:
    store = HistoryStore.open(HistoryLocation(path, user_given, timeout))
    assert store is not None
    return store


def dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [line for line in conn.iterdump() if "recorded" not in line]


def test_importing_the_same_run_twice_changes_nothing(tmp_path: Path) -> None:
    runs = [write_run(tmp_path / "runs", f"r{i}", started=T0 + i * DAY, failures=[WARN, LOCKUP][: i % 3])
            for i in range(4)]
    db = tmp_path / "h.db"
    with opened(db) as store:
        assert [r.outcome for r in import_runs(store, runs)] == ["added"] * 4
    before = db.read_bytes(), dump(db)
    copy = tmp_path / "copied" / "r1"
    shutil.copytree(runs[1], copy)
    with opened(db) as store:
        assert [r.outcome for r in import_runs(store, [*runs, copy])] == ["unchanged"] * 5
        assert len(store.runs()) == 4 and len(store.sightings()) == 0 + 1 + 2 + 0
    assert (db.read_bytes(), dump(db)) == before


def test_a_run_recorded_unfinished_is_replaced_by_its_finished_reading(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, "r", started=T0, failures=[WARN], finished=False)
    with opened(tmp_path / "h.db") as store:
        assert import_runs(store, [run_dir])[0].outcome == "added"
        assert store.runs()[0].finish_reason is None
        shutil.rmtree(run_dir)
        write_run(tmp_path, "r", started=T0, failures=[WARN, LOCKUP])
        assert import_runs(store, [run_dir])[0].outcome == "updated"
        assert import_runs(store, [run_dir])[0].outcome == "unchanged"
        [run] = store.runs()
        assert run.finish_reason == "deadline" and run.verdict == "failures"
        assert {s.title for s in store.sightings()} == {WARN[1], LOCKUP[1]}


def test_a_moved_run_directory_is_followed(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "old", "r", started=T0, failures=[WARN])
    with opened(tmp_path / "h.db") as store:
        import_runs(store, [run_dir])
        moved = tmp_path / "new" / "r"
        shutil.move(run_dir, moved)
        assert import_runs(store, [moved])[0].outcome == "moved"
        assert store.runs()[0].run_dir == str(moved.resolve())


def test_runs_that_are_not_runs_are_skipped_with_a_reason(tmp_path: Path) -> None:
    good = write_run(tmp_path, "good", started=T0)
    headless = write_run(tmp_path, "headless", started=T0)
    journal = headless / "journal.jsonl"
    journal.write_text("".join(journal.read_text().splitlines(keepends=True)[1:]))  # the run-started line lost
    with opened(tmp_path / "h.db") as store:
        results = import_runs(store, [tmp_path / "nothing", headless, good])
    assert [r.outcome for r in results] == [None, None, "added"]
    assert "no such file or directory" in results[0].problem
    assert "no run-started record" in results[1].problem


def test_what_a_run_keeps_is_its_facts(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, "r", started=T0, failures=[WARN], qemu="8.2.1")
    with opened(tmp_path / "h.db") as store:
        import_runs(store, [run_dir])
        [run], [seen] = store.runs(), store.sightings()
    facts, _ = read_facts(run_dir)
    assert (run.run_id, run.profile, run.qemu_version, run.accel, run.started) == ("r", "nightly", "8.2.1", "tcg", T0)
    assert run.vm_hours == pytest.approx(facts.vm_hours) and run.boots == 3
    assert (seen.kind, seen.title, seen.count, seen.expected, seen.vms) == ("kernel-warning", WARN[1], 1, 0, ("g-0",))
    assert [(s.vcpus, s.memory_mib, s.kernel) for s in seen.shapes] == [(1, 256, "6.1.0-cloud")]
    assert seen.last_evidence == "vms/g-0/failures/001-kernel-warning"


def test_prune_forgets_old_runs_and_their_signatures(tmp_path: Path) -> None:
    runs = [write_run(tmp_path / "runs", f"r{i}", started=T0 + i * DAY, failures=[[LOCKUP], [WARN]][i % 2])
            for i in range(4)]
    with opened(tmp_path / "h.db") as store:
        import_runs(store, runs)
        assert store.forget_before(T0 + 1.5 * DAY) == 2
        assert [r.run_id for r in store.runs()] == ["r2", "r3"]
        assert {s.run_id for s in store.sightings()} == {"r2", "r3"}
        assert store.forget_before(T0 + 10 * DAY) == 2
        assert store.sightings() == [] and store.runs() == []


# --- databases soak cannot use -------------------------------------------------------------------------------


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database, but the user named it\n" * 20)
    with pytest.raises(UsageError, match=r"notes.txt: not a soak history \(it is not a SQLite database\)"):
        HistoryStore.open(HistoryLocation(text, True))
    with pytest.raises(HistoryError, match="move it aside"):  # soak's own default path: soak's problem
        HistoryStore.open(HistoryLocation(text, False))
    with pytest.raises(UsageError, match="it is a directory"):
        HistoryStore.open(HistoryLocation(tmp_path, True))
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(UsageError, match="another program's SQLite database"):
        HistoryStore.open(HistoryLocation(other, True))


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    opened(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(HistoryError, match=f"schema {SCHEMA_VERSION + 1} was written by a newer soak"):
        HistoryStore.open(HistoryLocation(db, True))


def damaged(tmp_path: Path) -> Path:
    """A history with a few runs whose table pages were overwritten (a disk that lied)."""
    db = tmp_path / "h.db"
    with opened(db) as store:
        import_runs(store, [write_run(tmp_path / "runs", f"r{i}", started=T0 + i, failures=[WARN]) for i in range(30)])
    data = bytearray(db.read_bytes())
    assert len(data) > 5 * 4096
    data[4096: len(data)] = bytes(range(256)) * ((len(data) - 4096) // 256) + bytes((len(data) - 4096) % 256)
    db.write_bytes(bytes(data))
    return db


def test_a_damaged_database_is_one_clear_error(tmp_path: Path) -> None:
    db = damaged(tmp_path)
    with pytest.raises(HistoryError, match=r"h.db: the history is damaged \(.*malformed.*\): move it aside"):
        store = HistoryStore.open(HistoryLocation(db, True))
        assert store is not None
        store.runs()
    done = soak_cli("history", "--history", str(db))
    assert done.returncode == 3, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("HistoryError: ") and "damaged" in line


def soak_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "soak", *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env=env)


def test_a_locked_database_is_one_clear_error_and_readers_go_on(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    run_dir = write_run(tmp_path, "r", started=T0, failures=[WARN])
    opened(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock, and keeps it
    holder.execute("INSERT INTO signatures (kind, title) VALUES ('x', 'y')")
    try:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SOAK_HISTORY_TIMEOUT": "0.5"}
        started = time.monotonic()
        done = soak_cli("history", "import", str(run_dir), "--history", str(db), env=env)
        assert done.returncode == 3, done.stdout + done.stderr
        assert time.monotonic() - started < 30
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("HistoryError: ") and "locked by another writer for 0.5s" in line
        reading = soak_cli("history", "--json", "--history", str(db), env=env)
        assert reading.returncode == 0, reading.stderr  # WAL: a reader never waits for a writer
    finally:
        holder.execute("ROLLBACK")
        holder.close()


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from soak.history import HistoryLocation, HistoryStore, import_runs
    db, go, *dirs = sys.argv[1:]
    while not Path(go).exists():
        time.sleep(0.001)
    store = HistoryStore.open(HistoryLocation(Path(db), True, 30.0))
    outcomes = [r.outcome for d in dirs for r in import_runs(store, [Path(d)])]
    print(outcomes.count("added"), outcomes.count("unchanged"))
""")


def test_two_writers_at_once(tmp_path: Path) -> None:
    """Two processes create the same new history and record runs into it at the same time: every run lands
    once, whole (two runs finishing at once, two imports)."""
    runs = [str(write_run(tmp_path / "runs", f"r{i:02d}", started=T0 + i, failures=[WARN, LOCKUP][: i % 3]))
            for i in range(40)]
    db, go = tmp_path / "h.db", tmp_path / "go"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    mine, theirs, shared = runs[:15], runs[15:30], runs[30:]
    writers = [subprocess.Popen([sys.executable, str(script), str(db), str(go), *part, *shared], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for part in (mine, theirs)]
    time.sleep(0.5)  # both interpreters up and waiting
    go.touch()
    results = [w.communicate(timeout=120) for w in writers]
    assert all(w.returncode == 0 for w in writers), results
    counts = [tuple(map(int, out.split())) for out, _ in results]
    assert sum(added for added, _ in counts) == 40 and sum(unchanged for _, unchanged in counts) == 10
    with opened(db) as store:
        assert len(store.runs()) == 40
        assert len(store.sightings()) == sum(i % 3 for i in range(40))
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_run_events_are_what_soak_writes(tmp_path: Path) -> None:
    """The tests' journals fold like a real run's: a verdict, VM-hours, one signature per title."""
    facts, _ = read_facts(write_run(tmp_path, "r", started=T0, failures=[WARN, WARN, LOCKUP]))
    assert facts.verdict == "failures" and facts.vm_hours == pytest.approx(3 * (3600 - 5) / 3600)
    assert [(s.title, s.count) for s in facts.signatures] == [(WARN[1], 2), (LOCKUP[1], 1)]
    assert run_events("x", started=T0, finished=False)[-1].type == "vm-ready"


def test_the_end_of_a_run_survives_a_history_it_cannot_use(tmp_path: Path) -> None:
    """`soak run` records and rates through HistoryUse: a bad history is a warning, never an exception."""
    from soak.history import Policy
    from soak.history.hooks import HistoryUse

    run_dir = write_run(tmp_path, "tonight", started=T0 + DAY, failures=[WARN])
    rated = HistoryUse(HistoryLocation(damaged(tmp_path / "damaged"), True), Policy()).record_and_rate(run_dir)
    assert rated.statuses is None and rated.outcome is None
    [warning] = rated.warnings
    assert warning.startswith("the history cannot be used: ") and "damaged" in warning

    db = tmp_path / "h.db"
    opened(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        rated = HistoryUse(HistoryLocation(db, True, 0.2), Policy()).record_and_rate(run_dir)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert rated.outcome is None and rated.statuses == {("kernel-warning", WARN[1]): "new"}  # WAL: still read
    [warning] = rated.warnings
    assert warning.startswith("the run was not recorded in the history: ") and "locked" in warning
    rated = HistoryUse(HistoryLocation(db, True), Policy()).record_and_rate(run_dir)
    assert (rated.outcome, rated.warnings) == ("added", [])


def test_a_folder_of_runs_imports_every_run_below_it(tmp_path: Path) -> None:
    for i in range(3):
        write_run(tmp_path / "runs" / f"night-{i}", f"r{i}", started=T0 + i * DAY, failures=[WARN])
    with opened(tmp_path / "h.db") as store:
        assert sorted(r.outcome for r in import_runs(store, [tmp_path / "runs"])) == ["added"] * 3
        (empty,) = import_runs(store, [tmp_path / "empty"])
        assert empty.outcome is None and empty.problem  # said why, not raised
