"""Golden tests over the shared corpora: syzkaller's expected titles and our guests' faults."""

from __future__ import annotations

import pytest

from soak.classify import classify
from soak.kinds import Kind

from .corpora import GUEST_FAULTS, dev_rows, guest_labels

ACCURACY_FLOOR = 0.97


@pytest.fixture(scope="module")
def results() -> list[tuple[object, list[object]]]:
    return [(row, classify(row.log)) for row in dev_rows()]


def test_dev_primary_titles(results: list) -> None:
    misses = []
    for row, reports in results:
        got = reports[0].title if reports else None
        if got != row.title:
            misses.append(f"  row {row.id}: expected {row.title!r}, got {got!r}")
    accuracy = 1 - len(misses) / len(results)
    print(f"\ndev primary-title accuracy {accuracy:.2%} ({len(results) - len(misses)}/{len(results)})")
    print("\n".join(misses))
    assert accuracy >= ACCURACY_FLOOR, "misses:\n" + "\n".join(misses)


def test_dev_non_crash_rows_give_no_report(results: list) -> None:
    wrong = [
        f"  row {row.id}: expected no report, got {[r.title for r in reports]!r}"
        for row, reports in results
        if row.title is None and reports
    ]
    assert not wrong, "\n".join(wrong)


def test_dev_flags_agree_where_titles_do(results: list) -> None:
    """corrupted, the syzkaller type and the ALT titles follow the title."""
    checked = 0
    wrong = []
    for row, reports in results:
        if not reports or reports[0].title != row.title:
            continue
        checked += 1
        rep = reports[0]
        if rep.corrupted != row.corrupted:
            wrong.append(f"  row {row.id}: corrupted {rep.corrupted} ({rep.corrupted_reason})")
        if rep.syz_type != row.type:
            wrong.append(f"  row {row.id}: type {rep.syz_type!r}, expected {row.type!r}")
        if sorted(rep.alt_titles) != sorted(row.alt):
            wrong.append(f"  row {row.id}: alt {sorted(rep.alt_titles)}, expected {sorted(row.alt)}")
    assert len(wrong) <= 0.03 * checked, "\n".join(wrong)


def test_every_dev_report_has_a_console_kind(results: list) -> None:
    allowed = {Kind.WORKLOAD_FAILURE, Kind.GUEST_RESET}
    for row, reports in results:
        for rep in reports:
            assert rep.kind in Kind.__members__.values(), (row.id, rep.title)
            if rep.kind not in allowed:
                assert rep.title, row.id


def _accepts(label: str, kinds: set[str]) -> bool:
    return any(option in kinds for option in label.split("|"))


@pytest.mark.parametrize("name", sorted(guest_labels()) if GUEST_FAULTS.is_dir() else [])
def test_guest_faults(name: str) -> None:
    label = guest_labels()[name]
    reports = classify((GUEST_FAULTS / f"{name}.log").read_bytes())
    kinds = {r.kind.value for r in reports}
    wanted = list(label["kinds"])  # type: ignore[call-overload]
    got = [(r.kind.value, r.title) for r in reports]
    if not wanted:
        assert reports == [], f"{name}: negative control, got {got}"
        return
    for want in wanted:
        assert _accepts(want, kinds), f"{name}: expected kind {want}, got {got}"
    assert _accepts(wanted[0], {reports[0].kind.value}), f"{name}: primary {got[0]}"
    reference = label["reference_title"]
    if reference is not None:
        assert reports[0].title == reference, f"{name}: expected title {reference!r}, got {got}"
