"""Debian packages through apt's own command-line tools.

Resolution asks ``apt-cache`` for candidate versions; downloads use ``apt-get
download`` pinned to those versions (no root needed, nothing is installed);
extraction uses ``dpkg-deb -x``. An `Apt` is the archive as seen for one
architecture: the host's own apt, or soak's private state for another. Every call has a timeout and every failure
becomes an `ImageError` whose message says what to do.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from soak.errors import ImageError
from soak.image import tools

APT_TOOLS = ("apt-get", "apt-cache", "dpkg-deb")
NO_APT_HINT = (
    "the default guest image is built from Debian packages: run soak on Debian or Ubuntu "
    "(apt and dpkg), or set image.kernel and image.initrd in the profile"
)
QUERY_TIMEOUT = 60.0
DOWNLOAD_TIMEOUT = 900.0
EXTRACT_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True, order=True)
class Package:
    """A binary package at one exact version."""

    name: str
    version: str
    arch: str = "amd64"

    @property
    def filename(self) -> str:
        """The file name ``apt-get download`` gives it (an epoch's ``:`` becomes ``%3a``)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"

    def __str__(self) -> str:
        return f"{self.name}={self.version}"

    def spec(self, native: str) -> str:
        """How ``apt-get download`` names it: ``name:arch=version`` when it is not of ``native``'s arch."""
        if self.arch in (native, "all"):
            return str(self)
        return f"{self.name}:{self.arch}={self.version}"


def check_tools() -> None:
    """:raise ImageError: when apt or dpkg is missing."""
    missing = [t for t in APT_TOOLS if shutil.which(t) is None]
    if missing:
        raise ImageError(f"{', '.join(missing)} not found: {NO_APT_HINT}")


def run_tool(argv: Sequence[str], *, timeout: float, cwd: Path | None = None) -> str:
    """`tools.run_tool` with the hint for hosts without apt."""
    return tools.run_tool(argv, timeout=timeout, cwd=cwd, hint=NO_APT_HINT)


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """RFC 822-style records as apt-cache and dpkg print them; continuation lines are joined."""
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                records.append(current)
            current, key = {}, ""
        elif line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            current[key] = value.strip()
    if current:
        records.append(current)
    return records


_DEP_NAME = re.compile(r"^\s*([a-z0-9][a-z0-9+.-]*)")


def parse_depends(field: str) -> list[str]:
    """Package names of a Depends field; of ``a | b`` alternatives the first is taken."""
    names: list[str] = []
    for clause in field.split(","):
        m = _DEP_NAME.match(clause.split("|")[0])
        if m and m.group(1) not in names:
            names.append(m.group(1))
    return names


@dataclass(frozen=True, slots=True)
class Apt:
    """One view of Debian's archive for one architecture.

    The host's own apt (no options), or soak's private apt state for another
    architecture or suite (`soak.image.aptstate`): the same commands with
    ``-o`` settings, so the host's dpkg architecture list and lists stay as they are.
    """

    arch: str = "amd64"
    """Debian's name of the architecture the packages are for."""
    options: tuple[str, ...] = ()
    """``-o Name=value`` arguments for every apt-get and apt-cache call."""

    def _run(self, tool: str, args: Sequence[str], *, timeout: float, cwd: Path | None = None) -> str:
        return run_tool([tool, *self.options, *args], timeout=timeout, cwd=cwd)

    def candidates(self, names: Sequence[str], *, strict: bool = True) -> dict[str, dict[str, str]]:
        """The candidate version's record of each package, by name.

        With ``strict=False`` names apt cannot select (virtual packages) are left out.

        :raise ImageError: a package is unknown to apt (the hint is ``apt-get update``).
        """
        if not names:
            return {}
        if not strict:
            names = self.selectable(names)
            if not names:
                return {}
        try:
            out = self._run("apt-cache", ["show", "--no-all-versions", *names], timeout=QUERY_TIMEOUT)
        except ImageError as exc:
            raise ImageError(f"{exc} (is `apt-get update` needed?)") from exc
        records = {r["Package"]: r for r in parse_stanzas(out) if "Package" in r}
        missing = [n for n in names if n not in records]
        if missing and strict:
            raise ImageError(f"apt knows no {self.arch} package {', '.join(missing)}: run `apt-get update`")
        return records

    def selectable(self, names: Sequence[str]) -> list[str]:
        """The names that have a candidate version (virtual and unknown ones do not)."""
        out = self._run("apt-cache", ["policy", *names], timeout=QUERY_TIMEOUT)
        found: list[str] = []
        name = ""
        for line in out.splitlines():
            if line and not line[0].isspace() and line.endswith(":"):
                name = line[:-1].split(":")[0]
            elif line.strip().startswith("Candidate:") and line.split(":", 1)[1].strip() != "(none)":
                found.append(name)
        return [n for n in names if n in found]

    def package(self, record: dict[str, str]) -> Package:
        return Package(record["Package"], record["Version"], record.get("Architecture", self.arch))

    def download(self, packages: Sequence[Package], debs_dir: Path) -> dict[Package, Path]:
        """Each package's .deb in ``debs_dir``, downloading only the missing ones.

        Downloads land in a temporary directory first, so a crash never leaves a
        partial .deb under its final name.
        """
        debs_dir.mkdir(parents=True, exist_ok=True)
        missing = [p for p in packages if not (debs_dir / p.filename).is_file()]
        if missing:
            with tempfile.TemporaryDirectory(prefix=".download-", dir=debs_dir) as tmp:
                self._run("apt-get", ["download", *(p.spec(self.arch) for p in missing)],
                          timeout=DOWNLOAD_TIMEOUT, cwd=Path(tmp))
                for p in missing:
                    got = Path(tmp) / p.filename
                    if not got.is_file():
                        raise ImageError(f"apt-get download did not produce {p.filename}")
                    os.replace(got, debs_dir / p.filename)
        return {p: debs_dir / p.filename for p in packages}


def host_arch() -> str:
    """The host's Debian architecture (``dpkg --print-architecture``)."""
    return run_tool(["dpkg", "--print-architecture"], timeout=QUERY_TIMEOUT).strip()


def extract(deb: Path, dest: Path) -> None:
    """Unpack a .deb's files (not its scripts) under ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    run_tool(["dpkg-deb", "-x", str(deb), str(dest)], timeout=EXTRACT_TIMEOUT)


def control(deb: Path) -> dict[str, str]:
    """The control record of a .deb."""
    records = parse_stanzas(run_tool(["dpkg-deb", "-f", str(deb)], timeout=QUERY_TIMEOUT))
    if not records:
        raise ImageError(f"{deb}: empty control record")
    return records[0]
