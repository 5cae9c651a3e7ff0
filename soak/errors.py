"""The one error tree of soak.

Guest failures are *findings*, never exceptions: a kernel panic in a guest is
soak working as intended. Exceptions are for soak's own inability to work::

    Exception
     +-- SoakError                 exit code 3 unless a subclass says otherwise
          +-- UsageError           exit 2: bad command line
          +-- ProfileError         exit 2: a profile is invalid (file, field, problem)
          +-- CapacityError        exit 2: the profile asks for more than this host has
          +-- InfraError           exit 3: the machinery failed, not the guest
               +-- ImageError      the guest image cannot be built or found
               +-- AccelError      no usable accelerator / QEMU binary
               +-- LaunchError     QEMU did not start (argv, exit code, output kept)
               +-- QMPError        QMP failed to connect or answer in time
               +-- AgentError      the guest agent channel failed
                    +-- AgentRefused  the agent answered: it will not (QEMU guest agent errors)
               +-- MetricsError    the metrics endpoint cannot be served
               +-- HistoryError    the run history cannot be used (locked, damaged, newer)
          +-- MigrationError       a live migration did not complete: the runner records it as a
                                   ``migration-failure`` finding (QEMU's words kept), not soak's error

Third-party exceptions are wrapped where they enter soak, with ``from exc``,
and cancellation is never wrapped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar


class SoakError(Exception):
    """Root of every error soak raises on purpose."""

    exit_code: ClassVar[int] = 3


class UsageError(SoakError):
    """The command line asks for something that cannot be done."""

    exit_code = 2


class ProfileError(SoakError):
    """A profile is invalid; the message names the file, the field and the problem."""

    exit_code = 2

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path = path
        self.field = field
        self.problem = problem
        where = f"{path}: {field}" if field else path
        super().__init__(f"{where}: {problem}")


class CapacityError(SoakError):
    """A profile asks for more memory or disk than this host has; found before any QEMU starts."""

    exit_code = 2


class InfraError(SoakError):
    """soak's own machinery failed; the guests are not to blame."""


class ImageError(InfraError):
    """The guest image cannot be built, downloaded or found."""


class AccelError(InfraError):
    """No usable QEMU binary or accelerator."""


class LaunchError(InfraError):
    """QEMU failed to start; carries the evidence a user needs to reproduce it."""

    def __init__(
        self,
        message: str,
        *,
        argv: Sequence[str] = (),
        exit_code: int | None = None,
        output: str = "",
    ) -> None:
        self.argv = list(argv)
        self.returncode = exit_code
        self.output = output
        super().__init__(message)


class QMPError(InfraError):
    """A QMP command failed, or did not answer before its deadline."""


class AgentError(InfraError):
    """The guest agent channel could not be used."""


class AgentRefused(AgentError):
    """The agent answered a command with an error (QEMU's guest agent: its error class and words)."""

    def __init__(self, message: str, *, error_class: str = "", desc: str = "") -> None:
        self.error_class = error_class
        self.desc = desc
        super().__init__(message)


class MetricsError(InfraError):
    """The Prometheus endpoint could not be served."""


class HistoryError(InfraError):
    """The run history store cannot be used: locked too long, damaged, written by a newer soak."""


class MigrationError(SoakError):
    """A live migration failed or did not finish in time; carries QEMU's own words."""

    def __init__(self, message: str, *, qemu_error: str = "") -> None:
        self.qemu_error = qemu_error
        super().__init__(message)
