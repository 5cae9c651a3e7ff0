"""soak compare: the bootstrap finds real differences, does not call noise one, and the CLI's contract.

Sample counts are those of a 1-hour run: stress-ng reports a rate per run
(60 s period + 30 s idle), so about 40 per VM and stressor.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from soak.cli import main
from soak.compare import compare_runs, load_compared
from soak.compare.bootstrap import RESAMPLE_CAP, ratio_interval, resampled_means
from soak.compare.rows import BOGO_OPS, BOOT, LATENESS, Settings, compare_samples
from soak.errors import UsageError
from tests.report.journals import noisy, throughput_run, write_run

HOUR_SAMPLES = 40
CV = 0.05


def test_the_interval_is_seeded_and_covers_the_ratio() -> None:
    rng = random.Random(1)
    a, b = noisy(rng, 100, CV, HOUR_SAMPLES), noisy(rng, 90, CV, HOUR_SAMPLES)
    first = ratio_interval(a, b, confidence=0.95, resamples=2000, rng=random.Random("s"))
    again = ratio_interval(a, b, confidence=0.95, resamples=2000, rng=random.Random("s"))
    assert first == again and first is not None
    assert first.low < first.ratio < first.high and first.low > 0.85 and first.high < 0.95
    with pytest.raises(ValueError):
        ratio_interval([], b, confidence=0.95, resamples=10, rng=rng)


def test_large_samples_keep_the_spread_of_the_full_bootstrap() -> None:
    """Past RESAMPLE_CAP the resampled means are rescaled: their spread is still sd / sqrt(n)."""
    rng = random.Random(2)
    values = noisy(rng, 100, 0.2, 8 * RESAMPLE_CAP)
    means = resampled_means(values, 2000, rng)
    mean = sum(means) / len(means)
    spread = (sum((m - mean) ** 2 for m in means) / len(means)) ** 0.5
    expected = 20 / len(values) ** 0.5
    assert 0.9 * expected < spread < 1.1 * expected


@pytest.mark.parametrize(("factor", "verdict"), [(0.9, "slower"), (1.1, "faster")])
def test_a_ten_percent_change_is_found_at_realistic_noise(factor: float, verdict: str) -> None:
    found = 0
    trials = 60
    for trial in range(trials):
        rng = random.Random(trial)
        a, b = noisy(rng, 500, CV, HOUR_SAMPLES), noisy(rng, 500 * factor, CV, HOUR_SAMPLES)
        row = compare_samples(BOGO_OPS, a, b, Settings(), stressor="cpu", vcpus=2)
        found += row.verdict == verdict
    assert found >= 0.95 * trials, found


def test_noise_is_not_called_a_difference() -> None:
    """A/A trials: with the default 5% minimum effect never; as pure statistics, near the nominal 5%."""
    trials = 200
    called = called_without_effect = 0
    for trial in range(trials):
        rng = random.Random(10_000 + trial)
        a, b = noisy(rng, 500, CV, HOUR_SAMPLES), noisy(rng, 500, CV, HOUR_SAMPLES)
        called += compare_samples(BOGO_OPS, a, b, Settings(seed=trial)).verdict != "no-difference"
        bare = Settings(min_effect=0.0, seed=trial, resamples=1000)
        called_without_effect += compare_samples(BOGO_OPS, a, b, bare).verdict != "no-difference"
    assert called <= 0.01 * trials, called
    assert 0.01 * trials <= called_without_effect <= 0.10 * trials, called_without_effect  # expect 10


def test_small_changes_and_small_samples_are_not_guessed_at() -> None:
    rng = random.Random(3)
    a, b = noisy(rng, 100, 0.01, 400), noisy(rng, 97, 0.01, 400)  # real, significant, but 3%
    row = compare_samples(BOGO_OPS, a, b, Settings())
    assert row.ci is not None and row.ci[1] < 1 and row.verdict == "no-difference"
    few = compare_samples(BOGO_OPS, [100.0] * 5, [50.0] * 5, Settings())
    assert (few.verdict, few.ci, few.ratio) == ("too-few-samples", None, 0.5)
    one_sided = compare_samples(BOGO_OPS, [100.0] * 20, [], Settings())
    assert (one_sided.verdict, one_sided.ratio, one_sided.b.mean) == ("too-few-samples", None, None)


def test_direction_and_absolute_floors_of_boot_time_and_lateness() -> None:
    rng = random.Random(4)
    boots_a, boots_b = noisy(rng, 10.0, CV, 30), noisy(rng, 12.0, CV, 30)
    assert compare_samples(BOOT, boots_a, boots_b, Settings()).verdict == "slower"  # longer boots
    assert compare_samples(BOOT, boots_b, boots_a, Settings()).verdict == "faster"
    late_a, late_b = noisy(rng, 0.002, CV, 50), noisy(rng, 0.004, CV, 50)  # twice as late, but 2 ms
    assert compare_samples(LATENESS, late_a, late_b, Settings()).verdict == "no-difference"
    zero = compare_samples(LATENESS, [0.0] * 20, [0.5] * 20, Settings())
    assert (zero.verdict, zero.ratio, zero.note) == ("slower", None, "run A's mean is 0")


def _runs(tmp_path: Path, factor: float, *, profile_b: str = "p") -> tuple[Path, Path]:
    rng = random.Random(5)
    a = {("cpu", 1): noisy(rng, 500, CV, HOUR_SAMPLES), ("vm", 2): noisy(rng, 80, CV, HOUR_SAMPLES)}
    b = {("cpu", 1): noisy(rng, 500 * factor, CV, HOUR_SAMPLES), ("vm", 2): noisy(rng, 80, CV, HOUR_SAMPLES)}
    run_a = write_run(tmp_path / "a", throughput_run(a, run_id="a", failures=["WARNING in old"]))
    run_b = write_run(tmp_path / "b", throughput_run(b, run_id="b", profile=profile_b, boots=[9.0] * 3,
                                                       failures=["WARNING in new"]))
    return run_a, run_b


def test_two_runs_rows_and_one_sided_signatures(tmp_path: Path) -> None:
    run_a, run_b = _runs(tmp_path, 0.9)
    result = compare_runs(load_compared(run_a), load_compared(run_b))
    rows = {(r.metric.name, r.stressor, r.vcpus): r.verdict for r in result.rows}
    assert rows == {("bogo-ops-per-s", "cpu", 1): "slower", ("bogo-ops-per-s", "vm", 2): "no-difference",
                    ("boot-s", None, 1): "too-few-samples"}
    assert (result.verdict, result.exit_code) == ("regressed", 1)
    assert [f.title for f in result.only_a] == ["WARNING in old"] and [f.title for f in result.only_b] == ["WARNING in new"]
    same = compare_runs(load_compared(run_a), load_compared(run_a))
    assert same.verdict == "parity" and all(r.ratio in (1.0, None) for r in same.rows)


def test_runs_of_different_profiles_are_refused_unless_forced(tmp_path: Path) -> None:
    run_a, run_b = _runs(tmp_path, 1.0, profile_b="other")
    with pytest.raises(UsageError, match="different profiles"):
        compare_runs(load_compared(run_a), load_compared(run_b))
    assert compare_runs(load_compared(run_a), load_compared(run_b), force=True).verdict == "parity"
    with pytest.raises(UsageError, match=r"no journal\.jsonl"):
        load_compared(tmp_path / "missing")


def test_cli_json_text_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_a, run_b = _runs(tmp_path, 0.9)
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(run_a), str(run_b), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert exit_.value.code == 1 and data["verdict"] == "regressed"
    row = data["rows"][0]
    assert {"metric", "ratio", "ci", "verdict"} <= set(row) and row["metric"] == "bogo-ops-per-s"
    assert row["ci"][0] < row["ratio"] < row["ci"][1] < 1
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(run_a), str(run_b), "--min-effect", "0.2"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "verdict: parity" in out and "only in B:" in out
    other_a, other_b = _runs(tmp_path / "x", 1.0, profile_b="other")
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(other_a), str(other_b)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1 and "--force" in err


def test_a_side_that_can_resample_to_zero_has_no_upper_bound_in_json() -> None:
    """On-time heartbeats have lateness 0: a resample of A may average 0, and B/A is then unbounded."""
    row = compare_samples(LATENESS, [0.0, 0.0, 0.9], [0.0, 0.4, 0.8], Settings(min_samples=3))
    assert row.ci is not None and row.ci[0] == 0.0 and row.ci[1] == float("inf")
    low, high = row.to_json()["ci"]
    assert low == 0.0 and high is None
    json.dumps(row.to_json(), allow_nan=False)  # strict JSON: no Infinity
