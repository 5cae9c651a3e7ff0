"""What a guest image is to the rest of soak: a kernel, an initrd and what they can do."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak.arch import ARCHES, DEFAULT_ARCH
from soak.errors import ImageError
from soak.image.faults import MODULE, fault_kernel_args, fault_spec
from soak.image.kernel import bzimage_release

MANIFEST = "manifest.json"
KERNEL = "vmlinuz"
INITRD = "initrd.img"

FEATURE_AGENT = "agent"
"""/init is soak's agent: HELLO and heartbeats on its own channel (`soak.arch`), commands from the host."""
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
    arch: str = DEFAULT_ARCH
    """The guest architecture (`soak.arch`); a user's own image is assumed to be x86_64."""

    def has(self, feature: str) -> bool:
        return feature in self.features

    def supports_fault(self, name: str) -> bool:
        """Whether the agent in this image can provoke fault ``name`` (see soak.image.faults)."""
        spec = fault_spec(name)
        applies = name not in ARCHES[self.arch].unsupported_faults if self.arch in ARCHES else True
        return applies and self.has(FEATURE_AGENT) and (spec.source != MODULE or self.has(FEATURE_FAULTINJECT))

    def fault_kernel_args(self, names: Iterable[str]) -> list[str]:
        """Kernel parameters for provoking ``names`` in this image.

        :raise ImageError: the image cannot provoke one of them; the message says why.
        :raise ValueError: an unknown fault name.
        """
        names = list(names)
        for name in names:
            if not self.supports_fault(name):
                why = next((n for n in self.notes if n.startswith("faultinject")), None)
                if (reason := ARCHES[self.arch].unsupported_faults.get(name)) if self.arch in ARCHES else None:
                    raise ImageError(f"fault {name!r} does not apply to {self.arch}: {reason}")
                if not self.has(FEATURE_AGENT):
                    why = "this image has no soak agent (a user's own kernel/initrd)"
                raise ImageError(f"fault {name!r} needs soak's faultinject module: {why or 'not in this image'}")
        return fault_kernel_args(names)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "arch": self.arch,
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
        arch=str(meta.get("arch", DEFAULT_ARCH)),
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
