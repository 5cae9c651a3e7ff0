"""The merged summary of a run group, over run directories written with the event classes.

What a group is made of is decided from the journals' run-started records:
each shard's newest attempt counts, earlier ones are superseded but their
failures count; a shard missing, unfinished, torn or from another profile,
seed, shard count or run group makes the verdict infra-error, one line each.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from soak.cli import main
from soak.merged import load_group, summary_of_group
from soak.render import junit_xml, render_summary
from soak.rundir import find_journals
from soak.runmodel import load_run
from soak.summary import Summary, summary_of_run
from tests.summary.groups import (
    HOUR,
    LOCKUP,
    T0,
    WARN,
    shard_events,
    write_attempt,
    write_group,
    write_journal,
)


def merged(*paths: Path) -> Summary:
    return summary_of_group(load_group(find_journals(paths)))


def soak(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def text_of(summary: Summary, root: Path | None = None) -> str:
    out = io.StringIO()
    render_summary(summary, Console(file=out, width=160, highlight=False, color_system=None), root)  # output_console
    return out.getvalue()


def test_a_complete_group_is_one_run_with_hosts_and_shards(tmp_path: Path) -> None:
    root = write_group(tmp_path / "night-1", failures=[WARN])
    s = merged(root)
    assert (s.verdict, s.exit_code, s.group_problems, s.run_id, s.profile, s.seed) == (
        "failures", 1, [], "night-1", "three", 3)
    assert {vm.name: (vm.host, vm.shard) for vm in s.vms.values()} == {
        "tiny-0": ("h0", 0), "tiny-1": ("h1", 1), "tiny-2": ("h2", 2)}
    assert s.vm_hours == pytest.approx(3 * (HOUR - 5) / 3600)
    [warn] = s.failures
    assert (warn.count, warn.vms, s.hosts_of(warn)) == (3, ["tiny-0", "tiny-1", "tiny-2"], ["h0", "h1", "h2"])
    assert warn.evidence == "shard-0-of-3-attempt-0/vms/tiny-0/failures/001-kernel-warning"
    assert (root / warn.evidence).parents[3] == root / "shard-0-of-3-attempt-0"
    assert (s.started, s.finished, s.finish_reason) == (T0, T0 + HOUR, "deadline")
    assert s.metrics["vm_seconds"] == pytest.approx(s.vm_hours * 3600) and s.metrics["failures"]["kernel-warning"] == 3


def test_the_json_keeps_the_one_run_shape_and_adds_the_group(tmp_path: Path) -> None:
    root = write_group(tmp_path / "night-1", failures=[WARN])
    one = summary_of_run(load_run(root / "shard-0-of-3-attempt-0" / "journal.jsonl")).to_json()
    data = merged(root).to_json()
    assert set(data) == set(one) | {"run_group", "root", "group_problems", "shards"}
    assert set(data["vms"][0]) == set(one["vms"][0]) and {"host", "shard"} <= set(one["vms"][0])
    assert set(data["failures"][0]) == set(one["failures"][0]) and one["failures"][0]["hosts"] == ["h0"]
    assert set(data["totals"]) == set(one["totals"]) and set(data["metrics"]) == set(one["metrics"])
    assert data["root"] == str(root) and data["group_problems"] == []
    shard = data["shards"][1]
    assert {k: shard[k] for k in ("shard", "shards", "missing", "host", "finished", "verdict")} == {
        "shard": 1, "shards": 3, "missing": False, "host": "h1", "finished": True, "verdict": "failures"}
    assert shard["run_dir"] == str(root / "shard-1-of-3-attempt-0")
    [attempt] = shard["attempts"]
    assert (attempt["attempt"], attempt["superseded"], attempt["finish_reason"], attempt["vms"]) == (
        0, False, "deadline", 1)


def test_a_missing_shard(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write_attempt(root, 0)
    write_attempt(root, 2)
    s = merged(root)
    assert (s.verdict, s.exit_code) == ("infra-error", 3)
    assert s.group_problems == ["shard 1/3: missing: no journal of it among the 2 found"]
    assert s.finished is None and not s.to_json()["complete"]
    assert [sh.to_json()["missing"] for sh in s.shards or []] == [False, True, False]
    assert "missing" in text_of(s)


def test_a_newest_attempt_unfinished_and_torn_but_a_superseded_one_may_be(tmp_path: Path) -> None:
    root = write_group(tmp_path / "g")
    write_attempt(root, 1, finished=False, torn=True)  # attempt 0: a node died: fine, it was retried
    write_attempt(root, 1, attempt=1, host="h3", started=T0 + 600)
    assert merged(root).group_problems == []
    write_attempt(root, 2, finished=False, torn=True)  # the only attempt of shard 2
    where = f"shard 2/3 attempt 0 ({root / 'shard-2-of-3-attempt-0'})"
    s = merged(root)
    assert s.group_problems == [
        f"{where}: unfinished: no run-finished record (still running, or its soak died)",
        f"{where}: torn: its journal's last line is cut short (soak was killed writing it)"]
    assert s.verdict == "infra-error" and s.torn_tail


def test_a_superseded_attempt_is_shown_and_its_failures_counted(tmp_path: Path) -> None:
    root = write_group(tmp_path / "g")
    write_attempt(root, 1, failures=[LOCKUP], infra=["channel"], finished=False)
    write_attempt(root, 1, attempt=1, host="h3", started=T0 + 600)
    s = merged(root)
    assert (s.verdict, s.group_problems, s.infra_total) == ("failures", [], 0)  # its soak problem: retried
    assert s.vms["tiny-1"].host == "h3" and len(s.vms) == 3
    [lockup] = s.failures
    assert (lockup.vms, s.hosts_of(lockup), s.spread[("soft-lockup", LOCKUP[1])].superseded) == (
        ["tiny-1"], ["h1"], 1)
    assert lockup.evidence.startswith("shard-1-of-3-attempt-0/")
    lost, retried = (s.shards or [])[1].attempts
    assert (lost.superseded, lost.host, lost.finished, lost.unexpected_failures) == (True, "h1", None, 1)
    assert (retried.superseded, retried.host, retried.finish_reason) == (False, "h3", "deadline")
    assert s.vm_hours == pytest.approx(3 * (HOUR - 5) / 3600)  # the counted attempts' VM-hours
    text = text_of(s)
    assert "superseded" in text and "(1 in superseded attempts)" in text and "h1" in text

    suite = ET.fromstring(junit_xml(s))
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert suite.get("failures") == "1" and cases["tiny-1"].find("failure") is not None
    assert {p.get("name"): p.get("value") for p in cases["tiny-1"].iter("property")} == {"host": "h3", "shard": "1"}


def test_a_superseded_attempt_whose_soak_crashed_does_not_fail_the_group(tmp_path: Path) -> None:
    root = write_group(tmp_path / "g")
    write_attempt(root, 0, reason="error")
    write_attempt(root, 0, attempt=1, started=T0 + 60)
    assert merged(root).verdict == "clean"
    write_attempt(root, 0, attempt=1, started=T0 + 60, reason="error")  # the newest crashed: nothing to trust
    assert merged(root).verdict == "infra-error"


@pytest.mark.parametrize(("change", "line"), [
    ({"seed": 4}, "another seed (4; the group's is 3)"),
    ({"profile_hash": "ffffffffffffffff", "profile": "wide"},
     "another profile (wide, hash ffffffffffffffff; the group's is three, hash 0123456789abcdef)"),
    ({"run_group": "night-2"}, "another run group (night-2; the group's is night-1)"),
])
def test_a_mismatched_journal_is_named(tmp_path: Path, change: dict[str, object], line: str) -> None:
    root = write_group(tmp_path / "g")
    write_attempt(root, 2, **change)
    s = merged(root)
    assert s.group_problems == [f"shard 2/3 attempt 0 ({root / 'shard-2-of-3-attempt-0'}): {line}"]
    assert (s.verdict, s.exit_code, s.seed, s.run_group) == ("infra-error", 3, 3, "night-1")


def test_another_shard_count_is_named_and_leaves_its_shard_missing(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write_attempt(root, 0)
    write_attempt(root, 1)
    write_attempt(root, 2, shards=4)
    s = merged(root)
    assert s.group_problems == [
        "shard 2/3: missing: no journal of it among the 3 found",
        f"shard 2/4 attempt 0 ({root / 'shard-2-of-4-attempt-0'}): another shard count (4; the group's is 3)"]


def test_two_seeds_half_and_half_name_the_later_journal(tmp_path: Path) -> None:
    first = write_attempt(tmp_path / "g", 0, shards=2)
    second = write_attempt(tmp_path / "g", 1, shards=2, seed=9)
    s = merged(first, second)
    assert s.seed == 3 and s.group_problems == [f"shard 1/2 attempt 0 ({second}): another seed (9; the group's is 3)"]
    s = merged(second, first)  # a tie: the order given decides
    assert s.seed == 9 and s.group_problems == [f"shard 0/2 attempt 0 ({first}): another seed (3; the group's is 9)"]


def test_a_journal_without_its_run_started_record(tmp_path: Path) -> None:
    root = write_group(tmp_path / "g")
    write_journal(root / "stray", shard_events(1)[1:])  # its first lines lost
    s = merged(root)
    assert s.group_problems == [f"{root / 'stray'}: unplaced: its journal has no run-started record (its first "
                                "lines were lost), so which shard it is cannot be told"]
    assert [sh.shard for sh in s.shards or []] == [0, 1, 2, None]


def test_an_attempt_number_repeated_by_the_engine_counts_the_later_start(tmp_path: Path) -> None:
    root = write_group(tmp_path / "g")
    write_journal(root / "shard-1-of-3-attempt-0-2", shard_events(1, host="h5", started=T0 + 300))
    s = merged(root)
    assert s.group_problems == [] and s.vms["tiny-1"].host == "h5"
    assert [a.label for a in (s.shards or [])[1].attempts] == ["shard 1/3 attempt 0", "shard 1/3 attempt 0 (2)"]


def test_group_problems_are_junit_errors(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write_attempt(root, 0)
    suite = ET.fromstring(junit_xml(merged(root)))
    [case] = [c for c in suite.iter("testcase") if c.get("name") == "run-group"]
    assert [e.get("message") for e in case.iter("error")] == [
        "shard 1/3: missing: no journal of it among the 1 found", "shard 2/3: missing: no journal of it among the 1 found"]
    assert suite.get("errors") == "2" and suite.get("tests") == "2"


def test_the_cli_takes_a_folder_its_parent_or_the_run_directories(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_group(tmp_path / "runs" / "three-night-1", failures=[WARN])
    dirs = sorted(root.iterdir())
    code, by_folder, _ = soak(capsys, "summary", root, "--json", "--no-history")
    assert code == 1 and json.loads(by_folder)["run_group"] == "night-1"
    code, by_parent, _ = soak(capsys, "summary", tmp_path / "runs", "--json", "--no-history")
    assert code == 1 and json.loads(by_parent)["vms"] == json.loads(by_folder)["vms"]
    assert json.loads(by_parent)["failures"][0]["evidence"].startswith("three-night-1/shard-0-of-3-attempt-0/")
    code, by_dirs, _ = soak(capsys, "summary", *dirs, "--json", "--no-history")
    assert code == 1 and json.loads(by_dirs) == json.loads(by_folder)
    code, text, _ = soak(capsys, "summary", *dirs[:2], "--no-history")
    assert code == 3 and "shard 2/3: missing" in text and "Verdict: infra-error (exit code 3)" in text


def test_one_run_directory_is_summarized_as_before(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_attempt(tmp_path, 0, failures=[WARN])
    code, text, _ = soak(capsys, "summary", run, "--no-history")
    assert code == 1 and text == text_of(summary_of_run(load_run(run / "journal.jsonl")), run)
    assert "run group" not in text and "Fleet by host" not in text


def test_bad_paths_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_group(tmp_path / "g")
    (tmp_path / "empty").mkdir()
    code, _, err = soak(capsys, "summary", tmp_path / "g", tmp_path / "nowhere")
    assert code == 2 and err.strip() == f"UsageError: {tmp_path / 'nowhere'}: no such file or directory"
    code, _, err = soak(capsys, "summary", tmp_path / "empty")
    assert code == 2 and "no journal.jsonl here or below" in err and "Traceback" not in err


def test_statuses_rate_the_group_as_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOAK_HISTORY", str(tmp_path / "history.db"))
    day = 86400.0
    last_night = write_group(tmp_path / "night-0", run_group="night-0", failures=[WARN])
    tonight = write_group(tmp_path / "night-1", started=T0 + day)
    write_attempt(tonight, 0, started=T0 + day, failures=[WARN])
    # superseded; its id sorts before the group's, and it started with the group: only left out, is it not "before"
    write_attempt(tonight, 1, started=T0 + day, failures=[LOCKUP], finished=False, run_id="a-lost")
    write_attempt(tonight, 1, attempt=1, started=T0 + day + 600)
    # Every shard attempt of both nights is in the history, as each `soak run` records itself.
    code, out, _ = soak(capsys, "history", "import", *sorted(last_night.iterdir()), *sorted(tonight.iterdir()))
    assert code == 0 and out.count("added") == 7, out
    code, out, _ = soak(capsys, "summary", tonight, "--json")
    data = json.loads(out)
    assert {f["title"]: f["status"] for f in data["failures"]} == {WARN[1]: "known", LOCKUP[1]: "new"}
    assert code == 1
    code, out, _ = soak(capsys, "summary", tonight, "--json", "--fail-on", "new")
    assert code == 1 and json.loads(out)["exit_code"] == 1  # the new lockup, from a superseded attempt
    write_attempt(tonight, 1, started=T0 + day, finished=False, run_id="a-lost")  # no lockup: only the known warning
    code, text, _ = soak(capsys, "summary", tonight, "--fail-on", "new")
    assert code == 0 and "no new or regressed failure" in text
