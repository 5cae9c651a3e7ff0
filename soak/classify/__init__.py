"""The console crash classifier: kernel failure reports from raw console text.

Titles follow syzkaller's pkg/report rules (the de-facto standard signature for
Linux kernel crashes), so repeats dedupe; kinds are soak's failure taxonomy
(soak.kinds). Pure and synchronous: no I/O, no clock. ``classify`` works on a
whole log; ``ConsoleTriage`` watches a live console line by line.
"""

from soak.classify.assemble import classify
from soak.classify.report import Report
from soak.classify.stream import ConsoleTriage

__all__ = ["ConsoleTriage", "Report", "classify"]
