"""Reading a profile file: TOML to a validated `Profile`, every problem one line naming its field."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from soak.errors import ProfileError
from soak.profile.fields import (
    MAX_PROFILE_BYTES,
    quoted,
)
from soak.profile.fleet import Profile


def load_profile(path: Path, overrides: dict[str, Any] | None = None) -> Profile:
    """Read and validate a profile file; ``overrides`` replace ``run.*`` settings.

    :raise ProfileError: unreadable file, bad TOML, or an invalid field.
    """
    source = _printable_path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise ProfileError(source, "", f"cannot read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_PROFILE_BYTES:
        raise ProfileError(source, "", f"too large for a profile (more than {MAX_PROFILE_BYTES // 1024} KiB)")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProfileError(source, "", "not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(source, "", f"not valid TOML: {exc}") from exc
    except ValueError as exc:  # tomllib lets int()'s own errors through (a 5000-digit number)
        raise ProfileError(source, "", f"not valid TOML: {str(exc).split(';')[0]}") from exc
    except RecursionError:
        raise ProfileError(source, "", "not valid TOML: nested too deeply") from None
    if overrides and isinstance(data.get("run", {}), dict):  # else validation names `run`
        run = dict(data.get("run", {}))
        run.update({k: v for k, v in overrides.items() if v is not None})
        data["run"] = run
    return validate_profile(data, source)


def _printable_path(path: Path) -> str:
    """The path for a one-line message: control characters escaped."""
    text = str(path)
    return text if text.isprintable() else repr(text)[1:-1]


def validate_profile(data: dict[str, Any], source: str) -> Profile:
    """Validate parsed TOML; the first problem becomes a ProfileError.

    :raise ProfileError: naming the field (``group[1].vcpus``) and the problem.
    """
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # In a union (vcpus = 4 | [..] | "1-8") our own explanation beats "not an int".
        error = next((e for e in errors if e["type"] == "value_error"), errors[0])
        raise ProfileError(source, _field_path(error["loc"]), _problem(error)) from None
    except RecursionError:  # pydantic on data nested deeper than any profile needs
        raise ProfileError(source, "", "nested too deeply") from None


_UNION_TAGS = frozenset({"int", "list[int]", "IntRange", "str"})


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]" if parts else f"[{item}]"]
        elif str(item) in _UNION_TAGS or "(" in str(item):
            continue  # pydantic's names for union members and validators, not a user's field
        else:
            parts.append(_key(str(item)))
    return ".".join(parts) or "(top level)"


def _key(name: str) -> str:
    """A field name as TOML would quote it when it is not a bare key (``"na me"``)."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        return name
    return quoted(name)


def _problem(error: Any) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if error["type"] == "extra_forbidden":
        return "unknown field (check the spelling)"
    if error["type"] == "missing":
        return "required field is missing"
    if "input" in error and error["type"] not in ("value_error",) and not isinstance(
        error["input"], dict | list
    ):
        message = f"{message} (got {quoted(error['input'])})"
    return " ".join(message.split())  # one line, whatever the input held

