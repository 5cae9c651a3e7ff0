"""Rust v0 symbol demangling, enough for kernel stack frames.

Rust-for-Linux frames print mangled (``_RNvNtCs.._4core9panicking9panic_fmt``);
titles and skip lists need the readable path (``core::panicking::panic_fmt``),
crate hashes dropped. Anything this subset does not understand (punycode,
const generics, function types) is returned unchanged, which is also what
happens to every C name.
"""

from __future__ import annotations

_BASIC = {
    "a": "i8", "b": "bool", "c": "char", "d": "f64", "e": "str", "f": "f32", "h": "u8",
    "i": "isize", "j": "usize", "l": "i32", "m": "u32", "n": "i128", "o": "u128", "s": "i16",
    "t": "u16", "u": "()", "v": "...", "x": "i64", "y": "u64", "z": "!", "p": "_",
}  # fmt: skip


class _Unsupported(Exception):
    pass


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.depth = 0

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def take(self) -> str:
        ch = self.peek()
        if not ch:
            raise _Unsupported
        self.i += 1
        return ch

    def eat(self, ch: str) -> bool:
        if self.peek() == ch:
            self.i += 1
            return True
        return False

    def base62(self) -> int:
        if self.eat("_"):
            return 0
        value = 0
        while not self.eat("_"):
            ch = self.take()
            if ch.isdigit():
                digit = ord(ch) - ord("0")
            elif "a" <= ch <= "z":
                digit = ord(ch) - ord("a") + 10
            elif "A" <= ch <= "Z":
                digit = ord(ch) - ord("A") + 36
            else:
                raise _Unsupported
            value = value * 62 + digit
        return value + 1

    def disambiguator(self) -> int:
        return self.base62() if self.eat("s") else 0

    def ident(self) -> str:
        self.disambiguator()
        if self.peek() == "u":
            raise _Unsupported  # punycode
        start = self.i
        while self.peek().isdigit():
            self.i += 1
        if start == self.i:
            raise _Unsupported
        length = int(self.s[start : self.i])
        self.eat("_")
        name = self.s[self.i : self.i + length]
        if len(name) != length:
            raise _Unsupported
        self.i += length
        return name

    def backref(self, parse: str) -> str:
        target = self.base62()
        if target >= self.i or self.depth > 50:
            raise _Unsupported
        saved = self.i
        self.i = target
        self.depth += 1
        out = self.path() if parse == "path" else self.type()
        self.depth -= 1
        self.i = saved
        return out

    def path(self) -> str:
        tag = self.take()
        if tag == "C":
            return self.ident()
        if tag == "N":
            ns = self.take()
            parent = self.path()
            dis = self.i
            self.disambiguator()
            num = self.s[dis : self.i]
            name = self.ident_after_disambiguator()
            if ns == "C":
                return f"{parent}::{{closure#{_num(num)}}}"
            if ns.isupper():
                return f"{parent}::{{{ns}:{name}#{_num(num)}}}" if name else f"{parent}::{{{ns}}}"
            return f"{parent}::{name}"
        if tag == "M":
            self.disambiguator()
            self.path()
            return f"<{self.type()}>"
        if tag in "XY":
            if tag == "X":
                self.disambiguator()
                self.path()
            ty = self.type()
            return f"<{ty} as {self.path()}>"
        if tag == "I":
            base = self.path()
            args = []
            while not self.eat("E"):
                args.append(self.generic_arg())
            return f"{base}::<{', '.join(args)}>"
        if tag == "B":
            return self.backref("path")
        raise _Unsupported

    def ident_after_disambiguator(self) -> str:
        start = self.i
        while self.peek().isdigit():
            self.i += 1
        if start == self.i:
            raise _Unsupported
        length = int(self.s[start : self.i])
        self.eat("_")
        name = self.s[self.i : self.i + length]
        self.i += length
        return name

    def generic_arg(self) -> str:
        if self.eat("L"):
            self.base62()
            return "'_"
        if self.peek() == "K":
            raise _Unsupported
        return self.type()

    def type(self) -> str:
        ch = self.peek()
        if ch in _BASIC:
            self.i += 1
            return _BASIC[ch]
        if ch in "RQ":
            self.i += 1
            if self.eat("L"):
                self.base62()
            return ("&" if ch == "R" else "&mut ") + self.type()
        if ch in "PO":
            self.i += 1
            return ("*const " if ch == "P" else "*mut ") + self.type()
        if ch == "S":
            self.i += 1
            return f"[{self.type()}]"
        if ch == "T":
            self.i += 1
            items = []
            while not self.eat("E"):
                items.append(self.type())
            return "(" + ", ".join(items) + (",)" if len(items) == 1 else ")")
        if ch == "B":
            self.i += 1
            return self.backref("type")
        return self.path()


def _num(disambiguator: str) -> int:
    """The closure index printed for a namespace disambiguator ("s_" is 1, none is 0)."""
    if not disambiguator:
        return 0
    parser = _Parser(disambiguator[1:])
    return parser.base62()


def demangle(name: str) -> str:
    """The readable form of a Rust v0 symbol; any other name unchanged."""
    if not name.startswith("_R"):
        return name
    parser = _Parser(name[2:])
    try:
        if parser.peek().isdigit():
            raise _Unsupported  # encoding version
        return parser.path()
    except (_Unsupported, RecursionError, ValueError):
        return name
