"""The default guest image (its kernel and busybox) for the flooding guest."""

from __future__ import annotations

import pytest

from soak.errors import ImageError
from soak.image import GuestImage, ensure_default_image


@pytest.fixture(scope="session")
def default_image() -> GuestImage:
    try:
        return ensure_default_image()
    except ImageError as exc:
        pytest.fail(f"the default guest image cannot be built here: {exc}")
