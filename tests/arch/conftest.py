"""Each architecture's default image, built (or found in the cache) once per test session."""

from __future__ import annotations

import pytest

from soak.image import GuestImage, ensure_default_image


@pytest.fixture(scope="session")
def arch_image() -> dict[str, GuestImage]:
    """Lazily built images by architecture: a build failure fails the test that needs it (never skips)."""
    return _Images()


class _Images(dict[str, GuestImage]):
    def __missing__(self, arch: str) -> GuestImage:
        image = self[arch] = ensure_default_image(arch=arch)
        return image
