"""The report as one HTML document: inline CSS and SVG, no script, nothing fetched.

A Content-Security-Policy in the page itself forbids scripts and every
external load (``default-src 'none'``), so even a page that somehow carried a
``<script>`` could not run it or call anywhere; escaping (``soak.report.markup``)
is the first guard, the policy the second.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from soak import __version__
from soak.report import sections
from soak.report.markup import Markup, el, join, void
from soak.report.plots import Fleet, Plot, all_plots
from soak.report.timeline import Row, fleet_timeline
from soak.runmodel import LoadedRun, VmDetail
from soak.runmodel.detail import TIMELINE_LIMIT
from soak.runmodel.series import SERIES_BUCKETS

POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1000px;padding:0 16px 40px;color:#222}
h1{font-size:22px;margin:18px 0 8px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:4px 0}nav a{margin-right:12px}
table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;text-align:left;vertical-align:top}
table.vms td,table.vms th{border-bottom:1px solid #eee}table.facts th{color:#555;font-weight:normal}
tr.bad td{background:#fde8e8}.note,.empty{color:#666;font-style:italic}
.verdict{font-weight:bold;padding:1px 6px;border-radius:3px}.verdict.clean{background:#d9f2d9}
.verdict.failures{background:#f8d0d0}.verdict.infra-error{background:#fbe7b5}
article.signature{border-left:4px solid #e15759;padding:4px 10px;margin:10px 0;background:#fafafa}
article.signature.expected{border-color:#aaa}.kind{font-family:monospace;color:#a33}
.status{font-size:12px;padding:1px 6px;border-radius:8px;background:#eee;margin-left:6px}
.status.new{background:#e15759;color:#fff}.status.regressed{background:#f28e2b;color:#fff}
.status.flaky{background:#edc948}.status.known{background:#ccc}
pre{white-space:pre-wrap;word-break:break-all;font-size:12px;background:#f4f4f4;padding:6px;margin:4px 0}
ul.evidence{margin:4px 0;padding-left:18px}a.file{font-size:12px}
figure{margin:12px 0}figcaption{font-weight:bold;margin-bottom:4px}
svg.plot{width:100%;height:auto;display:block}
svg .grid{stroke:#e4e4e4;stroke-width:1}svg .tick{font-size:11px;fill:#666}svg .vm{font-size:11px;fill:#333}
svg .line{fill:none;stroke-width:1.5;stroke-linejoin:round}svg g.series:hover .line{stroke-width:3}
svg .booting{fill:#a6c8e8}svg .running{fill:#8cc68c}svg .fault{fill:#f28e2b;fill-opacity:.45}
svg .failure{fill:#d62728;stroke:#fff;stroke-width:.5}svg .failure.expected{fill:#888}
ul.legend{list-style:none;padding:0;margin:4px 0;display:flex;flex-wrap:wrap;gap:2px 12px;font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px;vertical-align:middle}
footer{margin-top:32px;color:#777;font-size:12px}
"""

TIMELINE_LEGEND = (("booting", "#a6c8e8"), ("up", "#8cc68c"), ("fault window", "#f8c89a"),
                   ("failure", "#d62728"), ("expected failure", "#888"))


def document(loaded: LoadedRun, run_dir: Path, *, prefix: str,
             statuses: Mapping[tuple[str, str], str] | None, generated: float | None = None) -> str:
    """The whole report (see ``soak.report``)."""
    model = loaded.model
    detail = model.detail
    if detail is None:
        raise ValueError("the report needs a model folded with detail=True")
    t0 = model.run.t if model.run else _first_time(detail.vms.values(), model.end())
    end = model.end()
    span = max(end - t0, 1.0)  # what happened, not what was planned (a run stopped early fills the axis)
    names = list(model.vms) + [name for name in detail.vms if name not in model.vms]
    fleet = Fleet([(name, detail.vms.get(name)) for name in names], t0, span)
    groups = model.failure_groups()
    timeline = fleet_timeline([Row(name, vm) for name, vm in fleet.vms], t0=t0, span_s=span, end=end,
                              anchors=sections.anchor_ids(groups))
    plots = all_plots(fleet)
    throughput = [p for p in plots if p.chart_id.startswith("throughput-")]
    leak = [p for p in plots if p.chart_id in ("rss", "threads", "fds")]
    run_id = model.run.run_id if model.run else run_dir.name
    title = f"soak report: {run_id}" + (f" ({model.run.profile})" if model.run else "")
    body = [
        el("header", el("h1", title), sections.run_facts(loaded, run_dir)),
        el("nav", (el("a", text, href=f"#{target}") for target, text in NAV)),
        _section("failures", "Failures by signature", sections.failures(model, run_dir, prefix, statuses),
                 sections.expectations(model)),
        _section("fleet", "Fleet timeline", el("figure", timeline, _legend(TIMELINE_LEGEND))),
        _section("heartbeats", "Heartbeat lateness", _figure(plots[0], "No heartbeats recorded.")),
        _section("throughput", "Throughput per VM and stressor",
                 [_figure(p, "") for p in throughput] or el("p", "No workload ran.", class_="empty")),
        _section("qemu", "QEMU process per VM (the leak view)",
                 [_figure(p, "No samples of the QEMU process.") for p in leak]),
        _section("vms", "VMs", sections.vm_table(model, detail.vms)),
        _section("problems", "Soak problems (soak's or the host's trouble, not the guests')",
                 sections.problems(model), sections.observations(model)),
        el("footer", f"Generated by soak {__version__} at {sections.utc(generated or time.time())}. "
                     f"Each plotted series keeps at most {SERIES_BUCKETS} intervals, the timeline at most "
                     f"{TIMELINE_LIMIT} boots, faults and failures per VM. Evidence links are relative to this file."),
    ]
    head = join([
        void("meta", charset="utf-8"),
        void("meta", http_equiv="Content-Security-Policy", content=POLICY),
        void("meta", name="referrer", content="no-referrer"),
        void("meta", name="viewport", content="width=device-width, initial-scale=1"),
        el("title", title),
        el("style", Markup(CSS)),
    ])
    return "<!DOCTYPE html>\n" + el("html", el("head", head), el("body", body), lang="en") + "\n"


NAV = (("failures", "Failures"), ("fleet", "Timeline"), ("heartbeats", "Lateness"),
       ("throughput", "Throughput"), ("qemu", "QEMU"), ("vms", "VMs"), ("problems", "Soak problems"))


def _section(section_id: str, heading: str, *content: Markup | Sequence[Markup] | None) -> Markup:
    return el("section", el("h2", heading), content, id=section_id)


def _figure(plot: Plot, empty_text: str) -> Markup:
    if plot.empty:
        return el("figure", el("figcaption", plot.title), el("p", empty_text or "No data.", class_="empty"),
                  class_="chart empty", data_chart=plot.chart_id)
    return el("figure", el("figcaption", plot.title), plot.svg, _legend(plot.vms), class_="chart",
              data_chart=plot.chart_id)


def _legend(items: Sequence[tuple[str, str]]) -> Markup:
    return el("ul", (el("li", el("span", class_="swatch", style=f"background:{colour}"), name)
                     for name, colour in items), class_="legend")


def _first_time(details: Iterable[VmDetail], default: float) -> float:
    """Where the time axis starts when the journal lost its run-started record: the first boot."""
    return min((b.start for d in details for b in d.boots), default=default)
