import pytest

from soak.units import (
    format_bytes,
    format_duration,
    parse_duration,
    parse_size_bytes,
    parse_size_mib,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("2h", 7200), ("3d", 259200), ("1h30m", 5400), ("250ms", 0.25), (45, 45), ("12", 12)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "2 fortnights", "1x", "-5s", "h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("text", "mib"), [("256M", 256), ("1G", 1024), ("2GiB", 2048), (512, 512), ("1048576K", 1024)])
def test_sizes(text: str | int, mib: int) -> None:
    assert parse_size_mib(text) == mib


@pytest.mark.parametrize("text", ["lots", "1.5M", "12Q"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size_mib(text)


def test_format_duration() -> None:
    assert format_duration(125) == "2m05s"
    assert format_duration(3 * 3600 + 720) == "3h12m"
    assert format_duration(86400 + 4 * 3600) == "1d04h"


@pytest.mark.parametrize(("text", "n"), [("512K", 512 * 1024), ("256M", 256 << 20), ("1GiB", 1 << 30), (4096, 4096)])
def test_byte_sizes(text: str | int, n: int) -> None:
    assert parse_size_bytes(text) == n


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (812, 65536, 1.5 * 2**30, 3 * 2**40)] == ["812 B", "64.0 KiB", "1.5 GiB", "3.0 TiB"]
