import pytest

from soak.units import format_duration, parse_duration, parse_size_mib


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
