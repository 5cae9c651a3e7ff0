"""soak's own apt state for guest architectures (or Debian suites) the host's apt is not set up for.

Building an arm64 or i386 image must not change the host: no ``dpkg
--add-architecture``, no new sources, and never an ``apt-get update`` of the
host's lists that could start failing (this mirror's bookworm-security i386
index fails its size check, see facts/guests.md). So each foreign
architecture gets a private apt root under the cache::

    CACHE/apt/<debian-arch>[-<suite>]/
        sources.list     the host's Debian mirrors (or deb.debian.org), this arch only
        lists/ cache/    apt's lists and binary cache
        status           empty: nothing is "installed" in this view
        updated          stamp of the last successful refresh
        notes            what that refresh could not fetch, repeated in every image built from it

and every apt call gets ``-o`` options pointing there. The lists are refreshed
when missing or older than `MAX_AGE`, and on a forced build. An index that
fails to download is not fatal when the suite's main index is there: the
build goes on with what apt has and says which index was missing.
"""

from __future__ import annotations

import getpass
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from soak.errors import ImageError
from soak.image.apt import QUERY_TIMEOUT, Apt, run_tool

MAX_AGE = 24 * 3600.0
UPDATE_TIMEOUT = 600.0
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
_FAILED = re.compile(r"E: Failed to fetch (\S+)\s+([^|\[]*)")


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the Debian archive is: the host's mirrors, or the defaults."""

    mirror: str
    security: str
    suite: str
    """The host's release codename (bookworm)."""


def host_sources() -> Sources:
    """The host's Debian mirror, security mirror and release, from ``apt-get indextargets``."""
    try:
        out = run_tool(["apt-get", "indextargets", "--format", "$(REPO_URI)\t$(RELEASE)"], timeout=QUERY_TIMEOUT)
    except ImageError:
        out = ""
    mirror = security = suite = ""
    for line in out.splitlines():
        uri, _, release = line.partition("\t")
        uri = uri.rstrip("/")
        if uri.endswith("/debian-security"):
            security = security or uri
        elif uri.endswith("/debian") and "-" not in release:
            mirror, suite = mirror or uri, suite or release
    return Sources(mirror or DEFAULT_MIRROR, security or DEFAULT_SECURITY, suite or _os_codename())


def _os_codename() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip('"') or "bookworm"
    except OSError:
        pass
    return "bookworm"


def sources_list(arch: str, sources: Sources, suite: str | None = None) -> str:
    """A sources.list for ``arch`` only: the suite, its updates and its security suite."""
    suite = suite or sources.suite
    opts = f"arch={arch}" + (f" signed-by={KEYRING}" if KEYRING.is_file() else "")
    return "".join(f"deb [{opts}] {uri} {s} main\n" for uri, s in (
        (sources.mirror, suite), (sources.mirror, f"{suite}-updates"), (sources.security, f"{suite}-security")))


class AptState:
    """A private apt root for one architecture (and suite)."""

    def __init__(self, cache_root: Path, arch: str, suite: str | None = None) -> None:
        self.arch = arch
        self.suite = suite
        self.root = cache_root / "apt" / (arch + (f"-{suite}" if suite else ""))

    @property
    def apt(self) -> Apt:
        r = self.root
        options = {
            "Dir::State": r, "Dir::State::Lists": r / "lists", "Dir::State::status": r / "status",
            "Dir::Cache": r / "cache", "Dir::Etc::SourceList": r / "sources.list",
            "Dir::Etc::SourceParts": r / "sources.list.d", "Dir::Etc::Preferences": r / "preferences",
            "Dir::Etc::PreferencesParts": r / "preferences.d", "APT::Architecture": self.arch,
            "APT::Architectures::": self.arch,
            # apt drops to _apt for downloads, which cannot enter a private home; stay who we are.
            "APT::Sandbox::User": getpass.getuser(),
        }
        return Apt(self.arch, tuple(a for k, v in options.items() for a in ("-o", f"{k}={v}")))

    def age(self) -> float | None:
        """Seconds since the last successful refresh, None if never."""
        try:
            return time.time() - (self.root / "updated").stat().st_mtime
        except OSError:
            return None

    def ensure(self, *, force: bool = False, progress: Callable[[str], None] = lambda _: None) -> list[str]:
        """Refresh the lists when missing, stale or ``force``d; returns notes about indexes that failed.

        A refresh that fails while older lists exist keeps them (an offline host
        can still use its cached image): the note says so.

        :raise ImageError: there are no usable lists at all.
        """
        age = self.age()
        if not force and age is not None and age < MAX_AGE:
            return self.notes()
        try:
            return self.update(progress)
        except ImageError as exc:
            if age is None:
                raise
            return [f"apt ({self.arch}): refresh failed, using lists {age / 3600:.0f} h old: {exc}"]

    def update(self, progress: Callable[[str], None]) -> list[str]:
        """``apt-get update`` in the private root.

        :raise ImageError: the suite's main index could not be fetched.
        """
        for d in ("lists/partial", "cache/archives/partial", "sources.list.d", "preferences.d"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "status").touch()
        (self.root / "sources.list").write_text(sources_list(self.arch, host_sources(), self.suite))
        progress(f"refreshing the {self.arch} package lists in {self.root}")
        notes: list[str] = []
        try:
            self.apt._run("apt-get", ["update", "-q"], timeout=UPDATE_TIMEOUT)
        except ImageError as exc:
            failed = self._failed_indexes(str(exc))
            only_extras = bool(failed) and all("-updates/" in f or "-security/" in f for f in failed)
            if not (only_extras and self._main_index_present()):
                raise ImageError(f"apt-get update for {self.arch} failed: {exc}") from exc
            notes.append(f"apt ({self.arch}): {'; '.join(failed) or exc}; packages come from the other indexes")
        (self.root / "notes").write_text("".join(f"{n}\n" for n in notes))
        (self.root / "updated").touch()
        return notes

    def notes(self) -> list[str]:
        """What the last refresh had to say (failed indexes), kept for every later build."""
        try:
            return [n for n in (self.root / "notes").read_text().splitlines() if n]
        except OSError:
            return []

    def _main_index_present(self) -> bool:
        lists = self.root / "lists"
        return any(p for p in lists.glob(f"*_main_binary-{self.arch}_Packages*") if "-updates_" not in p.name
                   and "-security_" not in p.name)

    @staticmethod
    def _failed_indexes(message: str) -> list[str]:
        return [f"{m.group(1).rsplit('/dists/', 1)[-1]} could not be fetched ({m.group(2).strip()})"
                for m in _FAILED.finditer(message)]

