"""HTML and SVG built so that untrusted text cannot become markup.

Everything that reaches the report from a run (console lines, failure titles,
VM names, evidence paths, messages) is plain `str`; markup soak writes itself
is `Markup`. `el` escapes every `str` child and every attribute value, so text
is escaped by construction and a forgotten call cannot let a console line
containing ``<script>`` become a script. Control characters (ANSI colour codes,
NULs in a torn console) are shown as ``\\xNN`` instead of reaching the page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class Markup(str):
    """A string of HTML or SVG that soak built and vouches for; never wrap outside text in it."""

    __slots__ = ()


Child = str | Markup | None | Iterable["Child"]


def esc(text: object) -> Markup:
    """Text as it is to be seen: markup characters escaped, control characters made visible."""
    if isinstance(text, Markup):
        return text
    shown = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text).replace("\r\n", "\n"))
    return Markup(html.escape(shown, quote=True))


def join(children: Iterable[Child]) -> Markup:
    """Children flattened and escaped (`Markup` kept as it is, None dropped)."""
    return Markup("".join(_parts(children)))


def _parts(child: Child) -> Iterable[str]:
    if child is None:
        return
    if isinstance(child, str):
        yield esc(child)
        return
    for item in child:
        yield from _parts(item)


def el(tag: str, /, *children: Child, **attrs: object) -> Markup:
    """``<tag attrs>children</tag>``. Attribute names: ``class_`` -> ``class``, ``data_x`` -> ``data-x``;
    a None or False value leaves the attribute out, True writes it bare."""
    return Markup(f"<{tag}{attributes(attrs)}>{join(children)}</{tag}>")


def void(tag: str, /, **attrs: object) -> Markup:
    """An element without children, ``<tag attrs/>`` (valid in HTML and SVG alike)."""
    return Markup(f"<{tag}{attributes(attrs)}/>")


def attributes(attrs: dict[str, object]) -> str:
    parts: list[str] = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        parts.append(f" {name}" if value is True else f' {name}="{esc(value)}"')
    return "".join(parts)
