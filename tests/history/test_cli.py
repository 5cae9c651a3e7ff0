"""The commands: soak history (and its JSON contract), soak summary's statuses, --fail-on, prune-runs."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from soak import events as ev
from soak.cli import main
from soak.kinds import Kind
from tests.history.journals import CRASH, DAY, LOCKUP, T0, WARN, write_run

REAL_JOURNAL = Path(__file__).parents[1] / "unit" / "data" / "real-run-journal.jsonl"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The history the commands use, by $SOAK_HISTORY (the default location is never touched)."""
    path = tmp_path / "history.db"
    monkeypatch.setenv("SOAK_HISTORY", str(path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return path


def soak(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def nights(root: Path, plan: list[list[tuple[Kind, str]]], **kwargs: object) -> list[Path]:
    return [write_run(root, f"n{i}", started=T0 + i * DAY, failures=f, **kwargs) for i, f in enumerate(plan)]


def test_history_json_contract(tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = nights(tmp_path / "runs", [[WARN], [], [WARN, LOCKUP], [], [], [], [WARN]])
    runs.append(write_run(tmp_path / "runs", "other", started=T0 + 2.5 * DAY, profile="wide", failures=[CRASH]))
    code, out, _ = soak(capsys, "history", "import", *map(str, runs))
    assert code == 0 and out.count("added") == 8
    code, out, _ = soak(capsys, "history", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["runs"] == 8 and data["policy"] == {"regressed_after": 3, "flaky_window": 10}
    by_title = {s["title"]: s for s in data["signatures"]}
    for s in data["signatures"]:
        assert {"kind", "title", "status", "runs_seen", "runs_total", "first_seen", "last_seen"} <= set(s)
    warn = by_title[WARN[1]]
    assert (warn["kind"], warn["status"], warn["runs_seen"], warn["runs_total"]) == ("kernel-warning", "regressed", 3, 7)
    assert warn["first_seen"] == T0 + 60 and warn["last_seen"] == T0 + 6 * DAY + 60
    assert warn["vcpus"] == [1] and warn["memory_mib"] == [256] and warn["kernels"] == ["6.1.0-cloud"]
    assert warn["qemu_versions"] == ["7.2.0"] and warn["accels"] == ["tcg"] and warn["vms"] == ["g-0"]
    assert warn["rate_per_vm_hour"] == pytest.approx(3 / warn["vm_hours"]) and warn["vm_hours"] > 20
    assert warn["last_evidence"] == str(runs[6].resolve() / "vms/g-0/failures/001-kernel-warning")
    assert warn["last_evidence_exists"] is False  # the test journals leave no evidence folders
    crash = by_title[CRASH[1]]
    assert (crash["status"], crash["runs_seen"], crash["runs_total"], crash["profiles"]) == ("new", 1, 1, ["wide"])
    assert [s["status"] for s in data["signatures"]] == ["new", "new", "regressed"]  # most alarming first

    code, out, _ = soak(capsys, "history", "--json", "--profile", "nightly", "--kind", "soft-lockup")
    assert [s["title"] for s in json.loads(out)["signatures"]] == [LOCKUP[1]]
    code, out, _ = soak(capsys, "history", "--json", "--since", "3d")  # T0 is long ago
    assert json.loads(out)["signatures"] == [] and json.loads(out)["runs"] == 0
    code, out, _ = soak(capsys, "history", "--json", "--since", "2025-10-12")
    assert 0 < json.loads(out)["runs"] < 8
    code, _, err = soak(capsys, "history", "--kind", "kernel-wobble")
    assert code == 2 and "no such failure kind" in err

    code, out, _ = soak(capsys, "history")
    assert code == 0 and "WARNING in foo" in out and "regressed" in out and "3/7" in out
    code, out, _ = soak(capsys, "history", "runs", "--json")
    listed = json.loads(out)["runs"]
    assert [r["statuses"] for r in listed][:3] == [{"new": 1}, {}, {"known": 1, "new": 1}]
    code, out, _ = soak(capsys, "history", "runs")
    assert code == 0 and "n6" in out


def test_no_history_yet(tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = soak(capsys, "history")
    assert code == 0 and "no history at" in out
    code, out, _ = soak(capsys, "history", "--json")
    assert json.loads(out)["signatures"] == [] and json.loads(out)["exists"] is False
    run = write_run(tmp_path, "r", started=T0, failures=[WARN])
    code, out, _ = soak(capsys, "summary", str(run), "--json")
    assert code == 1 and json.loads(out)["failures"][0]["status"] == "new"  # as if it were recorded
    assert not db.exists()  # reading never creates a history


def test_summary_statuses_and_fail_on_new(tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = nights(tmp_path / "runs", [[WARN], [WARN], [], [], [], [WARN], [WARN, LOCKUP]])
    soak(capsys, "history", "import", *map(str, runs[:-1]))

    def summary(run: Path, *args: str) -> tuple[int, dict[str, object]]:
        code, out, _ = soak(capsys, "summary", str(run), "--json", *args)
        return code, json.loads(out)

    code, data = summary(runs[1], "--fail-on", "new")
    assert code == 0 and data["exit_code"] == 0 and data["verdict"] == "failures" and data["fail_on"] == "new"
    assert [f["status"] for f in data["failures"]] == ["known"]  # type: ignore[attr-defined]
    assert summary(runs[1])[0] == 1  # --fail-on any (the default): exit codes as before
    code, data = summary(runs[5], "--fail-on", "new")
    assert code == 1 and [f["status"] for f in data["failures"]] == ["regressed"]  # type: ignore[attr-defined]
    code, data = summary(runs[6], "--fail-on", "new")  # not recorded yet: rated as if it were
    assert code == 1 and {f["title"]: f["status"] for f in data["failures"]} == {  # type: ignore[attr-defined]
        WARN[1]: "known", LOCKUP[1]: "new"}
    code, data = summary(runs[6], "--no-history")
    assert code == 1 and [f["status"] for f in data["failures"]] == [None, None]  # type: ignore[attr-defined]
    code, _, err = soak(capsys, "summary", str(runs[6]), "--no-history", "--fail-on", "new")
    assert code == 2 and "--fail-on new needs the history" in err

    code, out, _ = soak(capsys, "summary", str(runs[1]), "--fail-on", "new")
    assert code == 0 and "known" in out and "exit code 0; --fail-on new: no new or regressed failure" in out
    code, out, _ = soak(capsys, "summary", str(runs[2]), "--fail-on", "new")
    assert code == 0 and "Verdict: clean (exit code 0)" in out


def test_fail_on_new_keeps_other_exit_codes(tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A soak error stays 3, a missed self-test expectation stays 1, whatever the statuses."""
    crashed = write_run(tmp_path, "crashed", started=T0, failures=[WARN])
    journal = crashed / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    finished = json.loads(lines[-1]) | {"reason": "error", "verdict": "infra-error"}
    journal.write_text("".join(lines[:-1]) + json.dumps(finished) + "\n")
    soak(capsys, "history", "import", str(write_run(tmp_path, "before", started=T0 - DAY, failures=[WARN])))
    assert soak(capsys, "summary", str(crashed), "--fail-on", "new")[0] == 3

    selftest = tmp_path / "selftest"
    selftest.mkdir()
    info = ev.VmInfo(name="s-0", group="s", vcpus=1, memory_mib=256, machine="pc", image="i",
                     expect=["kernel-panic"], expect_within_s=30)
    events: list[ev.Event] = [
        ev.RunStarted(t=T0, run_id="self", profile="selftest", profile_path="p", seed=1, accel="tcg", accel_reason="",
                      version="0", duration_s=60, command=[], vms=[info]),
        ev.VmStarting(t=T0 + 1, vm="s-0", boot=1, pid=1, argv=[]),
        ev.VmReady(t=T0 + 2, vm="s-0", boot=1, boot_s=1.0),
        ev.RunFinished(t=T0 + 60, reason="deadline", verdict="failures", failures=0, infra_problems=0)]
    journal = selftest / "journal.jsonl"
    journal.write_text("".join(json.dumps(ev.to_record(e)) + "\n" for e in events))
    assert soak(capsys, "summary", str(selftest), "--fail-on", "new")[0] == 1


def test_a_real_runs_expected_failure(tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The journal of a real 100 s run: its declared qemu-crash is `expected`, and fails nothing."""
    run = tmp_path / "real"
    run.mkdir()
    shutil.copy(REAL_JOURNAL, run / "journal.jsonl")
    code, out, _ = soak(capsys, "history", "import", str(run))
    assert code == 0 and "f39a76bb0c50" in out
    code, out, _ = soak(capsys, "summary", str(run), "--json", "--fail-on", "new")
    data = json.loads(out)
    assert code == 0 and [(f["kind"], f["status"]) for f in data["failures"]] == [("qemu-crash", "expected")]
    code, out, _ = soak(capsys, "history", "--json")
    assert json.loads(out)["signatures"] == []  # nothing ever failed unexpectedly


def test_bad_history_paths_and_numbers(tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, "r", started=T0, failures=[WARN])
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n" * 100)
    code, _, err = soak(capsys, "history", "--history", str(notes))
    assert code == 2 and err.startswith("UsageError: ") and "not a soak history" in err
    code, _, err = soak(capsys, "history", "import", str(run), "--history", str(tmp_path))
    assert code == 2 and "it is a directory" in err
    # soak summary: a history it cannot use costs the statuses, never the summary or its exit code
    code, out, err = soak(capsys, "summary", str(run), "--history", str(notes), "--json")
    assert code == 1 and json.loads(out)["failures"][0]["status"] is None and "warning: no statuses" in err
    code, _, err = soak(capsys, "summary", str(run), "--history", str(notes), "--fail-on", "new")
    assert code == 2 and "not a soak history" in err
    code, _, err = soak(capsys, "summary", str(run), "--regressed-after", "20")
    assert code == 2 and "regressed-after" in err
    code, _, err = soak(capsys, "history", "--since", "last tuesday")
    assert code == 2 and "--since" in err
    code, out, _ = soak(capsys, "history", "import", str(run), str(tmp_path / "nope"))
    assert code == 2 and "added" in out and "skipped" in out and "nope: no such file or directory" in out


def test_prune_runs_keeps_failures_longer_and_never_touches_a_running_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "runs"
    now = time.time()
    ages = {"clean-old": 19, "clean-new": 4, "failed-mid": 39, "failed-old": 99, "crashed": 99, "running": 29}
    write_run(root, "clean-old", started=now - 20 * DAY)
    write_run(root, "clean-new", started=now - 5 * DAY)
    write_run(root, "failed-mid", started=now - 40 * DAY, failures=[WARN])
    write_run(root, "failed-old", started=now - 100 * DAY, failures=[WARN])
    write_run(root, "crashed", started=now - 100 * DAY, finished=False)
    write_run(root, "running", started=now - 30 * DAY, finished=False, hours=24 * 40)  # a quiet 40-day soak
    write_run(root, "quiet", started=now - 30 * DAY, finished=False)  # no summary, journal written just now
    (root / "not-a-run").mkdir()
    for name, days in ages.items():
        os.utime(root / name / "journal.jsonl", (now - days * DAY, now - days * DAY))
    code, out, _ = soak(capsys, "history", "prune-runs", str(root), "--dry-run", "--json")
    assert code == 0
    fates = {Path(r["path"]).name: (r["verdict"], r["action"]) for r in json.loads(out)["runs"]}
    assert fates == {
        "clean-old": ("clean", "delete"), "clean-new": ("clean", "keep"),
        "failed-mid": ("failures", "keep"), "failed-old": ("failures", "delete"),
        "crashed": ("unfinished", "delete"), "running": ("unfinished", "running"), "quiet": ("unfinished", "running"),
    }
    assert all((root / name).exists() for name in ages)  # a dry run
    code, out, _ = soak(capsys, "history", "prune-runs", str(root), "--keep-clean", "14d", "--keep-failed", "90d")
    assert code == 0 and "deleted" in out
    assert sorted(p.name for p in root.iterdir()) == ["clean-new", "failed-mid", "not-a-run", "quiet", "running"]
    code, _, err = soak(capsys, "history", "prune-runs", str(root), "--keep-clean", "30d", "--keep-failed", "7d")
    assert code == 2 and "at least as long" in err


def test_which_history_and_prune(tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--history after `history` or after the subcommand beats $SOAK_HISTORY; prune forgets old runs."""
    now = time.time()
    runs = [write_run(tmp_path / "runs", f"r{i}", started=now - (400 - i * 100) * DAY, failures=[WARN])
            for i in range(4)]
    other = tmp_path / "other.db"
    assert soak(capsys, "history", "--history", str(other), "import", *map(str, runs))[0] == 0
    assert other.exists() and not db.exists()
    code, out, _ = soak(capsys, "history", "prune", "--keep", "365d", "--history", str(other))
    assert code == 0 and out.startswith("forgot 1 runs")
    code, out, _ = soak(capsys, "history", "--history", str(other), "runs", "--json")
    assert [r["run_id"] for r in json.loads(out)["runs"]] == ["r1", "r2", "r3"]
    code, out, _ = soak(capsys, "history", "--history", str(other), "--json")
    [signature] = json.loads(out)["signatures"]
    assert signature["runs_seen"] == 3 and signature["status"] == "known"
    code, _, err = soak(capsys, "history", "prune", "--keep", "forever")
    assert code == 2 and "--keep" in err
