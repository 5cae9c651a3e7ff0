"""The fake guest agent of the fast tests (a host-side qemu-ga, `tests.qga.fakeqga`)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.qga.fakeqga import FakeQga


@pytest.fixture
async def fake_qga(tmp_path: Path) -> AsyncIterator[FakeQga]:
    with tempfile.TemporaryDirectory(prefix="qga-") as short:  # unix socket paths must stay short
        fake = FakeQga(Path(short) / "qga.sock", tmp_path)
        await fake.start()
        try:
            yield fake
        finally:
            await fake.stop()
