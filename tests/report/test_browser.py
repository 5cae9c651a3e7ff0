"""The report in a real headless Chromium: no errors, every plot drawn, console text shown as text.

Hand-written run directories cover the edge cases (a run with failures and
hostile console text, none, a VM that never beat, a run that crashed); a
real run is opened by tests/report/test_real_runs.py. Each test saves a
screenshot of the whole page as ``report.png`` in its tmp dir (pytest prints
the path; ``pytest --basetemp=DIR`` keeps them in DIR).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from soak import events as ev
from soak.report import write_report
from tests.report.browser import (
    Browser,
    assert_clean,
    chromium,
    drawn_plots,
    open_report,
    screenshot,
)
from tests.report.journals import HOSTILE, T0, steady_run, write_evidence, write_run


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as opened:
        yield opened


def test_a_run_with_failures_and_hostile_console_text(browser: Browser, tmp_path: Path) -> None:
    events = steady_run(failure_title=f"WARNING in {HOSTILE}")
    events.insert(3, ev.InfraProblem(t=T0 + 2, vm="g-0", problem="agent", message=HOSTILE))
    run = write_run(tmp_path / "run", events)
    write_evidence(run, "vms/g-1/failures/001-kernel-warning",
                   {"report.txt": f"WARNING in {HOSTILE}\n", "console-tail.log": f"login: {HOSTILE}\n"})
    report = write_report(run, statuses={("kernel-warning", f"WARNING in {HOSTILE}"): "new"})
    page = open_report(browser, report)
    assert_clean(page, report)
    plots = drawn_plots(page)
    assert set(plots) == {"timeline", "lateness", "throughput-0", "rss", "threads", "fds"}
    assert all(drawn > 0 for drawn in plots.values()), plots
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    text = page.evaluate("document.body.innerText")
    assert text.count(HOSTILE) >= 4, text  # the title, both excerpts, the soak problem: as text
    assert page.evaluate("document.querySelectorAll('script').length") == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.querySelector('#sig-1 .status').textContent") == "new"
    assert page.evaluate("document.querySelector('#timeline a').getAttribute('href')") == "#sig-1"
    screenshot(page, tmp_path)


def test_the_page_policy_stops_a_script_that_got_in(browser: Browser, tmp_path: Path) -> None:
    """The second guard: had escaping failed, the report's own policy would refuse to run the script."""
    run = write_run(tmp_path / "run", steady_run())
    report = write_report(run)
    report.write_text(report.read_text().replace("<body>", f"<body>{HOSTILE}", 1))
    page = open_report(browser, report)
    assert page.evaluate("document.querySelectorAll('script').length") == 1
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert any("Content Security Policy" in error for error in page.errors), page.errors


@pytest.mark.parametrize("case", ["no-failures", "no-heartbeats", "crashed"])
def test_edge_cases_render_without_errors(browser: Browser, tmp_path: Path, case: str) -> None:
    events = {
        "no-failures": steady_run(failures=False),
        "no-heartbeats": steady_run(beating=[]),
        "crashed": steady_run(finished=False),
    }[case]
    report = write_report(write_run(tmp_path / "run", events, tail='{"type":"hea' if case == "crashed" else ""))
    page = open_report(browser, report)
    assert_clean(page, report)
    plots = drawn_plots(page)
    expected = {"timeline", "lateness", "throughput-0", "rss", "threads", "fds"} - (
        {"lateness"} if case == "no-heartbeats" else set())
    assert set(plots) == expected and all(drawn > 0 for drawn in plots.values()), plots
    if case == "no-heartbeats":
        assert "No heartbeats recorded." in page.evaluate("document.querySelector('#heartbeats').innerText")
    screenshot(page, tmp_path)
