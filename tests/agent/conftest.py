"""The default guest image, built (or found in the user's cache) once per test session."""

from __future__ import annotations

import pytest

from soak.errors import ImageError
from soak.image import GuestImage, ensure_default_image


@pytest.fixture(scope="session")
def default_image() -> GuestImage:
    try:
        return ensure_default_image()
    except ImageError as exc:
        pytest.skip(f"the default guest image cannot be built here: {exc}")
