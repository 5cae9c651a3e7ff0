"""Imports point downward only: each package of soak may import its own layer and the layers below.

The layers, top to bottom, are the README's layout table. A new package must
be placed in LAYERS before it can be imported; an import that points up is a
design change to discuss, not a line to add here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "soak"

LAYERS: list[set[str]] = [
    {"cli", "__main__"},
    {"session"},
    {"supervisor", "exporter", "live", "render", "merged", "summary", "history", "report", "compare", "shard"},
    {"guest"},
    {"machine"},
    {"profile", "recorder", "rundir", "metrics", "preflight"},
    {"runmodel"},
    {"journal"},
    {"faults", "load", "devices"},
    {"vm", "image", "accel", "kvmprobe", "hostload", "hostoom", "classify", "detect", "diskio"},
    {"arch", "firmware"},
    {"events"},
    {"kinds", "errors", "units", "clock", "typedjson", "__init__"},
]
"""Top-level packages and modules of soak, by layer."""


def layer_of(part: str) -> int:
    for i, layer in enumerate(LAYERS):
        if part in layer:
            return i
    raise AssertionError(f"soak.{part} is in no layer: add it to LAYERS in {__file__}")


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, first component below ``soak``) of each import of soak in a file."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "soak":
                continue
            if len(parts) > 1:
                found.append((node.lineno, parts[1]))
            else:  # from soak import clock, events
                found += [(node.lineno, alias.name) for alias in node.names if alias.name != "__version__"]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1]) for a in node.names
                      if a.name.startswith("soak.")]
    return found


def owner(path: Path) -> str:
    relative = path.relative_to(SOAK)
    return relative.parts[0].removesuffix(".py")


@pytest.mark.parametrize("path", sorted(SOAK.rglob("*.py")), ids=lambda p: str(p.relative_to(SOAK)))
def test_imports_point_down(path: Path) -> None:
    mine = layer_of(owner(path))
    upward = [f"line {line}: soak.{target} (layer {layer_of(target)})"
              for line, target in imports(path) if target != owner(path) and layer_of(target) < mine]
    assert not upward, f"soak/{path.relative_to(SOAK)} (layer {mine}) imports upward: {'; '.join(upward)}"


def test_profile_and_faults_do_not_import_each_other_both_ways() -> None:
    def targets(package: str) -> set[str]:
        root = SOAK / package
        files = list(root.rglob("*.py")) if root.is_dir() else [SOAK / f"{package}.py"]
        return {target for f in files for _, target in imports(f)}

    assert "profile" not in targets("faults")
    assert "profile" not in targets("load")
