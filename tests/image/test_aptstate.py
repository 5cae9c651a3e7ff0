"""soak's private apt state for foreign architectures: its sources, its options, its refresh policy."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from soak.errors import ImageError
from soak.image import aptstate
from soak.image.aptstate import AptState, Sources, sources_list

I386_FAILURE = ("`apt-get -o Dir::State=/c/apt/i386 ...` failed: E: Failed to fetch "
                "http://deb.debian.org/debian-security/dists/bookworm-security/main/binary-i386/Packages.xz  "
                "File has unexpected size (346968 != 370548). Mirror sync in progress? [IP: 203.0.113.80 80] | "
                "E: Some index files failed to download. They have been ignored, or old ones used instead.")


def test_sources_are_the_hosts_debian_mirrors_for_one_arch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aptstate, "run_tool", lambda argv, timeout: (
        "http://mirror.example/debian/\tbookworm\nhttp://mirror.example/debian/\tbookworm-updates\n"
        "http://security.example/debian-security/\tbookworm-security\nhttps://deb.nodesource.com/node_20.x/\tnodistro\n"))
    sources = aptstate.host_sources()
    assert sources == Sources("http://mirror.example/debian", "http://security.example/debian-security", "bookworm")
    text = sources_list("arm64", sources, "trixie")
    assert [line.split("] ")[1] for line in text.splitlines()] == [
        "http://mirror.example/debian trixie main", "http://mirror.example/debian trixie-updates main",
        "http://security.example/debian-security trixie-security main"]
    assert all(line.startswith("deb [arch=arm64") for line in text.splitlines())


def test_every_apt_call_is_pointed_at_the_private_root(tmp_path: Path) -> None:
    apt = AptState(tmp_path, "i386").apt
    options = dict(o.split("=", 1) for o in apt.options[1::2])
    assert apt.arch == "i386" and apt.options[::2] == ("-o",) * len(options)
    assert options["APT::Architecture"] == options["APT::Architectures::"] == "i386"
    for key in ("Dir::State", "Dir::State::Lists", "Dir::State::status", "Dir::Cache", "Dir::Etc::SourceList"):
        assert options[key].startswith(str(tmp_path / "apt" / "i386")), key
    assert AptState(tmp_path, "riscv64", "trixie").root == tmp_path / "apt" / "riscv64-trixie"


def _fake_update(state: AptState, monkeypatch: pytest.MonkeyPatch, *, fail: str | None, main_index: bool) -> None:
    monkeypatch.setattr(aptstate, "host_sources", lambda: Sources("http://m/debian", "http://s/debian-security",
                                                                  "bookworm"))

    def run(self: object, tool: str, args: list[str], **kw: object) -> str:
        if main_index:
            (state.root / "lists" / f"m_debian_dists_bookworm_main_binary-{state.arch}_Packages.lz4").write_bytes(b"")
        if fail:
            raise ImageError(fail)
        return ""

    monkeypatch.setattr(aptstate.Apt, "_run", run)


def test_a_failing_security_index_is_a_note_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = AptState(tmp_path, "i386")
    _fake_update(state, monkeypatch, fail=I386_FAILURE, main_index=True)
    notes = state.ensure(progress=lambda _: None)
    assert notes == ["apt (i386): bookworm-security/main/binary-i386/Packages.xz could not be fetched (File has "
                     "unexpected size (346968 != 370548). Mirror sync in progress?); packages come from the other "
                     "indexes"]
    assert state.age() is not None and state.notes() == notes  # kept for the builds that follow
    assert "arch=i386" in (state.root / "sources.list").read_text()


@pytest.mark.parametrize("main_index", [False, True])
def test_a_failing_main_index_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, main_index: bool) -> None:
    state = AptState(tmp_path, "arm64")
    failure = I386_FAILURE.replace("debian-security/dists/bookworm-security", "debian/dists/bookworm")
    _fake_update(state, monkeypatch, fail=failure, main_index=main_index)
    with pytest.raises(ImageError, match=r"apt-get update for arm64 failed: .*bookworm/main"):
        state.ensure()


def test_fresh_lists_are_not_refreshed_and_stale_ones_survive_a_failed_refresh(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = AptState(tmp_path, "arm64")
    _fake_update(state, monkeypatch, fail=None, main_index=True)
    assert state.ensure() == []
    monkeypatch.setattr(aptstate.Apt, "_run", lambda *a, **k: pytest.fail("fresh lists must not be refreshed"))
    assert state.ensure() == []
    old = time.time() - aptstate.MAX_AGE - 3600
    os.utime(state.root / "updated", (old, old))

    def offline(*a: object, **k: object) -> str:
        raise ImageError("`apt-get ...` failed: E: Could not resolve 'deb.debian.org'")

    monkeypatch.setattr(aptstate.Apt, "_run", offline)
    (notes,) = state.ensure()
    assert notes.startswith("apt (arm64): refresh failed, using lists 25 h old: ")
