"""A small, safe expression language for route filters and computed fields (no Python eval).

Grammar (precedence low to high)::

    expr     := or
    or       := and ("or" and)*
    and      := not ("and" not)*
    not      := "not" not | compare
    compare  := sum (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") sum)?
    sum      := product (("+" | "-") product)*
    product  := unary (("*" | "/" | "%") unary)*
    unary    := "-" unary | postfix
    postfix  := primary ("." NAME | "[" expr "]")*
    primary  := NUMBER | STRING | true | false | null | NAME | NAME "(" args ")"
              | "(" expr ")" | "[" args "]"

Names are the record's ``before``, ``after``, ``op``, ``source``, ``key`` and ``topic``; access
through null is null (``after.country`` of a delete is null), comparisons of incompatible
values are false, so filters never crash on deletes. Functions: ``lower``, ``upper``,
``trim``, ``length``, ``concat``, ``coalesce``, ``string``, ``format_date``. Expressions are
parsed once into closures; syntax errors carry the position.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["NAMES", "Expression", "ExpressionError", "compile_expression"]

NAMES = ("before", "after", "op", "source", "key", "topic")

Env = Mapping[str, Any]
Fn = Callable[[Env], Any]


class ExpressionError(ValueError):
    """A syntax or name error in an expression, with its 1-based column."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.text = text
        self.position = position
        caret = " " * position + "^"
        super().__init__(f"{message} at position {position + 1}\n    {text}\n    {caret}")
        self.reason = message


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\.|\+|-|\*|/|%)
    """,
    re.VERBOSE,
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


@dataclass(slots=True)
class _Tok:
    kind: str
    value: Any
    pos: int


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch in "\"'":
                raise ExpressionError("unterminated string", text, pos)
            raise ExpressionError(f"unexpected character {ch!r}", text, pos)
        kind = m.lastgroup or ""
        if kind == "number":
            raw = m.group()
            value: Any = float(raw) if any(c in raw for c in ".eE") else int(raw)
            toks.append(_Tok("number", value, pos))
        elif kind == "string":
            toks.append(_Tok("string", _unescape(m.group()[1:-1]), pos))
        elif kind == "name":
            toks.append(_Tok("name", m.group(), pos))
        elif kind == "op":
            toks.append(_Tok("op", m.group(), pos))
        pos = m.end()
    toks.append(_Tok("end", None, len(text)))
    return toks


# -- runtime helpers ---------------------------------------------------------------------


def _get(obj: Any, name: Any) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    if isinstance(obj, list | tuple) and isinstance(name, int) and not isinstance(name, bool):
        return obj[name] if -len(obj) <= name < len(obj) else None
    return None


def _compare(op: str) -> Callable[[Any, Any], bool]:
    def eq(a: Any, b: Any) -> bool:
        return bool(a == b)

    def ne(a: Any, b: Any) -> bool:
        return bool(a != b)

    def ordered(fn: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
        def cmp(a: Any, b: Any) -> bool:
            if a is None or b is None:
                return False
            try:
                return bool(fn(a, b))
            except TypeError:
                return False

        return cmp

    def contains(a: Any, b: Any) -> bool:
        if b is None:
            return False
        try:
            return a in b
        except TypeError:
            return False

    table: dict[str, Callable[[Any, Any], bool]] = {
        "==": eq,
        "!=": ne,
        "<": ordered(lambda a, b: a < b),
        "<=": ordered(lambda a, b: a <= b),
        ">": ordered(lambda a, b: a > b),
        ">=": ordered(lambda a, b: a >= b),
        "in": contains,
        "not in": lambda a, b: not contains(a, b),
    }
    return table[op]


def _arith(op: str) -> Callable[[Any, Any], Any]:
    def run(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        if op == "+" and isinstance(a, str) != isinstance(b, str):
            return None
        try:
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                if isinstance(a, str) or isinstance(b, str):
                    return None  # no string repetition: keeps results small
                return a * b
            if op == "/":
                return a / b
            return a % b
        except (TypeError, ZeroDivisionError):
            return None

    return run


def _str(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _lower(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


def _upper(v: Any) -> Any:
    return v.upper() if isinstance(v, str) else v


def _trim(v: Any) -> Any:
    return v.strip() if isinstance(v, str) else v


def _length(v: Any) -> Any:
    try:
        return len(v) if v is not None else None
    except TypeError:
        return None


def _concat(*args: Any) -> str:
    return "".join(s for s in map(_str, args) if s is not None)


def _coalesce(*args: Any) -> Any:
    for a in args:
        if a is not None:
            return a
    return None


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def _to_datetime(v: Any) -> _dt.datetime | None:
    """Debezium time values: Date (days), Timestamp (ms), MicroTimestamp (us), NanoTimestamp
    (ns), or ISO strings (ZonedTimestamp). Integers are told apart by magnitude."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        a = abs(v)
        if a < 1_000_000:  # days (up to year ~4700)
            return _EPOCH + _dt.timedelta(days=v)
        if a < 100_000_000_000_000:  # ms
            return _EPOCH + _dt.timedelta(milliseconds=v)
        if a < 100_000_000_000_000_000:  # us
            return _EPOCH + _dt.timedelta(microseconds=v)
        return _EPOCH + _dt.timedelta(microseconds=v / 1000)
    if isinstance(v, str):
        try:
            return _dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _format_date(v: Any, fmt: Any = "%Y-%m-%d") -> str | None:
    d = _to_datetime(v)
    if d is None or not isinstance(fmt, str):
        return None
    return d.strftime(fmt)


# name -> (function, min args, max args or None, result Connect type or None = first arg's)
_FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None, str | None]] = {
    "lower": (_lower, 1, 1, "string"),
    "upper": (_upper, 1, 1, "string"),
    "trim": (_trim, 1, 1, "string"),
    "length": (_length, 1, 1, "int64"),
    "string": (_str, 1, 1, "string"),
    "concat": (_concat, 1, None, "string"),
    "coalesce": (_coalesce, 1, None, None),
    "format_date": (_format_date, 1, 2, "string"),
}


def _or(lf: Fn, rf: Fn) -> Fn:
    return lambda e: bool(lf(e)) or bool(rf(e))


def _and(lf: Fn, rf: Fn) -> Fn:
    return lambda e: bool(lf(e)) and bool(rf(e))


def _binary(fn: Callable[[Any, Any], Any], lf: Fn, rf: Fn) -> Fn:
    return lambda e: fn(lf(e), rf(e))


def _attr(f: Fn, name: str) -> Fn:
    return lambda e: _get(f(e), name)


# -- parser --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    """A compiled sub-expression: its closure, and what it is for type inference."""

    fn: Fn
    path: tuple[str, ...] | None = None  # a plain field reference like ("after", "id")
    type: str | None = None  # Connect type when statically known
    args: tuple[_Node, ...] = ()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, message: str, tok: _Tok | None = None) -> ExpressionError:
        tok = tok or self.peek()
        return ExpressionError(message, self.text, tok.pos)

    def is_op(self, value: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.value == value

    def is_word(self, value: str) -> bool:
        tok = self.peek()
        return tok.kind == "name" and tok.value == value

    def expect_op(self, value: str) -> None:
        if not self.is_op(value):
            tok = self.peek()
            got = "end of expression" if tok.kind == "end" else repr(str(tok.value))
            raise self.error(f"expected {value!r}, found {got}")
        self.i += 1

    def parse(self) -> _Node:
        if self.peek().kind == "end":
            raise self.error("empty expression")
        node = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise self.error(f"unexpected {str(tok.value)!r}")
        return node

    def or_(self) -> _Node:
        left = self.and_()
        while self.is_word("or"):
            self.i += 1
            right = self.and_()
            left = _Node(_or(left.fn, right.fn), type="boolean")
        return left

    def and_(self) -> _Node:
        left = self.not_()
        while self.is_word("and"):
            self.i += 1
            right = self.not_()
            left = _Node(_and(left.fn, right.fn), type="boolean")
        return left

    def not_(self) -> _Node:
        if self.is_word("not"):
            self.i += 1
            inner = self.not_().fn
            return _Node(lambda e: not inner(e), type="boolean")
        return self.compare()

    def compare(self) -> _Node:
        left = self.sum_()
        tok = self.peek()
        op: str | None = None
        if tok.kind == "op" and tok.value in ("==", "!=", "<", "<=", ">", ">="):
            op = tok.value
            self.i += 1
        elif self.is_word("in"):
            op = "in"
            self.i += 1
        elif self.is_word("not") and self.toks[self.i + 1].value == "in":
            op = "not in"
            self.i += 2
        if op is None:
            return left
        right = self.sum_()
        cmp = _compare(op)
        lf, rf = left.fn, right.fn
        return _Node(lambda e: cmp(lf(e), rf(e)), type="boolean")

    def sum_(self) -> _Node:
        left = self.product()
        while self.is_op("+") or self.is_op("-"):
            op = self.next().value
            right = self.product()
            left = _Node(
                _binary(_arith(op), left.fn, right.fn),
                type=left.type if left.type == right.type else None,
            )
        return left

    def product(self) -> _Node:
        left = self.unary()
        while self.is_op("*") or self.is_op("/") or self.is_op("%"):
            op = self.next().value
            right = self.unary()
            left = _Node(
                _binary(_arith(op), left.fn, right.fn), type="double" if op == "/" else None
            )
        return left

    def unary(self) -> _Node:
        if self.is_op("-"):
            self.i += 1
            inner = self.unary()
            f = inner.fn
            neg = _arith("-")
            return _Node(lambda e: neg(0, f(e)), type=inner.type)
        return self.postfix()

    def postfix(self) -> _Node:
        node = self.primary()
        while True:
            if self.is_op("."):
                self.i += 1
                tok = self.next()
                if tok.kind != "name":
                    raise self.error("expected a field name after '.'", tok)
                name = tok.value
                path = (*node.path, name) if node.path is not None else None
                node = _Node(_attr(node.fn, name), path=path)
            elif self.is_op("["):
                self.i += 1
                index = self.or_()
                self.expect_op("]")
                node = _Node(_binary(_get, node.fn, index.fn))
            else:
                return node

    def primary(self) -> _Node:
        tok = self.next()
        if tok.kind == "number":
            v = tok.value
            return _Node(lambda e: v, type="double" if isinstance(v, float) else "int64")
        if tok.kind == "string":
            s = tok.value
            return _Node(lambda e: s, type="string")
        if tok.kind == "op" and tok.value == "(":
            node = self.or_()
            self.expect_op(")")
            return node
        if tok.kind == "op" and tok.value == "[":
            items = self.args("]")
            fns = [a.fn for a in items]
            return _Node(lambda e: [f(e) for f in fns])
        if tok.kind == "name":
            name = tok.value
            if name == "true":
                return _Node(lambda e: True, type="boolean")
            if name == "false":
                return _Node(lambda e: False, type="boolean")
            if name in ("null", "none"):
                return _Node(lambda e: None)
            if self.is_op("("):
                return self.call(tok)
            if name in ("and", "or", "not", "in"):
                raise self.error(f"unexpected {name!r}", tok)
            if name not in NAMES:
                raise self.error(
                    f"unknown name {name!r} (use one of {', '.join(NAMES)}, e.g. after.{name})",
                    tok,
                )
            return _Node(lambda e: e.get(name), path=(name,))
        if tok.kind == "end":
            raise self.error("unexpected end of expression", tok)
        raise self.error(f"unexpected {str(tok.value)!r}", tok)

    def args(self, close: str) -> list[_Node]:
        items: list[_Node] = []
        if self.is_op(close):
            self.i += 1
            return items
        while True:
            items.append(self.or_())
            if self.is_op(","):
                self.i += 1
                continue
            self.expect_op(close)
            return items

    def call(self, tok: _Tok) -> _Node:
        name = tok.value
        spec = _FUNCTIONS.get(name)
        if spec is None:
            raise self.error(
                f"unknown function {name!r} (available: {', '.join(sorted(_FUNCTIONS))})", tok
            )
        self.expect_op("(")
        items = self.args(")")
        fn, lo, hi, rtype = spec
        if len(items) < lo or (hi is not None and len(items) > hi):
            want = str(lo) if lo == hi else f"{lo} or more" if hi is None else f"{lo} to {hi}"
            raise self.error(f"{name}() takes {want} argument(s), got {len(items)}", tok)
        fns = tuple(a.fn for a in items)
        if len(fns) == 1:
            (a0,) = fns
            run: Fn = lambda e: fn(a0(e))  # noqa: E731
        else:
            run = lambda e: fn(*[a(e) for a in fns])  # noqa: E731
        return _Node(run, type=rtype, args=tuple(items))


class Expression:
    """A parsed expression: call :meth:`evaluate` with the record's names."""

    __slots__ = ("_node", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._node = _Parser(text).parse()

    def evaluate(self, env: Env) -> Any:
        return self._node.fn(env)

    def matches(self, env: Env) -> bool:
        return bool(self._node.fn(env))

    def field_path(self) -> tuple[str, ...] | None:
        """``("after", "id")`` when the expression is a plain field reference."""
        return self._node.path

    def result_schema(self, fields: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
        """The Connect schema of the result, as far as it is known statically.

        A plain ``after.x`` / ``before.x`` reference (or ``coalesce`` of one) keeps the
        field's schema; other results use the function's type, else ``string``.
        """
        node = self._node
        while node.type is None and node.args:
            node = node.args[0]
        path = node.path
        if (
            node.type is None
            and path
            and len(path) == 2
            and fields
            and path[0] in ("after", "before")
            and path[1] in fields
        ):
            schema = dict(fields[path[1]])
            schema["optional"] = True
            return schema
        return {"type": node.type or "string", "optional": True}

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


def compile_expression(text: str) -> Expression:
    """Parse ``text``; raises :class:`ExpressionError` with the position of the problem."""
    return Expression(text)
