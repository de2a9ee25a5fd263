"""Typed, dotted-path fields: the vocabulary of scenarios and state.

A field knows its kind (a fixed-width integer, a flag, one name out of a
list, or a set of names) and checks a value against it.  Errors name the
field and say what is allowed; nothing is changed when a check fails.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class Field:
    path: str
    kind: str                     # "int", "bool", "enum", "set"
    width: int = 64               # for "int": the field's width in bits
    choices: tuple = ()           # for "enum" and "set": the allowed names
    doc: str = ""

    def describe(self) -> str:
        if self.kind == "int":
            return f"an integer of {self.width} bits (0 to {hex((1 << self.width) - 1)})"
        if self.kind == "bool":
            return "True or False"
        if self.kind == "enum":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        return "a set of names from " + ", ".join(sorted(self.choices))


def U(path: str, width: int, doc: str = "") -> Field:
    return Field(path, "int", width=width, doc=doc)


def B(path: str, doc: str = "") -> Field:
    return Field(path, "bool", doc=doc)


def E(path: str, choices: Iterable, doc: str = "") -> Field:
    return Field(path, "enum", choices=tuple(choices), doc=doc)


def S(path: str, choices: Iterable, doc: str = "") -> Field:
    return Field(path, "set", choices=tuple(sorted(choices)), doc=doc)


_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|0[xX][0-9a-fA-F_]+|0[bB][01_]+|[0-9][0-9_]*|\S)", re.ASCII)


def parse_int_expression(text: str, constants: Mapping[str, int], field: str) -> int:
    """Parse '0x1d01', '4096', 'EFER_SVME|EFER_LME', '1<<12', '~EFER_SVME & 0x1d01'.

    Only literals, named constants and the operators | & ^ ~ << >> + - and
    parentheses are allowed; anything else is a ValueError naming the field.
    """
    tokens = _TOKEN.findall(text.strip())
    if not tokens or "".join(tokens) != re.sub(r"\s+", "", text):
        raise ValueError(f"{field}: cannot read {text!r} as a number")
    out = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok[0] in "0123456789":
            try:
                out.append(str(int(tok.replace("_", ""), 0)))
            except ValueError:
                raise ValueError(f"{field}: {tok!r} in {text!r} is not a number") from None
        elif tok[0].isalpha() or tok[0] == "_":
            if tok not in constants:
                close = difflib.get_close_matches(tok, constants.keys(), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ValueError(f"{field}: unknown name {tok!r} in {text!r}{hint}")
            out.append(str(constants[tok]))
        elif tok in ("<", ">") and i + 1 < len(tokens) and tokens[i + 1] == tok:
            out.append(tok * 2)
            i += 1
        elif tok in "|&^~+-()":
            out.append(tok)
        else:
            raise ValueError(f"{field}: operator {tok!r} is not allowed in {text!r} "
                             "(use | & ^ ~ << >> + - and parentheses)")
        i += 1
    try:
        value = eval(" ".join(out), {"__builtins__": {}}, {})  # only digits and operators remain
    except (SyntaxError, ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"{field}: cannot evaluate {text!r} ({exc})") from None
    return int(value)


def coerce(field: Field, value: Any, constants: Mapping[str, int]) -> Any:
    """Return value in the field's canonical form, or raise naming the field."""
    p = field.path
    if field.kind == "int":
        if isinstance(value, str):
            value = parse_int_expression(value, constants, p)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{p}: expected {field.describe()}, got {type(value).__name__} {value!r}")
        if value < 0:
            if value < -(1 << (field.width - 1)):
                raise ValueError(f"{p}: {value} does not fit in {field.width} bits")
            value &= (1 << field.width) - 1       # two's complement, as the CPU stores it
        if value >> field.width:
            raise ValueError(f"{p}: {hex(value)} is wider than the field's {field.width} bits "
                             f"(allowed: 0 to {hex((1 << field.width) - 1)})")
        return value
    if field.kind == "bool":
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise TypeError(f"{p}: expected True or False, got {value!r}")
    if field.kind == "enum":
        if value not in field.choices:
            raise ValueError(f"{p}: {value!r} is not allowed; expected {field.describe()}")
        return value
    # set of names
    if isinstance(value, str):
        value = {v.strip() for v in re.split(r"[|,]", value) if v.strip()}
    if not isinstance(value, (set, frozenset, list, tuple)):
        raise TypeError(f"{p}: expected {field.describe()}, got {type(value).__name__}")
    names = set()
    for v in value:
        if not isinstance(v, str):
            raise TypeError(f"{p}: expected names, got {v!r}")
        name = v.removeprefix("INTERCEPT_").removeprefix("X86_FEATURE_")
        if name not in field.choices:
            close = difflib.get_close_matches(name, field.choices, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"{p}: unknown name {v!r}{hint} (allowed: {', '.join(field.choices)})")
        names.add(name)
    return frozenset(names)


def unknown_path_error(path: str, known: Iterable[str]) -> ValueError:
    known = list(known)
    close = difflib.get_close_matches(path, known, n=3, cutoff=0.6)
    if not close:
        prefix = path.rsplit(".", 1)[0]
        close = sorted(k for k in known if k.startswith(prefix + "."))[:6]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ValueError(f"unknown field {path!r}{hint}")


def named_constants(*modules) -> dict:
    """Every upper-case integer of the modules: the names a value may be written with."""
    return {name: value for module in modules for name, value in vars(module).items()
            if name.isupper() and isinstance(value, int) and not isinstance(value, bool)}
