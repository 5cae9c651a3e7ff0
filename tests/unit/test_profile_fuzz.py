"""Fuzzing `soak profile check` with mutations of the shipped profiles.

Every mutation (a wrong type, a value out of range, NaN, a huge number, unicode,
deep nesting, a deleted, duplicated or unknown key, a damaged line) must end in
one of two ways: rejected with exit 2 and exactly one line on stderr naming the
file (never a traceback), or accepted with the fleet expanded. The mutator is
seeded, so a failure names its case and replays; `CASES` cases run in-process
through `soak.cli.main`, and a few through a real subprocess for the true exit
code and stderr.
"""

from __future__ import annotations

import copy
import datetime
import math
import random
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from soak.cli import main

REPO = Path(__file__).resolve().parents[2]
PROFILES = sorted((REPO / "profiles").glob("*.toml"))
SEED = 8_2026
CASES = 1000
"""About 10 s on this loaded 2-core host; each case is one mutated profile through the whole CLI."""

Path_ = tuple[str | int, ...]

ODD_STRINGS = [
    "", " ", "0", "0s", "-1s", "1000y", "1e9d", "999999999d", "nan", "inf", "1-0", "0-9999999",
    "900T", "1.5M", "-5M", "auto", "pause", "../../../tmp/evil", "a/b", ".hidden",
    "ünïcödé", "名前", "😀", "e\u0301", "\u202eevil", "tab\there", "new\nline", "nul\x00byte",
    "\x1b[31mred", "x" * 5000, "1h" * 40, "[", '"', "\\",
]
ODD_NUMBERS: list[Any] = [
    0, -1, 1, 2, 7, 255, 256, 1000, 10**6, 2**31, 2**63, 2**64, 10**30, -(10**30), 10**4000,
    0.0, -0.5, 0.5, 1e-308, 1e308, math.nan, math.inf, -math.inf, True, False,
]
ODD_OTHERS: list[Any] = [
    [], [1], ["a"], [[]], [{}], {}, {"x": 1}, {"name": "z"},
    datetime.datetime(1979, 5, 27, 7, 32, tzinfo=datetime.UTC), datetime.date(2026, 1, 1),
    datetime.time(12, 0),
]


def _deep(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


# ------------------------------------------------------------------ a small TOML writer


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_string(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def to_toml(data: dict[str, Any]) -> str:
    """Every top-level key as ``key = inline value``: valid TOML for any tree."""
    return "".join(f"{_toml_string(k)} = {_toml_value(v)}\n" for k, v in data.items())


# ------------------------------------------------------------------ the mutator


def _paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    found: list[Path_] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _parent(data: Any, path: Path_) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


def _odd_value(rng: random.Random, old: Any) -> Any:
    pool = rng.choice([ODD_STRINGS, ODD_NUMBERS, ODD_OTHERS, "deep", "swap"])
    if pool == "deep":
        return _deep(rng.choice([2, 20, 150]))
    if pool == "swap":  # the same value, spelled as another type
        if isinstance(old, str):
            return [old] if rng.random() < 0.5 else len(old)
        if isinstance(old, bool | int | float):
            return str(old)
        return rng.choice(ODD_STRINGS)
    assert isinstance(pool, list)
    return copy.deepcopy(rng.choice(pool))


def mutate_tree(data: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], str]:
    """One to three edits at random places; returns the tree and what was done."""
    data = copy.deepcopy(data)
    done = []
    for _ in range(rng.randint(1, 3)):
        paths = _paths(data)
        if not paths:
            break
        path = rng.choice(paths)
        parent, key = _parent(data, path), path[-1]
        op = rng.choice(["set", "set", "set", "delete", "duplicate", "unknown-key", "wrap"])
        if op == "set":
            parent[key] = _odd_value(rng, parent[key])
        elif op == "delete":
            del parent[key]
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif op == "duplicate":  # the same table entry under a second name
            parent[f"{key}{rng.choice(['', '_', 'é'])}2"] = copy.deepcopy(parent[key])
        elif op == "unknown-key" and isinstance(parent, dict):
            parent[rng.choice(["typo", "ünï", "a b", "x" * 300, "new\nline", ""])] = 1
        else:
            parent[key] = [parent[key]] if rng.random() < 0.5 else {"value": parent[key]}
        done.append(f"{op} {'.'.join(map(str, path))}")
    return data, "; ".join(done)


def mutate_text(text: str, rng: random.Random) -> tuple[str, str]:
    """Damage the file itself: duplicate, drop or cut lines, insert odd bytes, nest deeply."""
    lines = text.splitlines(keepends=True) or ["\n"]
    i = rng.randrange(len(lines))
    op = rng.choice(["duplicate-line", "drop-line", "truncate", "insert", "deep"])
    if op == "duplicate-line":
        lines.insert(i, lines[i])
    elif op == "drop-line":
        del lines[i]
    elif op == "truncate":
        return text[: rng.randrange(len(text) + 1)], op
    elif op == "insert":
        lines.insert(i, rng.choice(["\ufeff", "\x00", "=", "[run]\n", "[[group]]\n", "é = 1\n", "\udcff"]))
    else:
        depth = rng.choice([50, 900, 5000])
        lines.append("deep = " + "[" * depth + "]" * depth + "\n")
    return "".join(lines), f"{op} at line {i + 1}"


def _cases() -> list[tuple[str, str, Callable[[Path], None]]]:
    rng = random.Random(SEED)
    originals = [(p.name, p.read_text(encoding="utf-8")) for p in PROFILES]
    cases = []
    for n in range(CASES):
        name, text = rng.choice(originals)
        if rng.random() < 0.8:
            tree, what = mutate_tree(tomllib.loads(text), rng)
            body = to_toml(tree)
        else:
            body, what = mutate_text(text, rng)
        encoded = body.encode("utf-8", "surrogateescape")

        def write(path: Path, data: bytes = encoded) -> None:
            path.write_bytes(data)

        cases.append((f"case {n}: {name}: {what}", body, write))
    return cases


# ------------------------------------------------------------------ the tests


def _check(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        result = main(argv)
        code = 0 if result is None else int(result)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_every_mutation_is_rejected_in_one_line_or_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mutant.toml"
    rejected = accepted = 0
    for label, body, write in _cases():
        write(path)
        code, out, err = _check(["profile", "check", str(path)], capsys)
        context = f"{label}\n--- profile ---\n{body[:600]}\n--- stderr ---\n{err[:2000]}"
        assert "Traceback" not in err and "internal error" not in err, context
        if code == 0:
            assert f"{path}: ok" in out, context
            accepted += 1
            continue
        assert code == 2, context
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and err.count("\n") == 1, context
        assert lines[0].startswith(f"ProfileError: {path}"), context
        rejected += 1
    # a fuzzer that only ever produced garbage (or only valid profiles) would prove little
    assert rejected > CASES // 4 and accepted > CASES // 20, (rejected, accepted)


NAMED_CASES = [
    ('[run]\nname = "../../../tmp/evil"\n[[group]]\nname = "a"\n', "run.name"),
    ('[run]\nduration = "0s"\n[[group]]\nname = "a"\n', "run.duration"),
    ('[run]\nduration = "365000d"\n[[group]]\nname = "a"\n', "run.duration"),
    ('[run]\nduration = nan\n[[group]]\nname = "a"\n', "run.duration"),
    ('[[group]]\nname = "a"\ncount = 2\nfault = [{ type = "pause", every = "1m", vms = [7] }]\n',
     "group[0].fault"),
    ('[[group]]\nname = "a"\nmemory = "900T"\n', "group[0].memory"),
    ("deep = " + "[" * 5000 + "]" * 5000 + '\n[[group]]\nname = "a"\n', ""),
    ('[[group]]\nname = "a"\ncount = ' + "9" * 5000 + "\n", ""),
]
"""The issue's own examples: each names its field in one line, for `profile check` and `run`."""


@pytest.mark.parametrize(("body", "field"), NAMED_CASES)
def test_named_cases_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    for command in (["profile", "check", str(path)], ["run", str(path)]):
        code, _, err = _check(command, capsys)
        prefix = f"ProfileError: {path}: {field}: " if field else f"ProfileError: {path}: "
        assert code == 2 and err.count("\n") == 1 and err.startswith(prefix), err


@pytest.mark.parametrize(("body", "field"), [NAMED_CASES[0], NAMED_CASES[4], NAMED_CASES[6]])
def test_real_exit_code_and_stderr(tmp_path: Path, body: str, field: str) -> None:
    """A few through a real process: the true exit code and nothing else on stderr."""
    path = tmp_path / "bad.toml"
    path.write_text(body)
    for command in (["profile", "check", str(path)], ["run", str(path)]):
        done = subprocess.run([sys.executable, "-m", "soak", *command], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)
        assert done.returncode == 2, done
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        prefix = f"ProfileError: {path}: {field}: " if field else f"ProfileError: {path}: "
        assert done.stderr.startswith(prefix), done.stderr
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_the_mutator_writes_valid_toml_for_unmutated_profiles() -> None:
    for path in PROFILES:
        data = tomllib.loads(path.read_text())
        assert tomllib.loads(to_toml(data)) == data
