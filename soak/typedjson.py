"""Building dataclasses from untrusted JSON, each field checked against its annotation.

A journal is read back by a later soak, possibly from a run that crashed, was
copied between hosts or was edited by hand, so a record that parses as JSON can
still hold a string where a number belongs, miss a field, or nest the wrong
shape. `build` checks every field against the dataclass's own type hints, so a
field added to an event is checked without touching this module, and a wrong
record is refused with one line naming the field instead of crashing whatever
folds it later.

Supported annotations: ``str``, ``int``, ``float`` (an int is accepted and made
a float; NaN and infinities are refused: nothing soak writes is non-finite),
``bool``, ``None``, unions (``X | None``), ``list[T]``, ``tuple[T, ...]``,
``dict[str, T]``, enums (by value), nested dataclasses and ``Any``. ``bool`` is
never taken for a number, nor a number for a ``bool``. Keys the dataclass does
not know are ignored (a newer soak may add fields); missing keys take the
field's default, and are an error when it has none.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


class FieldError(ValueError):
    """A JSON value does not fit its field; the message names the field path."""


def build(cls: type[T], data: object, path: str = "") -> T:
    """An instance of the dataclass ``cls`` from the JSON object ``data``.

    :raise FieldError: not an object, a field missing, or a value of the wrong type.
    :raise TypeError: ``cls`` has an annotation this module does not support (a soak bug).
    """
    if not isinstance(data, dict):
        raise FieldError(f"{path or 'record'}: expected an object, got {_show(data)}")
    values: dict[str, Any] = {}
    for f, hint in _init_fields(cls):  # type: ignore[arg-type]  # classes are hashable
        where = f"{path}.{f.name}" if path else f.name
        if f.name in data:
            values[f.name] = _check(data[f.name], hint, where)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise FieldError(f"{where}: missing")
    return cls(**values)


@cache
def _init_fields(cls: type[Any]) -> tuple[tuple[dataclasses.Field[Any], Any], ...]:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(cls) if f.init)


def _check(value: object, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if hint is type(None) or hint is None:
        if value is None:
            return None
        raise FieldError(f"{where}: expected null, got {_show(value)}")
    if origin is types.UnionType or origin is typing.Union:
        return _check_union(value, typing.get_args(hint), where)
    if origin is list or origin is tuple:
        return _check_sequence(value, hint, where)
    if origin is dict:
        return _check_mapping(value, hint, where)
    if origin is None and isinstance(hint, type):
        return _check_plain(value, hint, where)
    raise TypeError(f"{where}: annotation {hint!r} is not supported by soak.typedjson")


def _check_plain(value: object, hint: type[Any], where: str) -> Any:
    if issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except (ValueError, TypeError):
            choices = ", ".join(str(m.value) for m in hint)
            raise FieldError(f"{where}: {_show(value)} is not one of {choices}") from None
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value) if isinstance(value, float) or abs(value) < 2**1023 else math.inf
            if not math.isfinite(number):
                raise FieldError(f"{where}: expected a finite number, got {_show(value)}")
            return number
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"{where}: annotation {hint!r} is not supported by soak.typedjson")
    raise FieldError(f"{where}: expected {_NAMES[hint]}, got {_show(value)}")


_NAMES: dict[type[Any], str] = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _check_union(value: object, arms: tuple[Any, ...], where: str) -> Any:
    problems: list[str] = []
    for arm in arms:
        try:
            return _check(value, arm, where)
        except FieldError as exc:
            problems.append(str(exc).removeprefix(f"{where}: "))
    raise FieldError(f"{where}: " + " or ".join(problems))


def _check_sequence(value: object, hint: Any, where: str) -> Any:
    if not isinstance(value, list):
        raise FieldError(f"{where}: expected a list, got {_show(value)}")
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"{where}: only tuple[T, ...] is supported by soak.typedjson")
        return tuple(_check(item, args[0], f"{where}[{i}]") for i, item in enumerate(value))
    return [_check(item, args[0], f"{where}[{i}]") for i, item in enumerate(value)]


def _check_mapping(value: object, hint: Any, where: str) -> Any:
    key_type, value_type = typing.get_args(hint)
    if key_type is not str:
        raise TypeError(f"{where}: only dict[str, T] is supported by soak.typedjson")
    if not isinstance(value, dict):
        raise FieldError(f"{where}: expected an object, got {_show(value)}")
    return {key: _check(item, value_type, f"{where}.{key}") for key, item in value.items()}


def _show(value: object) -> str:
    """A short, safe rendering of a hostile value for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
