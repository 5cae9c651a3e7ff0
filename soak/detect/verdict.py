"""A detector's conclusion: the kind and the signature title of a failure."""

from __future__ import annotations

from dataclasses import dataclass

from soak.kinds import Kind


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: Kind
    title: str
    terminal: bool = True
    """The boot cannot go on (the VM is dead, frozen or hung): stop it and apply the restart policy."""
    message: str = ""
    """Details for the journal and the evidence; never part of the title."""
