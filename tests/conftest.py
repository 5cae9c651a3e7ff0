"""Shared test helpers: repository paths and markers that skip when the machine lacks QEMU."""

from __future__ import annotations

import shutil
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
