"""Typed, dotted-path fields: the vocabulary of scenarios and state.

A field knows its kind (a fixed-width integer, a flag, one name out of a
list, or a set of names) and checks a value against it.  Errors name the
field and say what is allowed; nothing is changed when a check fails.
"""

from __future__ import annotations

import ast
import difflib
import operator
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
            return "True/False, 0/1 or yes/no"
        if self.kind == "enum":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        return "a set of names from " + listing(sorted(self.choices), f"sc.fields[{self.path!r}].choices lists them")


def listing(names: Iterable, where: str = "", limit: int = 12) -> str:
    """Names for an error message: all of a short list, the first `limit` of a long one."""
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... ({len(names)} in all{'; ' + where if where else ''})"


def U(path: str, width: int, doc: str = "") -> Field:
    return Field(path, "int", width=width, doc=doc)


def B(path: str, doc: str = "") -> Field:
    return Field(path, "bool", doc=doc)


def E(path: str, choices: Iterable, doc: str = "") -> Field:
    return Field(path, "enum", choices=tuple(choices), doc=doc)


def S(path: str, choices: Iterable, doc: str = "") -> Field:
    return Field(path, "set", choices=tuple(sorted(choices)), doc=doc)


# Bounds on a value written as text: enough for any register or mask, small enough
# that no input can make the parser slow or the message long.
MAX_TEXT = 200          # characters of an expression
MAX_DEPTH = 16          # nested parentheses and unary operators
MAX_BITS = 128          # width of any literal, intermediate or result
QUOTE = 80              # characters of the input an error message repeats
INT_FORM = ("an integer (4096, 0x1d01, 0b101) or an expression of integers and named "
            "constants with | & ^ ~ << >> + - and parentheses")
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

_OPS = {ast.BitOr: operator.or_, ast.BitAnd: operator.and_, ast.BitXor: operator.xor,
        ast.LShift: operator.lshift, ast.RShift: operator.rshift,
        ast.Add: operator.add, ast.Sub: operator.sub}
_NOT_ALLOWED = {ast.Call: "a function call", ast.Attribute: "an attribute", ast.Tuple: "a tuple",
                ast.Compare: "a comparison", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
                ast.Pow: "**", ast.Not: "not", ast.BoolOp: "and/or", ast.Subscript: "indexing"}
_UNARY = {ast.Invert: operator.invert, ast.USub: operator.neg, ast.UAdd: operator.pos}


def quote(value: Any, limit: int = QUOTE) -> str:
    """repr() of a value, cut to `limit` characters: errors never echo a huge input."""
    if isinstance(value, int) and value.bit_length() > 4 * limit:
        return f"a {value.bit_length()}-bit integer"       # its repr alone would be huge
    try:
        text = repr(value)
    except Exception:                      # a repr that raises still gets named
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def parse_int_expression(text: str, constants: Mapping[str, int], field: str) -> int:
    """Read '0x1d01', '4096', 'EFER_SVME|EFER_LME', '1<<12', '~EFER_SVME & 0x1d01'.

    The text is parsed into a syntax tree and walked: only integer literals,
    named constants, | & ^ ~ << >> + - and parentheses are evaluated, with
    bounds on length, depth, shift count and width.  Anything else is a
    ValueError naming the field and the allowed form.
    """
    def fail(why: str) -> ValueError:
        return ValueError(f"{field}: cannot read {quote(text)} as a number: {why} (allowed: {INT_FORM})")

    if len(text) > MAX_TEXT:
        raise fail(f"longer than {MAX_TEXT} characters")
    if not text.strip():
        raise fail("it is empty")
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth > MAX_DEPTH:
            raise fail(f"parentheses nest deeper than {MAX_DEPTH}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise fail("it is not an expression") from None
    return _evaluate(tree.body, constants, fail, 0)


def _evaluate(node, constants, fail, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise fail(f"operators nest deeper than {MAX_DEPTH}")
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            raise fail(f"{quote(node.value, 20)} is not an integer")
        return _bounded(node.value, fail)
    if isinstance(node, ast.Name):
        if node.id not in constants:
            close = difflib.get_close_matches(node.id, constants.keys(), n=3)
            raise fail(f"unknown name {quote(node.id, 40)}"
                       + (f"; did you mean {', '.join(close)}?" if close else ""))
        return constants[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _bounded(_UNARY[type(node.op)](_evaluate(node.operand, constants, fail, depth + 1)), fail)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left = _evaluate(node.left, constants, fail, depth + 1)
        right = _evaluate(node.right, constants, fail, depth + 1)
        if isinstance(node.op, (ast.LShift, ast.RShift)) and not 0 <= right <= MAX_BITS:
            raise fail(f"a shift count must be 0 to {MAX_BITS}, got {right}")
        return _bounded(_OPS[type(node.op)](left, right), fail)
    raise fail(f"{_NOT_ALLOWED.get(type(getattr(node, 'op', node)), 'this construct')} is not allowed")


def _bounded(value: int, fail) -> int:
    if abs(value).bit_length() > MAX_BITS:
        raise fail(f"a value is wider than {MAX_BITS} bits")
    return value


def parse_bool(value: Any, field: str) -> bool:
    """True/False, 0/1, or the words 0/1/true/false/yes/no/on/off in any case."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
    elif isinstance(value, int) and value in (0, 1):     # bool is an int: True and False land here
        return bool(value)
    raise (ValueError if isinstance(value, (str, int)) else TypeError)(
        f"{field}: expected True/False, 0/1 or one of the words "
        f"{'/'.join(TRUE_WORDS + FALSE_WORDS)}, got {type(value).__name__} {quote(value)}")


def coerce(field: Field, value: Any, constants: Mapping[str, int]) -> Any:
    """Return value in the field's canonical form, or raise naming the field."""
    return _COERCE[field.kind](field, value, constants)


def _coerce_int(field: Field, value: Any, constants) -> int:
    p = field.path
    if field.width == 1 and (isinstance(value, bool) or (isinstance(value, str) and value.strip().lower()
                                                          in TRUE_WORDS + FALSE_WORDS)):
        return int(parse_bool(value, p))       # a 1-bit field is a flag too
    if isinstance(value, str):
        value = parse_int_expression(value, constants, p)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{p}: expected {field.describe()}, got {type(value).__name__} {quote(value)}")
    if value < 0:
        if value < -(1 << (field.width - 1)):
            raise ValueError(f"{p}: {quote(value)} does not fit in {field.width} bits "
                             f"(allowed: {field.describe()})")
        value &= (1 << field.width) - 1       # two's complement, as the CPU stores it
    if value >> field.width:
        shown = hex(value) if value.bit_length() <= 128 else f"a {value.bit_length()}-bit value"
        raise ValueError(f"{p}: {shown} is wider than the field's {field.width} bits "
                         f"(allowed: 0 to {hex((1 << field.width) - 1)})")
    return value


def _coerce_bool(field: Field, value: Any, constants) -> bool:
    return parse_bool(value, field.path)


def _coerce_enum(field: Field, value: Any, constants) -> Any:
    try:
        allowed = isinstance(value, str) and value in field.choices
    except Exception:                          # an odd value is simply not a choice
        allowed = False
    if not allowed:
        raise ValueError(f"{field.path}: {quote(value)} is not allowed; expected {field.describe()}")
    return value


def _coerce_set(field: Field, value: Any, constants) -> frozenset:
    p = field.path
    if isinstance(value, str):
        if len(value) > 40 * (len(field.choices) + 1):
            raise ValueError(f"{p}: {quote(value)} is too long for {field.describe()}")
        value = {v.strip() for v in re.split(r"[|,]", value) if v.strip()}
    if not isinstance(value, (set, frozenset, list, tuple)):
        raise TypeError(f"{p}: expected {field.describe()}, got {type(value).__name__} {quote(value)}")
    names = set()
    for v in value:
        if not isinstance(v, str):
            raise TypeError(f"{p}: expected names (strings) from {listing(field.choices)}, got {quote(v)}")
        name = v.removeprefix("INTERCEPT_").removeprefix("X86_FEATURE_")
        if name not in field.choices:
            close = difflib.get_close_matches(name, field.choices, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"{p}: unknown name {quote(v, 40)}{hint} (allowed: {listing(field.choices, 'sc.fields[path].choices lists them')})")
        names.add(name)
    return frozenset(names)


_COERCE = {"int": _coerce_int, "bool": _coerce_bool, "enum": _coerce_enum, "set": _coerce_set}


def unknown_path_error(path: str, known: Iterable[str]) -> ValueError:
    known = list(known)
    if not isinstance(path, str):
        return TypeError(f"field paths are strings such as {known[0]!r}, got {quote(path)}")
    path = path[:200]
    close = difflib.get_close_matches(path, known, n=3, cutoff=0.6)
    if not close:
        prefix = path.rsplit(".", 1)[0]
        close = sorted(k for k in known if k.startswith(prefix + "."))[:6]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ValueError(f"unknown field {quote(path)}{hint}")


def named_constants(*modules) -> dict:
    """Every upper-case integer of the modules: the names a value may be written with."""
    return {name: value for module in modules for name, value in vars(module).items()
            if name.isupper() and isinstance(value, int) and not isinstance(value, bool)}
