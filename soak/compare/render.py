"""`soak compare`'s table as people read it: one line per row, then the one-sided signatures."""

from __future__ import annotations

from soak.compare import Comparison, RunLabel
from soak.compare.rows import Row


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or 0.01 <= abs(value) < 1e6:
        return f"{value:.4g}"
    return f"{value:.3g}"


def _run(name: str, label: RunLabel) -> str:
    what = [label.accel or "?", f"QEMU {label.qemu_version or '?'}", f"soak {label.version or '?'}"]
    return f"{name}: {label.path} (run {label.run_id or '?'}, {', '.join(what)})"


def _row(row: Row) -> list[str]:
    ci = f"[{row.ci[0]:.3f}, {row.ci[1]:.3f}]" if row.ci is not None else "-"
    ratio = f"{row.ratio:.3f}" if row.ratio is not None else "-"
    return [row.metric.label, row.stressor or "", str(row.vcpus), str(row.a.n), str(row.b.n),
            _number(row.a.mean), _number(row.b.mean), ratio, ci, row.verdict]


def render_text(result: Comparison) -> str:
    s = result.settings
    level = f"{s.confidence * 100:g}% CI"
    head = ["metric", "stressor", "vCPUs", "n A", "n B", "mean A", "mean B", "B/A", level, "verdict"]
    table = [head] + [_row(row) for row in result.rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    right = {2, 3, 4, 5, 6, 7}
    lines = [
        f"profile {result.a.profile or '?'}" + (f" vs {result.b.profile}" if result.b.profile != result.a.profile
                                                else ""),
        _run("A", result.a),
        _run("B", result.b),
        f"confidence {s.confidence:g}, minimum effect {s.min_effect * 100:g}%, at least {s.min_samples} samples "
        f"per side, {s.resamples} resamples (seed {s.seed})",
        "",
    ]
    for line in table:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    if not result.rows:
        lines.append("(no throughput, boot or heartbeat samples in either run)")
    for name, only in (("A", result.only_a), ("B", result.only_b)):
        if only:
            lines += ["", f"failure signatures only in {name}:"]
            lines += [f"  {f.kind}: {f.title} (x{f.count}" + (f", {f.expected} expected" if f.expected else "") + ")"
                      for f in only]
    slower = sum(row.verdict == "slower" for row in result.rows)
    faster = sum(row.verdict == "faster" for row in result.rows)
    lines += ["", f"verdict: {result.verdict} ({slower} slower, {faster} faster, {len(result.rows)} rows)"]
    return "\n".join(lines)
