"""The report's text sections: the run's facts, failures by signature, VMs, soak problems.

Every value shown comes from the run model (``soak.runmodel``); text from the
run (titles, VM names, messages, evidence) is plain `str` and escaped by
``soak.report.markup``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from soak.report import evidence
from soak.report.axes import elapsed, plain, size_bytes
from soak.report.markup import Markup, el
from soak.runmodel import FailureGroup, LoadedRun, RunModel, VmDetail, verdict_facts

STATUSES = ("new", "known", "regressed", "flaky")
"""History statuses with a style of their own (others are shown as they come)."""
MAX_VMS_NAMED = 12
"""VMs listed by name under a signature; the rest are counted."""


def utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def anchor_ids(groups: Sequence[FailureGroup]) -> dict[tuple[str, str], str]:
    """The id of each signature's entry (the timeline's markers link to them)."""
    return {(g.kind, g.title): f"sig-{i + 1}" for i, g in enumerate(groups)}


def run_facts(loaded: LoadedRun, run_dir: Path) -> Markup:
    model = loaded.model
    run = model.run
    facts = verdict_facts(model)
    if model.finished is not None:
        ending = f"finished ({model.finished.reason})"
    else:
        ending = "did not finish: still running, or soak was killed (the journal ends here)"
    rows: list[tuple[str, str | Markup]] = [
        ("verdict", el("span", facts.verdict, class_=f"verdict {facts.verdict}")),
        ("run", run.run_id if run else "(no run-started record)"),
        ("profile", f"{run.profile} ({run.profile_path})" if run else "?"),
        ("started", utc(run.t) if run else "?"),
        ("length", f"{elapsed(model.elapsed())} of {elapsed(run.duration_s)} planned; {ending}"
         if run else ending),
        ("seed, accelerator", f"{run.seed}, {run.accel} ({run.accel_reason})" if run else "?"),
        ("QEMU, soak", f"{run.qemu_version or 'unknown'}, soak {run.version}" if run else "?"),
        ("fleet", f"{len(model.vms)} VMs, {model.boots} boots, {model.vm_seconds() / 3600:.2f} VM-hours, "
                  f"{sum(model.faults_injected.values())} faults injected"),
        ("failures", f"{model.unexpected_failures} unexpected, {sum(model.expected_failures.values())} expected, "
                     f"{len(model.signatures.groups)} signatures"),
        ("soak problems", str(model.infra_total)),
        ("run directory", str(run_dir.resolve())),
    ]
    journal = [f"{loaded.skipped_records} unreadable records skipped"] if loaded.skipped_records else []
    if loaded.torn_tail:
        journal.append("torn last line (soak was killed while writing)")
    if model.journal_dropped:
        journal.append(f"{model.journal_dropped} sampled records dropped (the disk fell behind): "
                       "the plots have gaps there")
    if journal:
        rows.append(("journal", "; ".join(journal)))
    dropped = [vm for vm in model.vms.values() if vm.console_dropped_bytes]
    if dropped:
        rows.append(("consoles", f"{size_bytes(sum(vm.console_dropped_bytes for vm in dropped))} not kept on "
                                 f"{len(dropped)} VMs (over console_limit; the classifier saw every line)"))
    return el("table", (el("tr", el("th", k), el("td", v)) for k, v in rows), class_="facts")


def failures(model: RunModel, run_dir: Path, prefix: str,
             statuses: Mapping[tuple[str, str], str] | None) -> Markup:
    groups = model.failure_groups()
    if not groups:
        return el("p", "No failures.", class_="empty")
    ids = anchor_ids(groups)
    t0 = model.run.t if model.run else min(g.first_seen for g in groups)
    note = None if statuses is not None else el(
        "p", "No run history was consulted: statuses are unknown.", class_="note")
    return el("div", note, (_signature(g, ids[(g.kind, g.title)], t0, run_dir, prefix, statuses)
                            for g in groups))


def _signature(group: FailureGroup, anchor: str, t0: float, run_dir: Path, prefix: str,
               statuses: Mapping[tuple[str, str], str] | None) -> Markup:
    status = statuses.get((group.kind, group.title), "") if statuses is not None else ""
    badge = el("span", status, class_=f"status {status}" if status in STATUSES else "status") if status else None
    count = ("once" if group.count == 1 else f"{group.count} times") + (f" ({group.expected} expected)" if group.expected else "")
    if group.without_evidence:
        count += f", {group.without_evidence} without an evidence folder"
    vms = ", ".join(group.vms[:MAX_VMS_NAMED]) + (
        f" and {len(group.vms) - MAX_VMS_NAMED} more" if len(group.vms) > MAX_VMS_NAMED else "")
    seen = (f"first at +{elapsed(group.first_seen - t0)}, last at +{elapsed(group.last_seen - t0)}"
            if group.count > 1 else f"at +{elapsed(group.first_seen - t0)}")
    css = "signature expected" if group.unexpected == 0 else "signature"
    return el(
        "article",
        el("h3", el("span", group.kind, class_="kind"), " ", el("span", group.title, class_="title"), " ", badge),
        el("p", f"{count} on {len(group.vms)} VM{'s' if len(group.vms) != 1 else ''} ({vms}); {seen}",
           title=f"{utc(group.first_seen)} to {utc(group.last_seen)}"),
        _evidence(group, run_dir, prefix),
        id=anchor, class_=css,
    )


def _evidence(group: FailureGroup, run_dir: Path, prefix: str) -> Markup:
    paths = [group.evidence] + ([group.last_evidence] if group.last_evidence not in ("", group.evidence) else [])
    paths = [p for p in paths if p]
    if not paths:
        return el("p", "No evidence folder recorded.", class_="note")
    items: list[Markup] = []
    excerpts: list[Markup] = []
    for which, path in zip(("first", "newest"), paths, strict=False):
        link = evidence.href(prefix, path)
        folder = evidence.read_folder(run_dir, path)
        shown = el("a", path, href=link) if link else el("span", path, class_="untrusted")
        files: list[Markup | str] = []
        if folder is not None and link is not None:
            for name in folder.files:
                file_link = evidence.href(prefix, path, name)
                files += [" ", el("a", name, href=file_link, class_="file")]
            if folder.more_files:
                files.append(f" and {folder.more_files} more")
            if not excerpts:
                end = {"report.txt": "", "console-tail.log": " (its end)"}
                excerpts = [el("details", el("summary", f"{name}{end.get(name, '')}, {which} occurrence"),
                               el("pre", text), class_="excerpt") for name, text in folder.excerpts]
        elif link is None:
            files.append(" (not a path inside the run directory: not linked)")
        else:
            files.append(" (not found here)")
        items.append(el("li", f"{which}: ", shown, files))
    return el("div", el("ul", items, class_="evidence"), excerpts)


def vm_table(model: RunModel, details: Mapping[str, VmDetail]) -> Markup:
    head = ["VM", "group", "vCPUs", "MiB", "kernel", "state", "boots", "failures", "faults", "heartbeats",
            "bogo-ops/s (mean)", "QEMU RSS first → last", "threads first → last"]
    rows = []
    for name, vm in model.vms.items():
        info = vm.info
        detail = details.get(name)
        rates = " ".join(f"{s} {plain(r.mean)}" for s, r in sorted(vm.throughput.items()))
        failures = str(vm.failures) + (f" (+{vm.expected_failures} expected)" if vm.expected_failures else "")
        cells = [name, vm.group, str(info.vcpus) if info else "?", str(info.memory_mib) if info else "?",
                 vm.kernel or "?", vm.shown_state, str(vm.boots), failures, str(vm.faults), str(vm.heartbeats),
                 rates, _first_last(detail, "rss"), _first_last(detail, "threads")]
        rows.append(el("tr", (el("td", c) for c in cells), class_="bad" if vm.failures else None))
    return el("table", el("thead", el("tr", (el("th", h) for h in head))), el("tbody", rows), class_="vms")


def _first_last(detail: VmDetail | None, which: str) -> str:
    if detail is None:
        return ""
    points = (detail.rss if which == "rss" else detail.threads).points()
    if not points:
        return ""
    show = size_bytes if which == "rss" else plain
    return f"{show(points[0].mean)} → {show(points[-1].mean)}"


def expectations(model: RunModel) -> Markup | None:
    results = model.expectation_results()
    if not results:
        return None
    rows = [el("tr", el("td", r.vm), el("td", r.kinds), el("td", r.detected or "nothing"),
               el("td", f"{r.after_s:.0f}s" if r.after_s is not None else ""),
               el("td", "met" if r.met else "MISSED"), class_=None if r.met else "bad") for r in results]
    head = el("tr", (el("th", h) for h in ("VM", "expected", "detected", "after", "")))
    return el("table", el("thead", head), el("tbody", rows), class_="vms")


def observations(model: RunModel) -> Markup | None:
    """Worth a look, neither guest failures nor soak's trouble (a console flood ...)."""
    if not model.observations:
        return None
    t0 = model.run.t if model.run else 0.0
    rows = [el("tr", el("td", f"+{elapsed(o.t - t0)}"), el("td", o.vm or ""), el("td", o.topic),
               el("td", el("pre", o.message))) for o in model.observations]
    return el("div", el("h3", "Observations"), el("table", el("tbody", rows), class_="problems"))


def problems(model: RunModel) -> Markup:
    if not model.infra_problems:
        return el("p", "None.", class_="empty")
    t0 = model.run.t if model.run else 0.0
    counts = ", ".join(f"{word} {n}" for word, n in sorted(model.infra_problems.items()))
    rows = [el("tr", el("td", f"+{elapsed(p.t - t0)}"), el("td", p.vm or ""), el("td", p.problem),
               el("td", el("pre", p.message))) for p in model.problems]
    more = model.infra_total - len(model.problems)
    return el("div", el("p", counts),
              el("table", el("tbody", rows), class_="problems"),
              el("p", f"and {more} more (in the journal)", class_="note") if more > 0 else None)
