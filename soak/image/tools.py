"""Running the host tools an image build needs: always with a timeout, failures as one-line ImageErrors."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from soak.errors import ImageError


def run_tool(argv: Sequence[str], *, timeout: float, cwd: Path | None = None, hint: str = "") -> str:
    """Run a tool with the C locale and return its stdout.

    :raise ImageError: the tool is missing (the message ends with ``hint``), timed
        out, or failed (the message quotes apt's ``E:`` lines, else its last lines).
    """
    try:
        proc = subprocess.run(
            list(argv), cwd=cwd, env={**os.environ, "LC_ALL": "C"}, capture_output=True, text=True,
            timeout=timeout, check=False, stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise ImageError(f"{argv[0]} not found" + (f": {hint}" if hint else "")) from exc
    except subprocess.TimeoutExpired as exc:
        raise ImageError(f"`{' '.join(argv[:3])} ...` did not finish within {timeout:.0f} s") from exc
    except OSError as exc:
        raise ImageError(f"cannot run {argv[0]}: {exc}") from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        said = [ln for ln in lines if ln.startswith("E:")] or lines[-3:] or [f"exit code {proc.returncode}"]
        raise ImageError(f"`{' '.join(argv[:3])} ...` failed: {' | '.join(said)}")
    return proc.stdout
