"""`soak compare RUN_A RUN_B`: is B on par with A? Exit 1 when something got slower beyond the threshold."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from soak.compare import Settings, compare_runs, load_compared
from soak.compare.render import render_text

DEFAULTS = Settings()


@click.command()
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (verdict, rows, ...).")
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=DEFAULTS.confidence,
              show_default=True, help="Confidence level of each interval.")
@click.option("--min-effect", type=click.FloatRange(0.0, 1.0), default=DEFAULTS.min_effect, show_default=True,
              help="Smallest relative change reported (0.05 = 5%).")
@click.option("--min-samples", type=click.IntRange(2, 100_000), default=DEFAULTS.min_samples, show_default=True,
              help="Fewer samples on a side: the row says so instead of guessing.")
@click.option("--resamples", type=click.IntRange(100, 100_000), default=DEFAULTS.resamples, show_default=True)
@click.option("--seed", type=click.IntRange(0), default=DEFAULTS.seed, show_default=True,
              help="Seed of the bootstrap (the same seed gives the same intervals).")
@click.option("--force", is_flag=True, help="Compare runs of different profiles anyway.")
def compare(run_a: Path, run_b: Path, as_json: bool, confidence: float, min_effect: float, min_samples: int,
            resamples: int, seed: int, force: bool) -> None:
    """Compare run B against run A (bogo-ops/s, boot time, heartbeat lateness); exit 1 if B regressed."""
    settings = Settings(confidence, min_effect, min_samples, resamples, seed)
    result = compare_runs(load_compared(run_a), load_compared(run_b), settings, force=force)
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else render_text(result))
    sys.exit(result.exit_code)
