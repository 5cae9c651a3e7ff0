"""Key-frame extraction: run a format's recipe over the report text.

A recipe is a list of steps: a regex "find" step consumes lines up to the
first match (its capture, if any, is a candidate frame); a STACK step collects
the function of every frame line up to the next stack-start marker. A find
step that follows a stack and matches inside it ends that stack. Candidates
whose raw name matches the skip regex are dropped (infrastructure frames).
When the recipe ends, or a second stack begins, one key frame is chosen from
the candidates: the first, or a picker's choice for stalls and hangs. No
candidate means the title says "corrupted".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from soak.classify.demangle import demangle
from soak.classify.formats import HINTS, SKIP, STACK, Picker, Recipe, Step
from soak.classify.patterns import (
    ANY_STACK_START,
    ARM_FRAME_LINE,
    FAULT_INJECTION_FRAME,
    FRAME_LINE,
    HANG_SKIPS,
    STALL_ANCHORS,
    SYSCALL_PREFIXES,
    NameMatcher,
    maybe_stack_start,
)

CORRUPTED = "corrupted"


@dataclass(frozen=True)
class Frame:
    """A key frame: its canonical name (for the title) and its raw name (for ALT titles)."""

    canonical: str
    raw: str


def canonical(name: str) -> str:
    """Strip the one syscall prefix that leaves the shortest name (never a chain)."""
    if not name.startswith(SYSCALL_PREFIXES):
        return name
    best = name
    for prefix in SYSCALL_PREFIXES:
        if name.startswith(prefix) and len(name) - len(prefix) < len(best):
            best = name[len(prefix) :]
    return best


def _pick_stall(frames: Sequence[str]) -> tuple[str, int]:
    """The frame just above the first dispatch anchor (the anchor itself if it is first)."""
    prev, prev_idx = frames[0], 0
    for i, frame in enumerate(frames):
        if STALL_ANCHORS.search(frame):
            if "smp_call_function" in frame:
                # Its callers vary; the cross-call itself is the identity.
                return "smp_call_function", i
            return prev, prev_idx
        prev, prev_idx = frame, i
    return "", -1


def _pick_hang(frames: Sequence[str]) -> tuple[str, int]:
    for i, frame in enumerate(frames):
        if "rtnl_lock" in frame:
            return frame, i
        if any(s in frame for s in ("synchronize_rcu", "synchronize_srcu", "synchronize_net",
                                    "synchronize_sched")):  # fmt: skip
            return "synchronize_rcu", i
    for i, frame in enumerate(frames):
        if not any(s in frame for s in HANG_SKIPS):
            return frame, i
    return "", -1


def _key_frame(raw: list[str], picker: Picker) -> Frame | None:
    if not raw:
        return None
    names = [canonical(name) for name in raw]
    if picker is Picker.FIRST:
        return Frame(names[0], raw[0])
    name, idx = _pick_stall(names) if picker is Picker.STALL else _pick_hang(names)
    return Frame(name, raw[idx]) if name else None


def _has_any(line: str, hints: tuple[str, ...]) -> bool:
    for hint in hints:  # noqa: SIM110 -- a plain loop is twice as fast as any() here
        if hint in line:
            return True
    return False


def _add(raw: list[str], match: re.Match[str] | None, skip: NameMatcher | None) -> None:
    if match is None:
        return
    for name in match.groups():
        if name:
            if name.startswith("_R"):
                name = demangle(name)
            if not SKIP(name) and (skip is None or not skip(name)):
                raw.append(name)


def _run(steps: Sequence[Step], lines: list[str], recipe: Recipe) -> tuple[list[Frame], bool]:
    skip = recipe.skips
    raw: list[str] = []
    frames: list[Frame] = []
    ok = True
    stacks = 0
    li = 0
    n = len(lines)
    idx = 0
    while True:
        if idx == len(steps) or (steps[idx] is STACK and stacks > 0):
            key = _key_frame(raw, recipe.picker)
            if key is None:
                key, ok = Frame(CORRUPTED, CORRUPTED), False
            frames.append(key)
            raw = []
        if idx == len(steps):
            return frames, ok
        step = steps[idx]
        if step is STACK:
            stacks += 1
            nxt = steps[idx + 1] if idx + 1 < len(steps) else None
            nxt_hints = HINTS.get(nxt) if nxt is not None else None
            # With the first candidate taken, the rest of a final stack only matters for
            # where it ends and whether fault injection is mixed in.
            first_only = nxt is None and recipe.picker is Picker.FIRST
            while li < n:
                line = lines[li]
                li += 1
                if "should_fail" in line and FAULT_INJECTION_FRAME.search(line):
                    ok = False
                    break
                if maybe_stack_start(line) and ANY_STACK_START.search(line):
                    break
                if first_only and raw:
                    continue
                if nxt is not None and (nxt_hints is None or _has_any(line, nxt_hints)):
                    found = nxt.search(line)
                    if found:
                        _add(raw, found, skip)
                        idx += 1
                        break
                found = FRAME_LINE.match(line)
                if found is None and " from " in line:
                    found = ARM_FRAME_LINE.match(line)
                _add(raw, found, skip)
        else:
            hints = HINTS.get(step)
            while li < n:
                line = lines[li]
                li += 1
                if "should_fail" in line and FAULT_INJECTION_FRAME.search(line):
                    ok = False
                    break
                if hints is not None and not _has_any(line, hints):
                    continue
                found = step.search(line)
                if found:
                    _add(raw, found, skip)
                    break
        idx += 1


def extract_frames(recipe: Recipe, text: str) -> tuple[list[Frame], bool]:
    """Key frames of each stack segment; ok is False when any came out "corrupted"."""
    lines = text.split("\n")
    frames, ok = _run(recipe.steps, lines, recipe)
    if ok or not recipe.fallback:
        return frames, ok
    return _run(recipe.fallback, lines, recipe)
