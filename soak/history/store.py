"""The history store: one SQLite file, one row per run and one per signature a run saw.

Where: ``--history PATH``, else ``$SOAK_HISTORY``, else
``$XDG_DATA_HOME/soak/history.db`` (``~/.local/share/soak/history.db``). It
must sit on a local file system (WAL needs shared memory between processes).

Concurrency: WAL mode (readers never wait for a writer), a busy timeout
(``$SOAK_HISTORY_TIMEOUT`` seconds, default 30) for writers waiting on each
other, and one ``BEGIN IMMEDIATE`` transaction per run, so two runs finishing
at once, or two imports, each land whole. Creating the schema is itself one
such transaction, so two processes may create the same new file at once.

Size: what a run keeps is bounded by the run model (at most 1000 signatures,
VM names and shapes capped at `MAX_VMS_KEPT` per signature, titles at
`MAX_TITLE`), never by its number of events: about 0.2 KiB per run plus about
0.4 KiB per signature it saw, at most about 5 MiB for a run at the model's bound
(``bench/history.py``). ``soak history prune``
forgets old runs; freed pages are returned to the file system.

Errors, one line each: a store soak cannot use (locked past the timeout,
damaged, a newer schema, a full disk) is a `HistoryError` (exit 3); a path the
user named (option or environment) that is a directory or not a SQLite file at
all is a `UsageError` (exit 2). Schema: ``PRAGMA user_version`` is
`SCHEMA_VERSION`; ``application_id`` marks the file as soak's.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from soak.errors import HistoryError, SoakError, UsageError
from soak.runmodel import RunFacts, VmShape

SCHEMA_VERSION = 1
APPLICATION_ID = 0x736F616B  # "soak"
MAX_VMS_KEPT = 64
"""VM names and distinct shapes kept per signature and run (the count is kept whole)."""
MAX_TITLE = 500
"""Longer titles are cut (consistently, so the cut title is still the key)."""
DEFAULT_TIMEOUT_S = 30.0
_SQLITE_MAGIC = b"SQLite format 3\x00"

Outcome = Literal["added", "updated", "unchanged", "moved"]
"""What recording a run did: new run; an unfinished run's record replaced by a newer
reading; nothing (already recorded whole); only its directory changed (it was moved)."""

_SCHEMA = [
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, profile TEXT NOT NULL, profile_path TEXT NOT NULL, seed INTEGER,
        accel TEXT NOT NULL, soak_version TEXT NOT NULL, qemu_version TEXT NOT NULL,
        started REAL NOT NULL, ended REAL NOT NULL, finish_reason TEXT, verdict TEXT NOT NULL,
        vm_hours REAL NOT NULL, vms INTEGER NOT NULL, boots INTEGER NOT NULL,
        run_dir TEXT NOT NULL, recorded REAL NOT NULL)""",
    "CREATE INDEX runs_by_start ON runs (started, run_id)",
    "CREATE TABLE signatures (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, title TEXT NOT NULL, UNIQUE (kind, title))",
    """CREATE TABLE sightings (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        signature INTEGER NOT NULL REFERENCES signatures (id),
        count INTEGER NOT NULL, expected INTEGER NOT NULL, corrupted INTEGER NOT NULL,
        first_seen REAL NOT NULL, last_seen REAL NOT NULL, evidence TEXT NOT NULL, last_evidence TEXT NOT NULL,
        vm_count INTEGER NOT NULL, vms TEXT NOT NULL, shapes TEXT NOT NULL,
        PRIMARY KEY (run_id, signature)) WITHOUT ROWID""",
    "CREATE INDEX sightings_by_signature ON sightings (signature)",
]


@dataclass(frozen=True, slots=True)
class HistoryLocation:
    path: Path
    user_given: bool
    """Named by ``--history`` or ``$SOAK_HISTORY``: a wrong path there is the user's mistake (exit 2)."""
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def resolve(cls, option: Path | None, env: Mapping[str, str] = os.environ) -> HistoryLocation:
        """The history a command uses (module docstring); ``option`` includes ``$SOAK_HISTORY``.

        :raise UsageError: ``$SOAK_HISTORY_TIMEOUT`` is not a number of seconds.
        """
        raw = env.get("SOAK_HISTORY_TIMEOUT", "")
        try:
            timeout = float(raw) if raw else DEFAULT_TIMEOUT_S
        except ValueError:
            timeout = -1.0
        if not 0 <= timeout <= 3600:
            raise UsageError(f"SOAK_HISTORY_TIMEOUT={raw!r}: expected seconds from 0 to 3600")
        if option is not None:
            return cls(option.expanduser(), True, timeout)
        data = env.get("XDG_DATA_HOME", "")
        base = Path(data) if data.startswith("/") else Path.home() / ".local" / "share"
        return cls(base / "soak" / "history.db", False, timeout)


@dataclass(frozen=True, slots=True)
class RunRow:
    run_id: str
    profile: str
    seed: int | None
    accel: str
    soak_version: str
    qemu_version: str
    started: float
    ended: float
    finish_reason: str | None
    verdict: str
    vm_hours: float
    vms: int
    boots: int
    run_dir: str


@dataclass(frozen=True, slots=True)
class SightingRow:
    run_id: str
    kind: str
    title: str
    count: int
    expected: int
    corrupted: bool
    first_seen: float
    last_seen: float
    evidence: str
    last_evidence: str
    vm_count: int
    vms: tuple[str, ...]
    shapes: tuple[VmShape, ...]

    @property
    def unexpected(self) -> int:
        return self.count - self.expected


def stored_title(title: str) -> str:
    return title[:MAX_TITLE]


class HistoryStore:
    """An open history; use as a context manager. Every method is one transaction or one read."""

    def __init__(self, location: HistoryLocation, conn: sqlite3.Connection) -> None:
        self.location = location
        self._conn = conn

    @classmethod
    def open(cls, location: HistoryLocation, *, create: bool = True) -> HistoryStore | None:
        """Open (and with ``create`` make) the history; None if it does not exist and not ``create``.

        :raise HistoryError: locked, damaged or written by a newer soak.
        :raise UsageError: a path the user named that is a directory or not a SQLite file.
        """
        path = location.path
        if not create and not path.exists():
            return None
        with _translated(location):
            _check_file(location)
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=location.timeout_s, isolation_level=None)
            try:
                conn.execute("PRAGMA foreign_keys = ON")
                _prepare(conn, location)
            except BaseException:
                conn.close()
                raise
        return cls(location, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, facts: RunFacts, run_dir: Path) -> Outcome:
        """Add one run (idempotent: the run id is the key).

        A run already recorded whole is left as it is (only its directory is
        updated when the old one is gone); one recorded while unfinished is
        replaced by a reading that has got further.

        :raise ValueError: the facts have no run id or start (a journal that lost its first lines).
        :raise HistoryError: see `open`.
        """
        if not facts.run_id or facts.started is None:
            raise ValueError("no run-started record (its first lines are lost): the run has no id")
        directory = str(run_dir.resolve())
        with _translated(self.location), self._transaction() as conn:
            old = conn.execute("SELECT finish_reason, ended, run_dir FROM runs WHERE run_id = ?",
                               (facts.run_id,)).fetchone()
            if old is not None:
                finish_reason, ended, old_dir = old
                if finish_reason is not None or ended >= facts.ended:
                    if old_dir != directory and not Path(old_dir).exists() and run_dir.exists():
                        conn.execute("UPDATE runs SET run_dir = ? WHERE run_id = ?", (directory, facts.run_id))
                        return "moved"
                    return "unchanged"
                conn.execute("DELETE FROM sightings WHERE run_id = ?", (facts.run_id,))
                conn.execute("DELETE FROM runs WHERE run_id = ?", (facts.run_id,))
            _insert(conn, facts, directory)
            return "added" if old is None else "updated"

    def runs(self) -> list[RunRow]:
        """Every run, oldest first."""
        with _translated(self.location):
            rows = self._conn.execute(
                "SELECT run_id, profile, seed, accel, soak_version, qemu_version, started, ended, finish_reason,"
                " verdict, vm_hours, vms, boots, run_dir FROM runs ORDER BY started, run_id").fetchall()
        return [RunRow(*row) for row in rows]

    def sightings(self, titles: set[tuple[str, str]] | None = None) -> list[SightingRow]:
        """Every signature seen in every run (or only those keyed in ``titles``)."""
        query = ("SELECT s.run_id, g.kind, g.title, s.count, s.expected, s.corrupted, s.first_seen, s.last_seen,"
                 " s.evidence, s.last_evidence, s.vm_count, s.vms, s.shapes"
                 " FROM sightings s JOIN signatures g ON g.id = s.signature")
        with _translated(self.location):
            if titles is None:
                rows = self._conn.execute(query).fetchall()
            else:
                rows = []
                for kind, title in titles:
                    rows += self._conn.execute(query + " WHERE g.kind = ? AND g.title = ?",
                                               (kind, stored_title(title))).fetchall()
        return [_sighting(row) for row in rows]

    def forget_before(self, t: float) -> int:
        """Forget the runs that started before ``t`` (and signatures no run saw any more)."""
        with _translated(self.location):
            with self._transaction() as conn:
                forgotten = conn.execute("DELETE FROM runs WHERE started < ?", (t,)).rowcount
                conn.execute("DELETE FROM signatures WHERE id NOT IN (SELECT signature FROM sightings)")
            self._conn.execute("PRAGMA incremental_vacuum")
        return int(forgotten)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")  # the write lock now: no deadlock when a read upgrades
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")


def _insert(conn: sqlite3.Connection, facts: RunFacts, directory: str) -> None:
    conn.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (facts.run_id, facts.profile, facts.profile_path, facts.seed, facts.accel, facts.version,
         facts.qemu_version, facts.started, facts.ended, facts.finish_reason, facts.verdict, facts.vm_hours,
         facts.vms, facts.boots, directory, time.time()),
    )
    for sig in facts.signatures:
        title = stored_title(sig.title)
        conn.execute("INSERT OR IGNORE INTO signatures (kind, title) VALUES (?, ?)", (sig.kind, title))
        (signature,) = conn.execute("SELECT id FROM signatures WHERE kind = ? AND title = ?",
                                    (sig.kind, title)).fetchone()
        shapes = [[s.vcpus, s.memory_mib, s.machine, s.image, s.kernel] for s in sig.shapes[:MAX_VMS_KEPT]]
        conn.execute(
            "INSERT OR REPLACE INTO sightings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (facts.run_id, signature, sig.count, sig.expected, int(sig.corrupted), sig.first_seen, sig.last_seen,
             sig.evidence, sig.last_evidence, len(sig.vms), json.dumps(list(sig.vms[:MAX_VMS_KEPT])),
             json.dumps(shapes)),
        )


def _sighting(row: tuple[object, ...]) -> SightingRow:
    *head, vms, shapes = row
    vm_names = tuple(str(v) for v in json.loads(str(vms)))
    vm_shapes = tuple(VmShape(int(s[0]), int(s[1]), str(s[2]), str(s[3]), str(s[4])) for s in json.loads(str(shapes)))
    run_id, kind, title, count, expected, corrupted, first, last, evidence, last_evidence, vm_count = head
    return SightingRow(str(run_id), str(kind), str(title), int(str(count)), int(str(expected)), bool(corrupted),
                       float(str(first)), float(str(last)), str(evidence), str(last_evidence), int(str(vm_count)),
                       vm_names, vm_shapes)


def _check_file(location: HistoryLocation) -> None:
    """A directory, or a file that is not SQLite at all, is never opened (SQLite would make one)."""
    path = location.path
    if path.is_dir():
        raise _not_a_history(location, "it is a directory")
    if path.is_file() and path.stat().st_size > 0:
        with open(path, "rb") as f:
            if f.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
                raise _not_a_history(location, "it is not a SQLite database")


def _prepare(conn: sqlite3.Connection, location: HistoryLocation) -> None:
    """Check the schema, or create it in one transaction (two processes may race to)."""
    if _pragma(conn, "user_version") == 0:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes before the first table
        if _pragma(conn, "journal_mode") != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if _pragma(conn, "user_version") == 0:
                if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise _not_a_history(location, "it is another program's SQLite database")
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    version = int(str(_pragma(conn, "user_version")))
    if _pragma(conn, "application_id") != APPLICATION_ID:
        raise _not_a_history(location, "it is another program's SQLite database")
    if version > SCHEMA_VERSION:
        raise HistoryError(f"{location.path}: history schema {version} was written by a newer soak (this one "
                           f"reads schema {SCHEMA_VERSION}): upgrade soak, or use another --history")
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints, never corrupt


def _pragma(conn: sqlite3.Connection, name: str) -> object:
    row = conn.execute(f"PRAGMA {name}").fetchone()
    return row[0] if row else None


def _not_a_history(location: HistoryLocation, why: str) -> SoakError:
    message = f"{location.path}: not a soak history ({why})"
    if location.user_given:
        return UsageError(message + ": name a new file or a soak history with --history / SOAK_HISTORY")
    return HistoryError(message + ": move it aside and soak starts a new one")


@contextlib.contextmanager
def _translated(location: HistoryLocation) -> Iterator[None]:
    """SQLite's and the file system's errors, as one line that names the history (module docstring)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise _translate(location, str(exc)) from exc
    except OSError as exc:
        if location.user_given and not location.path.parent.is_dir():
            raise UsageError(f"{location.path}: cannot create the history: {exc.strerror or exc}") from exc
        raise HistoryError(f"{location.path}: cannot use the history: {exc.strerror or exc}") from exc


def _translate(location: HistoryLocation, message: str) -> SoakError:
    path = location.path
    lowered = message.lower()
    if "locked" in lowered or "busy" in lowered:
        return HistoryError(f"{path}: the history stayed locked by another writer for {location.timeout_s:g}s "
                            "(SOAK_HISTORY_TIMEOUT): try again")
    if "not a database" in lowered:
        return _not_a_history(location, "its header is not SQLite's")
    if "malformed" in lowered or "corrupt" in lowered:
        return HistoryError(f"{path}: the history is damaged ({message}): move it aside and soak starts a new "
                            f"one (`sqlite3 {path} .recover` saves what it can)")
    if "full" in lowered:
        return HistoryError(f"{path}: the disk is full: the history cannot grow ({message})")
    if "unable to open" in lowered and location.user_given:
        return UsageError(f"{path}: cannot open the history ({message})")
    return HistoryError(f"{path}: the history cannot be used: {message}")
