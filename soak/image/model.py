"""What a guest image is to the rest of soak: a kernel, an initrd and what they can do."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak.errors import ImageError
from soak.image.kernel import bzimage_release

MANIFEST = "manifest.json"
KERNEL = "vmlinuz"
INITRD = "initrd.img"

FEATURE_AGENT = "agent"
"""/init is soak's agent: HELLO and heartbeats on ttyS1, commands from the host."""
FEATURE_STRESS_NG = "stress-ng"
FEATURE_PVPANIC = "pvpanic"
"""The pvpanic drivers are loaded at boot, so a panic reaches QEMU as GUEST_PANICKED."""
FEATURE_FAULTINJECT = "faultinject"
"""soak's test module is loaded: the agent can provoke real kernel failures."""


@dataclass(frozen=True, slots=True)
class GuestImage:
    """A bootable kernel + initrd pair.

    ``features`` says what soak may rely on inside the guest: a user's own
    image has none, so the supervisor must not expect an agent from it.
    """

    kernel: Path
    initrd: Path
    kernel_release: str | None
    key: str
    """Content key: equal keys mean the same image."""
    features: frozenset[str] = frozenset()
    packages: tuple[str, ...] = ()
    """``name=version`` of every Debian package the image was built from."""
    notes: tuple[str, ...] = field(default=(), compare=False)
    """Why a feature is missing, e.g. no compiler for the fault module."""

    def has(self, feature: str) -> bool:
        return feature in self.features

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kernel_release": self.kernel_release,
            "features": sorted(self.features),
            "packages": list(self.packages),
            "notes": list(self.notes),
        }


def load_manifest(image_dir: Path) -> tuple[GuestImage, dict[str, Any]]:
    """The image stored in ``image_dir`` and its whole manifest.

    :raise ImageError: the directory does not hold a complete image.
    """
    try:
        meta: dict[str, Any] = json.loads((image_dir / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ImageError(f"{image_dir}: no readable {MANIFEST}: {exc}") from exc
    image = GuestImage(
        kernel=image_dir / KERNEL,
        initrd=image_dir / INITRD,
        kernel_release=meta.get("kernel_release"),
        key=str(meta["key"]),
        features=frozenset(meta.get("features", ())),
        packages=tuple(meta.get("packages", ())),
        notes=tuple(meta.get("notes", ())),
    )
    for path in (image.kernel, image.initrd):
        if not path.is_file():
            raise ImageError(f"{image_dir}: {path.name} is missing")
    return image, meta


def image_from_files(kernel: Path, initrd: Path) -> GuestImage:
    """A user's own kernel and initrd; soak assumes nothing about what runs inside.

    :raise ImageError: a file is missing or unreadable.
    """
    stats = []
    for what, path in (("kernel", kernel), ("initrd", initrd)):
        try:
            with path.open("rb"):
                pass
            st = path.stat()
        except OSError as exc:
            raise ImageError(f"image.{what} {path}: {exc.strerror or exc}") from exc
        if not path.is_file():
            raise ImageError(f"image.{what} {path}: not a regular file")
        stats.append(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}")
    key = "user-" + hashlib.sha256("\n".join(stats).encode()).hexdigest()[:16]
    return GuestImage(kernel=kernel, initrd=initrd, kernel_release=bzimage_release(kernel), key=key)
