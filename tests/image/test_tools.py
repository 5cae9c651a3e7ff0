"""Host tool runs: a missing tool names the fix, a failure quotes the tool, a hang hits its deadline."""

from __future__ import annotations

import pytest

from soak.errors import ImageError
from soak.image.tools import run_tool


def test_stdout_is_returned() -> None:
    assert run_tool(["sh", "-c", "echo hi"], timeout=10) == "hi\n"


def test_a_missing_tool_names_the_fix() -> None:
    with pytest.raises(ImageError, match="soak-no-such-tool not found: apt-get install it"):
        run_tool(["soak-no-such-tool"], timeout=10, hint="apt-get install it")


def test_a_failure_quotes_the_last_lines() -> None:
    with pytest.raises(ImageError, match=r"failed: b \| c \| d$"):
        run_tool(["sh", "-c", "printf 'a\\nb\\nc\\nd\\n' >&2; exit 2"], timeout=10)
    with pytest.raises(ImageError, match=r"failed: E: Unable to locate package x$"):
        run_tool(["sh", "-c", "echo 'E: Unable to locate package x' >&2; echo W: later >&2; exit 100"], timeout=10)


def test_a_hang_hits_the_deadline() -> None:
    with pytest.raises(ImageError, match="did not finish within 0 s"):
        run_tool(["sleep", "5"], timeout=0.2)
