"""soak report from hand-written run directories: content, escaping, links, edge cases, bounds, CLI."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

import pytest

from soak import events as ev
from soak.cli import main
from soak.kinds import Kind
from soak.report import build_report, load_for_report, write_report
from soak.report.axes import elapsed, time_ticks, value_ticks
from soak.report.markup import Markup, el, esc
from soak.report.svg import Line, line_chart
from soak.report.timeline import MERGE_PX, Row, fleet_timeline
from soak.runmodel import replay
from soak.runmodel.series import SERIES_BUCKETS
from tests.report.journals import (
    HOSTILE,
    T0,
    beat,
    info,
    sample,
    started,
    steady_run,
    write_evidence,
    write_run,
)

EVIDENCE = "vms/g-1/failures/001-kernel-warning"
SVG = "{http://www.w3.org/2000/svg}"


def report_of(run_dir: Path, **kwargs: object) -> str:
    return build_report(load_for_report(run_dir), run_dir, **kwargs)  # type: ignore[arg-type]


def plots(html: str) -> dict[str, tuple[int, int]]:
    """Chart id -> (lines, points) of every SVG plot in the page."""
    return {m["id"]: (int(m["lines"]), int(m["points"])) for m in re.finditer(
        r'<svg[^>]* id="(?P<id>[^"]+)"[^>]* data-lines="(?P<lines>\d+)" data-points="(?P<points>\d+)"', html)}


@pytest.fixture
def steady(tmp_path: Path) -> Path:
    run = write_run(tmp_path / "run", steady_run())
    write_evidence(run, EVIDENCE, {"report.txt": "WARNING: CPU: 0 PID: 1 at foo_bar\n", "console-tail.log": "boot\nok\n"})
    return run


def test_text_is_escaped_by_construction() -> None:
    page = el("p", "<b>x</b> & \x1b[31mred", title='a "quote"')
    assert page == '<p title="a &quot;quote&quot;">&lt;b&gt;x&lt;/b&gt; &amp; \\x1b[31mred</p>'
    assert el("div", Markup("<b>ours</b>"), None, ["<i>", [None, "theirs"]]) == "<div><b>ours</b>&lt;i&gt;theirs</div>"
    assert esc("line\r\nnext\x00") == "line\nnext\\x00"


def test_axes_are_round_and_cover_the_data() -> None:
    assert value_ticks(0, 7.3) == [0, 2, 4, 6, 8]
    assert value_ticks(0.0031, 0.0412) == [0.0, 0.01, 0.02, 0.03, 0.04, 0.05]
    ticks = value_ticks(180 << 20, 300 << 20, binary=True)  # MiB steps, not 95.4 MiB
    assert ticks[0] <= 180 << 20 and ticks[-1] >= 300 << 20 and all(t % (1 << 20) == 0 for t in ticks)
    assert time_ticks(100) == [0, 15, 30, 45, 60, 75, 90]
    assert time_ticks(3 * 86400)[1] == 12 * 3600
    assert [elapsed(s) for s in (0, 45, 720, 5400, 2 * 86400 + 6 * 3600)] == ["0", "45s", "12m", "1h30m", "2d6h"]


def test_a_line_breaks_where_the_vm_was_down_and_shows_lone_points() -> None:
    lines = [Line("a", "#000", [(0, 1), (60, 2), (120, 3), (1000, 4)], gap_s=180),
             Line("b", "#111", [(500, 2)])]
    svg = ET.fromstring(line_chart("x", "t", lines, span_s=1200, fmt=str))
    assert (svg.get("data-lines"), svg.get("data-points")) == ("2", "5")
    paths = [p.get("d") for p in svg.iter(f"{SVG}path")]
    assert len(paths) == 1 and paths[0] is not None and paths[0].count("M") == 1  # 1000 s stands alone
    assert len(list(svg.iter(f"{SVG}circle"))) == 5  # few points: each is a dot
    assert [t.text for t in svg.iter(f"{SVG}title")] == ["t", "a", "b"]


def test_flat_stretches_cost_two_points() -> None:
    flat = [(float(t), 9.0) for t in range(0, 6000, 60)] + [(6000.0, 10.0)]
    svg = ET.fromstring(line_chart("x", "t", [Line("a", "#000", flat, gap_s=180)], span_s=6000, fmt=str))
    [path] = [p.get("d") or "" for p in svg.iter(f"{SVG}path")]
    assert len(re.findall(r"[\d.]+ [\d.]+", path)) == 3, path  # start, end of the flat, the step up


def test_a_dense_timeline_is_merged_to_a_bounded_number_of_marks() -> None:
    """A week of faults every 90 s and failures every 10 minutes: marks per row bounded by pixels."""
    events: list[ev.Event] = [started([info("g-0")], duration_s=7 * 86400)]
    for i in range(7 * 960):
        t = T0 + i * 90
        events.append(ev.FaultInjected(t=t, vm="g-0", fault="pause", seq=i, duration_s=5))
        if i % 7 == 0:
            events.append(ev.Failure(t=t + 1, vm="g-0", kind=Kind.KERNEL_WARNING, title=f"WARNING in f{i % 13}",
                                     boot=1, detected_by="console"))
    model = replay(events, detail=True)
    assert model.detail is not None
    svg = fleet_timeline([Row("g-0", model.detail.vms["g-0"])], t0=T0, span_s=7 * 86400, end=T0 + 7 * 86400,
                         anchors={})
    root = ET.fromstring(svg)
    assert len([r for r in root.iter(f"{SVG}rect") if r.get("class") == "fault"]) == 1  # one band
    markers = [p for p in root.iter(f"{SVG}path") if "failure" in (p.get("class") or "")]
    assert 100 < len(markers) <= 960 / MERGE_PX
    assert "x" in "".join(t.text or "" for t in root.iter(f"{SVG}title"))  # "WARNING in f3 x2"


def test_a_complete_run_has_every_section_and_plot(steady: Path) -> None:
    html = report_of(steady)
    for section in ("failures", "fleet", "heartbeats", "throughput", "qemu", "vms", "problems"):
        assert f'<section id="{section}">' in html
    assert plots(html) == {"timeline": (2, plots(html)["timeline"][1]), "lateness": (2, 18), "throughput-0": (2, 18),
                           "rss": (2, 18), "threads": (2, 18), "fds": (2, 18)}
    assert plots(html)["timeline"][1] >= 2 + 2 + 1 + 1  # booting and up per VM, a fault, a failure
    assert 'id="sig-1"' in html and 'href="#sig-1"' in html  # the timeline's marker links to the signature
    assert f'href="{EVIDENCE}/"' in html and f'href="{EVIDENCE}/report.txt"' in html
    assert "WARNING: CPU: 0 PID: 1 at foo_bar" in html
    assert "No run history was consulted" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing to fetch
    assert "<script" not in html.lower() and "default-src &#x27;none&#x27;" in html


def test_history_statuses_are_shown(steady: Path) -> None:
    html = report_of(steady, statuses={("kernel-warning", "WARNING in foo_bar"): "new"})
    assert '<span class="status new">new</span>' in html and "No run history" not in html


def test_console_text_titles_and_messages_are_shown_never_run(tmp_path: Path) -> None:
    events = steady_run(failure_title=f"WARNING in {HOSTILE}")
    events.insert(3, ev.InfraProblem(t=T0 + 2, vm="g-0", problem="agent", message=f"agent said {HOSTILE}"))
    events.insert(4, ev.Observation(t=T0 + 3, vm="g-0", topic="console-flood", message=f"floods {HOSTILE}"))
    run = write_run(tmp_path / "run", events)
    write_evidence(run, EVIDENCE, {"report.txt": f"WARNING in {HOSTILE}\n",
                                   "console-tail.log": f"\x1b[31m{HOSTILE}\x1b[0m\n"})
    html = report_of(run)
    assert "<script" not in html.lower()
    escaped = "&lt;script&gt;window.__pwned = 1&lt;/script&gt;"
    assert html.count(escaped) >= 6  # title (table, timeline tooltip), report, console, problem, observation
    assert "\\x1b[31m" in html


def test_untrusted_evidence_paths_are_not_linked_or_read(tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "report.txt").write_text("the host's secret")
    events = steady_run()
    for i, path in enumerate(("javascript:alert(1)", "../secret", "/etc", "vms/g-0/failures/002-x")):
        events.append(ev.Failure(t=T0 + 400 + i, vm="g-0", kind=Kind.KERNEL_OOPS, title=f"oops {i}", boot=1,
                                 detected_by="console", evidence=path))
    run = write_run(tmp_path / "run", events)
    write_evidence(run, EVIDENCE, {})
    (run / "vms/g-0/failures").mkdir(parents=True)
    os.symlink(outside, run / "vms/g-0/failures/002-x")  # a folder that leads out of the run
    html = report_of(run)
    assert "javascript:" not in re.sub(r">[^<]*<", "><", html)  # only as text, never in an attribute
    assert 'href="javascript%3Aalert%281%29/"' in html  # a harmless relative name
    assert 'href="../secret' not in html and 'href="/etc' not in html
    assert html.count("not a path inside the run directory") == 2
    assert "the host's secret" not in html


def test_links_work_from_where_the_report_is_written(steady: Path, tmp_path: Path) -> None:
    output = tmp_path / "artifacts" / "nightly" / "report.html"
    output.parent.mkdir(parents=True)
    assert write_report(steady, output) == output
    html = output.read_text()
    hrefs = [unquote(h) for h in re.findall(r'href="([^"#][^"]*)"', html)]
    assert hrefs and all(h.startswith("../../run/") for h in hrefs)
    assert all((output.parent / h).exists() for h in hrefs)
    assert write_report(steady) == steady / "report.html"
    assert f'href="{EVIDENCE}/"' in (steady / "report.html").read_text()


def test_what_the_run_could_not_keep_is_said(tmp_path: Path) -> None:
    events = steady_run()
    events[3:3] = [ev.JournalDropped(t=T0 + 5, dropped=1234),
                   ev.ConsoleDropped(t=T0 + 6, vm="g-0", boot=1, dropped_bytes=3 << 20, kept_bytes=1 << 20,
                                    limit_bytes=1 << 20),
                   ev.Failure(t=T0 + 301, vm="g-1", kind=Kind.KERNEL_WARNING, title="WARNING in foo_bar", boot=1,
                              detected_by="console", evidence="")]  # a repeat past evidence_per_signature
    html = report_of(write_run(tmp_path / "run", events))
    assert "1234 sampled records dropped" in html and "3 MiB not kept on 1 VMs" in html
    assert "2 times, 1 without an evidence folder" in html


def test_a_run_without_failures(tmp_path: Path) -> None:
    html = report_of(write_run(tmp_path / "run", steady_run(failures=False)))
    assert "No failures." in html and "<article" not in html
    assert '<span class="verdict clean">clean</span>' in html


def test_vms_without_heartbeats(tmp_path: Path) -> None:
    html = report_of(write_run(tmp_path / "one", steady_run(beating=["g-0"])))
    assert plots(html)["lateness"] == (1, 9)
    html = report_of(write_run(tmp_path / "none", steady_run(beating=[])))
    assert "lateness" not in plots(html) and "No heartbeats recorded." in html
    assert "rss" in plots(html)  # the other plots are unaffected


def test_a_run_that_crashed(tmp_path: Path) -> None:
    """soak was killed mid-run: no run-finished record, a torn last line, boots still open."""
    run = write_run(tmp_path / "run", steady_run(finished=False), tail='{"type":"heartbeat","t":18')
    html = report_of(run)
    assert "did not finish" in html and "torn last line" in html
    assert plots(html)["rss"] == (2, 18)
    headless = write_run(tmp_path / "headless", steady_run()[1:])  # its run-started record was lost
    html = report_of(headless)
    assert "(no run-started record)" in html and "timeline" in plots(html)


def test_a_week_long_run_stays_small(tmp_path: Path) -> None:
    """Two VMs, a week, one figure a minute, restarts and failures: every plot within its bound."""
    events: list[ev.Event] = [started([info("g-0"), info("g-1", 2)], duration_s=7 * 86400)]
    for minute in range(7 * 1440):
        t = T0 + minute * 60
        for vm in ("g-0", "g-1"):
            if minute % 360 == 0:
                events += [ev.VmStarting(t=t, vm=vm, boot=minute // 360 + 1, pid=1, argv=[]),
                           ev.VmReady(t=t + 10, vm=vm, boot=minute // 360 + 1, boot_s=10)]
            events += [beat(t + 30, vm), sample(t + 30, vm, rss=(300 << 20) + minute)]
            if minute % 60 == 59:
                events.append(ev.Failure(t=t + 40, vm=vm, kind=Kind.KERNEL_WARNING, title=f"WARNING in f{minute}",
                                         boot=1, detected_by="console"))
    html = report_of(write_run(tmp_path / "run", events))
    found = plots(html)
    assert all(points <= 2 * SERIES_BUCKETS for chart, (_, points) in found.items() if chart != "timeline")
    assert len(html) < 400_000, len(html)


def test_cli_report_and_its_errors(steady: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["report", str(steady)])
    assert capsys.readouterr().out.strip() == str(steady / "report.html")
    for argv in (["report", str(tmp_path / "nothing")], ["report", str(steady), "-o", str(tmp_path / "no/such.html")]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.startswith("UsageError:") and len(err.strip().splitlines()) == 1, err


def test_cli_report_rates_failures_against_the_history(steady: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    history = tmp_path / "history.db"
    main(["report", str(steady), "--history", str(history)])  # an empty history: everything is new
    html = (steady / "report.html").read_text()
    assert '<span class="status new">new</span>' in html
    main(["report", str(steady), "--no-history"])
    assert "No run history was consulted" in (steady / "report.html").read_text()
    capsys.readouterr()
