"""Guest images: soak's default Debian-based kernel + initramfs, or a user's own pair.

``ensure_default_image()`` builds the default image from Debian packages on
first use and then serves it from the cache (see ``soak.image.cache`` for the
layout and ``soak.image.build`` for what goes in). ``image_from_files()`` wraps
a user's kernel and initrd, about which soak assumes nothing.
"""

from soak.image.build import ensure_default_image
from soak.image.cache import cache_root
from soak.image.model import GuestImage, image_from_files

__all__ = ["GuestImage", "cache_root", "ensure_default_image", "image_from_files"]
