"""Parsing guest lines and formatting host commands: pure functions."""

from __future__ import annotations

import pytest

from soak.vm.agent import (
    Ack,
    AgentLog,
    Err,
    Garbled,
    Heartbeat,
    Hello,
    JobExit,
    JobOutput,
    format_command,
    parse_line,
)

HELLO = ("HELLO 1 release=6.1.0-56-cloud-amd64 nproc=2 memtotal=223388 "
         "boot=f46da3e8-5a3f-4e05-b108-67e66fb7a723 image=35aaf3e20b3a5d9187b1 features=agent,pvpanic,stress-ng hb=0.5")


def test_hello() -> None:
    msg = parse_line(HELLO, 7.0)
    assert msg == Hello(7.0, 1, "6.1.0-56-cloud-amd64", 2, 223388, "f46da3e8-5a3f-4e05-b108-67e66fb7a723",
                        "35aaf3e20b3a5d9187b1", frozenset({"agent", "pvpanic", "stress-ng"}), 0.5)


def test_hello_tolerates_unknown_and_missing_fields() -> None:
    msg = parse_line("HELLO 2 release=x future=1", 1.0)
    assert isinstance(msg, Hello) and msg.proto == 2 and msg.nproc == 0 and msg.features == frozenset()


def test_heartbeat() -> None:
    assert parse_line("HB 12 up=11.13 load1=0.25 memfree=163712 memavail=167248 extra=1", 3.5) == \
        Heartbeat(3.5, 12, 11.13, 0.25, 163712, 167248)


@pytest.mark.parametrize(("line", "expected"), [
    ("OUT 3 stress-ng: info:  [107] dispatching hogs: 1 cpu", JobOutput(0.0, 3, "stress-ng: info:  [107] dispatching hogs: 1 cpu")),
    ("OUT 3 ", JobOutput(0.0, 3, "")),
    ("OUT 3", JobOutput(0.0, 3, "")),
    ("OUT 4  leading  spaces kept", JobOutput(0.0, 4, " leading  spaces kept")),
    ("EXIT 3 143", JobExit(0.0, 3, 143)),
    ("EXIT 3 0 truncated=1", JobExit(0.0, 3, 0, True)),
    ("ACK 9", Ack(9, 0.0)),
    ("ERR 4 unknown command bogus", Err(4, "unknown command bogus", 0.0)),
    ("LOG insmod pvpanic failed", AgentLog(0.0, "insmod pvpanic failed")),
])
def test_replies_and_output(line: str, expected: object) -> None:
    assert parse_line(line, 0.0) == expected


@pytest.mark.parametrize("line", [
    "", "hello", "HB", "HB x up=1", "HB 1 up=1", "EXIT 3", "EXIT x 1", "ACK", "OUT x y",
    "HELLO", "\x00\x01garbage", "[    1.0] a kernel line on the wrong port",
])
def test_anything_else_is_garbled_not_an_error(line: str) -> None:
    assert parse_line(line, 2.0) == Garbled(2.0, line)


def test_format_command() -> None:
    assert format_command(5, "run", "10 uname -r") == b"5 run 10 uname -r\n"
    assert format_command(6, "poweroff") == b"6 poweroff\n"
    with pytest.raises(ValueError, match="one line"):
        format_command(7, "run", "10 echo a\n8 sysrq c")
