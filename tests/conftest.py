"""Shared test helpers: repository paths and markers that skip when the machine lacks QEMU."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if shutil.which("qemu-system-x86_64"):
        return
    skip = pytest.mark.skip(reason="qemu-system-x86_64 is not installed (scripts/bootstrap installs it)")
    for item in items:
        if "qemu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _history_of_the_tests() -> Iterator[None]:
    """Every `soak run` a test starts records into a throwaway history, never the user's own."""
    with tempfile.TemporaryDirectory(prefix="soak-test-history-") as folder:
        old = os.environ.get("SOAK_HISTORY")
        os.environ["SOAK_HISTORY"] = str(Path(folder) / "history.db")
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("SOAK_HISTORY", None)
            else:
                os.environ["SOAK_HISTORY"] = old
