"""What a failed live migration is called: QEMU's error, without what varies between runs."""

from __future__ import annotations

import re

from soak.detect.verdict import Verdict
from soak.kinds import Kind

_VARYING = re.compile(r"0x[0-9a-fA-F]+|\b\d+(?:\.\d+)?\b|'[^']*/[^']*'|\"[^\"]*/[^\"]*\"")
"""Numbers, addresses and quoted paths (sockets, images) differ from one migration to the next."""
MAX_TITLE = 120


def migration_verdict(qemu_error: str, *, timed_out: bool, destination_exit: str | None = None) -> Verdict:
    """The `migration-failure` of a migration that failed (``qemu_error``: QEMU's own words) or did
    not finish in time; ``destination_exit`` says how the destination QEMU ended, if it did.

    Not terminal: the source QEMU still runs the guest (the runner checks it does).
    """
    if timed_out:
        title = "migration did not complete in time"
    elif destination_exit is not None:
        title = f"migration failed: destination QEMU ended ({destination_exit})"
    else:
        words = _VARYING.sub("N", qemu_error.strip().splitlines()[-1] if qemu_error.strip() else "no error given")
        title = f"migration failed: {words}"[:MAX_TITLE]
    message = qemu_error if destination_exit is None else f"{qemu_error} (destination QEMU: {destination_exit})"
    return Verdict(Kind.MIGRATION_FAILURE, title, terminal=False, message=message.strip())
