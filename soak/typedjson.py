"""Building dataclasses from untrusted JSON, each field checked against its annotation.

A journal is read back by a later soak, possibly from a run that crashed, was
copied between hosts or was edited by hand, so a record that parses as JSON can
still hold a string where a number belongs, miss a field, or nest the wrong
shape. `build` checks every field against the dataclass's own type hints, so a
field added to an event is checked without touching this module, and a wrong
record is refused with one line naming the field instead of crashing whatever
folds it later.

Supported annotations: ``str``, ``int`` (within 64 bits), ``float`` (an int is
accepted and made a float; NaN, infinities and magnitudes past `MAX_FLOAT` are
refused: nothing soak measures comes near, and sums of them stay finite),
``bool``, ``None``, unions (``X | None``), ``list[T]``, ``tuple[T, ...]``,
``dict[str, T]``, enums (by value), nested dataclasses and ``Any``. ``bool`` is
never taken for a number, nor a number for a ``bool``. Keys the dataclass does
not know are ignored (a newer soak may add fields); missing keys take the
field's default, and are an error when it has none.

Speed: one checker function per annotation is built once and cached, so a
journal of a million records is checked at the speed of a few ``type()`` tests
per field (see bench/replay.py).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")
Checker = Callable[[object], Any]
"""Returns the value to keep (ints made floats, enums made members) or raises `FieldError`."""

MAX_INT = 2**63 - 1
MAX_FLOAT = 1e18


class FieldError(ValueError):
    """A JSON value does not fit its field; ``path`` names the field (``vms[0].vcpus``)."""

    def __init__(self, problem: str, path: list[str] | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = path or []

    def __str__(self) -> str:
        where = "".join(p if p.startswith("[") or i == 0 else f".{p}" for i, p in enumerate(self.path))
        return f"{where}: {self.problem}" if where else self.problem


def build(cls: type[T], data: object) -> T:
    """An instance of the dataclass ``cls`` from the JSON object ``data``.

    :raise FieldError: not an object, a field missing, or a value of the wrong type.
    :raise TypeError: ``cls`` has an annotation this module does not support (a soak bug).
    """
    checker = _DATACLASS_CHECKERS.get(cls)
    if checker is None:
        checker = _DATACLASS_CHECKERS[cls] = _dataclass_checker(cls)
    result: T = checker(data)
    return result


_DATACLASS_CHECKERS: dict[type[Any], Checker] = {}


def _dataclass_checker(cls: type[Any]) -> Checker:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = [
        (f.name, _checker(hints[f.name], f"{cls.__name__}.{f.name}"),
         f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        for f in dataclasses.fields(cls)
        if f.init
    ]

    def check(data: object) -> Any:
        if not isinstance(data, dict):
            raise FieldError(f"expected an object, got {_show(data)}")
        values: dict[str, Any] = {}
        for name, checker, required in fields:
            if name in data:
                try:
                    values[name] = checker(data[name])
                except FieldError as exc:
                    exc.path.insert(0, name)
                    raise
            elif required:
                raise FieldError("missing", [name])
        return cls(**values)

    return check


@cache
def _checker(hint: Any, where: str) -> Checker:
    """The checker of one annotation; ``where`` names it in a TypeError for an unsupported one."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return lambda value: value
    if hint is type(None) or hint is None:
        return _expect_null
    if origin is types.UnionType or origin is typing.Union:
        return _union_checker(tuple(_checker(arm, where) for arm in typing.get_args(hint)))
    if origin is list or origin is tuple:
        return _sequence_checker(hint, where)
    if origin is dict:
        key_type, value_type = typing.get_args(hint)
        if key_type is not str:
            raise TypeError(f"{where}: only dict[str, T] is supported by soak.typedjson")
        return _mapping_checker(_checker(value_type, where))
    if origin is None and isinstance(hint, type):
        if issubclass(hint, enum.Enum):
            return _enum_checker(hint)
        if dataclasses.is_dataclass(hint):
            return lambda value: build(hint, value)
        plain = _PLAIN.get(hint)
        if plain is not None:
            return plain
    raise TypeError(f"{where}: annotation {hint!r} is not supported by soak.typedjson")


def _expect_null(value: object) -> None:
    if value is not None:
        raise FieldError(f"expected null, got {_show(value)}")


def _expect_str(value: object) -> str:
    if type(value) is str:
        return value
    raise FieldError(f"expected a string, got {_show(value)}")


def _expect_bool(value: object) -> bool:
    if type(value) is bool:
        return value
    raise FieldError(f"expected true or false, got {_show(value)}")


def _expect_int(value: object) -> int:
    if type(value) is int:  # never a bool
        if -MAX_INT <= value <= MAX_INT:
            return value
        raise FieldError(f"{_show(value)} does not fit in 64 bits")
    raise FieldError(f"expected an integer, got {_show(value)}")


def _expect_float(value: object) -> float:
    if type(value) is float or type(value) is int:
        if -MAX_FLOAT <= value <= MAX_FLOAT:  # False for NaN too
            return float(value)
        raise FieldError(f"expected a finite number below {MAX_FLOAT:g}, got {_show(value)}")
    raise FieldError(f"expected a number, got {_show(value)}")


_PLAIN: dict[type[Any], Checker] = {str: _expect_str, bool: _expect_bool, int: _expect_int, float: _expect_float}


def _enum_checker(hint: type[enum.Enum]) -> Checker:
    choices = ", ".join(str(m.value) for m in hint)

    def check(value: object) -> Any:
        try:
            return hint(value)
        except (ValueError, TypeError):
            raise FieldError(f"{_show(value)} is not one of {choices}") from None

    return check


def _union_checker(arms: tuple[Checker, ...]) -> Checker:
    def check(value: object) -> Any:
        problems: list[str] = []
        for arm in arms:
            try:
                return arm(value)
            except FieldError as exc:
                problems.append(str(exc))
        raise FieldError(" or ".join(problems))

    return check


def _sequence_checker(hint: Any, where: str) -> Checker:
    args = typing.get_args(hint)
    is_tuple = typing.get_origin(hint) is tuple
    if is_tuple and (len(args) != 2 or args[1] is not Ellipsis):
        raise TypeError(f"{where}: only tuple[T, ...] is supported by soak.typedjson")
    item_checker = _checker(args[0], where)

    def check(value: object) -> Any:
        if not isinstance(value, list):
            raise FieldError(f"expected a list, got {_show(value)}")
        items = []
        for i, item in enumerate(value):
            try:
                items.append(item_checker(item))
            except FieldError as exc:
                exc.path.insert(0, f"[{i}]")
                raise
        return tuple(items) if is_tuple else items

    return check


def _mapping_checker(value_checker: Checker) -> Checker:
    def check(value: object) -> Any:
        if not isinstance(value, dict):
            raise FieldError(f"expected an object, got {_show(value)}")
        result = {}
        for key, item in value.items():
            try:
                result[key] = value_checker(item)
            except FieldError as exc:
                exc.path.insert(0, str(key))
                raise
        return result

    return check


def _show(value: object) -> str:
    """A short, safe rendering of a hostile value for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
