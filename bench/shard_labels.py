"""Cost of labelling every series with the shard's host and shard (soak run --shard).

    .venv/bin/python bench/shard_labels.py [--vms 100] [--scrapes 200]

The same fleet as bench/metrics.py is rendered with and without the identity
labels (`with_identity` copies every sample with two more labels); the figure
that matters is the ratio of collect CPU per scrape, measured interleaved so a
busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from soak.metrics import Metrics
from soak.shard import Placement, Shard

sys.path.insert(0, str(Path(__file__).parent))
from metrics import fleet_run  # bench/metrics.py: a fleet of VMs as events


def registry_of(vms: int, placement: Placement | None) -> CollectorRegistry:
    registry = CollectorRegistry()
    metrics = Metrics(registry, hang_timeout_s=20,
                      labels=placement.metric_labels() if placement else None,
                      run_info_labels=placement.run_info_labels() if placement else None)
    for event in fleet_run(vms, time.time()):
        metrics.observe(event)
    return registry


def cpu_of_scrape(registry: CollectorRegistry) -> float:
    start = time.process_time()
    generate_latest(registry)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    placement = Placement(Shard(3, 8), 0, "hv-rack-a-017.lab.example", "slurm-lab-123456")
    plain, labelled = registry_of(args.vms, None), registry_of(args.vms, placement)
    plain_cpu, labelled_cpu = [], []
    for _ in range(args.scrapes):
        plain_cpu.append(cpu_of_scrape(plain))
        labelled_cpu.append(cpu_of_scrape(labelled))
    base, with_labels = statistics.median(plain_cpu), statistics.median(labelled_cpu)
    size, labelled_size = len(generate_latest(plain)), len(generate_latest(labelled))
    print(f"fleet: {args.vms} VMs; {args.scrapes} scrapes each, interleaved")
    print(f"exposition: {size / 1024:.1f} KiB plain, {labelled_size / 1024:.1f} KiB with host and shard "
          f"({labelled_size / size:.2f}x)")
    print(f"collect+render CPU per scrape (median): {base * 1000:.2f} ms plain, "
          f"{with_labels * 1000:.2f} ms labelled: {with_labels / base:.2f}x")
    print(f"at one scrape per 15 s: +{(with_labels - base) / 15 * 100:.4f} % of a core")


if __name__ == "__main__":
    main()
