"""A SOQL subset: SELECT fields|COUNT() FROM obj [WHERE ...] [ORDER BY ...] [LIMIT n] [OFFSET n]."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .coerce import parse_date, parse_datetime
from .errors import ApiError
from .schema import FieldDef, ObjectSchema
from .store import Store

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')"
    r"|(?P<dt>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2}))?)"
    r"|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<op><=|>=|!=|<>|=|<|>|\(|\)|,)"
    r"|(?P<word>[A-Za-z_][\w.]*))"
)
_KEYWORDS = {
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "in",
    "like",
    "order",
    "by",
    "asc",
    "desc",
    "limit",
    "offset",
    "nulls",
    "first",
    "last",
    "true",
    "false",
    "null",
    "count",
}
_UNSUPPORTED = {"group", "having", "typeof", "with", "for", "using", "scope", "rollup", "cube"}


def malformed(message: str) -> ApiError:
    return ApiError(400, "MALFORMED_QUERY", message)


@dataclass
class Tok:
    kind: str
    text: str


def tokenize(q: str) -> list[Tok]:
    pos, out = 0, []
    q = q.rstrip()
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if not m or m.end() == pos:
            raise malformed(
                f"unexpected token: '{q[pos:].split()[0] if q[pos:].split() else q[pos:]}'"
            )
        kind = m.lastgroup or ""
        out.append(Tok(kind, m.group(kind)))
        pos = m.end()
    return out


Path = tuple[FieldDef, ...]


@dataclass
class Query:
    obj: ObjectSchema
    count: bool
    select: list[Path]
    where: Callable[[dict[str, Any]], bool] | None
    order: list[tuple[Path, bool, bool]]
    limit: int | None
    offset: int


class _Parser:
    def __init__(self, store: Store, text: str) -> None:
        self.store = store
        self.toks = tokenize(text)
        self.i = 0
        self.obj: ObjectSchema | None = None

    def peek(self, word: str | None = None) -> bool:
        if self.i >= len(self.toks):
            return False
        t = self.toks[self.i]
        return word is None or t.text.lower() == word

    def take(self, word: str | None = None) -> Tok:
        if self.i >= len(self.toks):
            raise malformed(
                "unexpected end of query" + (f", expected {word.upper()}" if word else "")
            )
        t = self.toks[self.i]
        if word is not None and t.text.lower() != word:
            if t.text.lower() in _UNSUPPORTED:
                raise malformed(f"unexpected token: '{t.text}' (not supported by the emulator)")
            raise malformed(f"unexpected token: '{t.text}'")
        self.i += 1
        return t

    def parse(self) -> Query:
        self.take("select")
        raw_fields: list[str] = []
        count = False
        if self.peek("count"):
            self.take()
            self.take("(")
            self.take(")")
            count = True
        else:
            while True:
                t = self.take()
                if t.kind != "word" or t.text.lower() in ("from",):
                    raise malformed(f"unexpected token: '{t.text}'")
                if self.peek("("):
                    raise malformed(
                        f"unexpected token: '(' (aggregate {t.text}() is not supported)"
                    )
                raw_fields.append(t.text)
                if not self.peek(","):
                    break
                self.take(",")
        self.take("from")
        name = self.take().text
        obj = self.store.schema(name)
        if obj is None:
            raise ApiError(
                400,
                "INVALID_TYPE",
                f"sObject type '{name}' is not supported. If you are attempting to use a custom object, "
                "be sure to append the '__c' after the entity name.",
            )
        self.obj = obj
        select = [self.path(f) for f in raw_fields]
        where = None
        order: list[tuple[Path, bool, bool]] = []
        limit: int | None = None
        offset = 0
        if self.peek("where"):
            self.take()
            where = self.expr()
        if self.peek("order"):
            self.take()
            self.take("by")
            while True:
                path = self.path(self.take().text)
                desc = False
                if self.peek("asc") or self.peek("desc"):
                    desc = self.take().text.lower() == "desc"
                nulls_last = desc
                if self.peek("nulls"):
                    self.take()
                    nulls_last = self.take().text.lower() == "last"
                order.append((path, desc, nulls_last))
                if not self.peek(","):
                    break
                self.take(",")
        if self.peek("limit"):
            self.take()
            limit = self.integer()
        if self.peek("offset"):
            self.take()
            offset = self.integer()
        if self.i < len(self.toks):
            t = self.toks[self.i]
            raise malformed(
                f"unexpected token: '{t.text}'"
                + (" (not supported by the emulator)" if t.text.lower() in _UNSUPPORTED else "")
            )
        return Query(obj, count, select, where, order, limit, offset)

    def integer(self) -> int:
        t = self.take()
        if t.kind != "num" or "." in t.text or t.text.startswith("-"):
            raise malformed(f"unexpected token: '{t.text}'")
        return int(t.text)

    def path(self, text: str) -> Path:
        assert self.obj is not None
        obj = self.obj
        parts = text.split(".")
        out: list[FieldDef] = []
        for n, part in enumerate(parts):
            if n < len(parts) - 1:
                rel = obj.by_relationship.get(part.lower())
                target = (
                    self.store.schema(rel.reference_to[0]) if rel and rel.reference_to else None
                )
                if rel is None or target is None:
                    raise self._no_column(text, obj)
                out.append(rel)
                obj = target
            else:
                f = obj.field(part)
                if f is None:
                    raise self._no_column(text, obj)
                out.append(f)
        return tuple(out)

    @staticmethod
    def _no_column(text: str, obj: ObjectSchema) -> ApiError:
        return ApiError(
            400,
            "INVALID_FIELD",
            f"No such column '{text}' on entity '{obj.name}'. If you are attempting to use a custom "
            "field, be sure to append the '__c' after the custom field name.",
        )

    # where := term (OR term)*
    def expr(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self.term()]
        while self.peek("or"):
            self.take()
            parts.append(self.term())
        if len(parts) == 1:
            return parts[0]
        return lambda r: any(p(r) for p in parts)

    def term(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self.factor()]
        while self.peek("and"):
            self.take()
            parts.append(self.factor())
        if len(parts) == 1:
            return parts[0]
        return lambda r: all(p(r) for p in parts)

    def factor(self) -> Callable[[dict[str, Any]], bool]:
        if self.peek("not"):
            self.take()
            inner = self.factor()
            return lambda r: not inner(r)
        if self.peek("("):
            self.take()
            inner = self.expr()
            self.take(")")
            return inner
        t = self.take()
        if t.kind != "word" or t.text.lower() in _KEYWORDS:
            raise malformed(f"unexpected token: '{t.text}'")
        path = self.path(t.text)
        f = path[-1]
        negate = False
        if self.peek("not"):
            self.take()
            negate = True
            if not self.peek("in"):
                raise malformed("unexpected token: 'NOT'")
        if self.peek("in"):
            self.take()
            self.take("(")
            values = [self.value(f)]
            while self.peek(","):
                self.take()
                values.append(self.value(f))
            self.take(")")
            keys = {_key(v) for v in values}
            getter = self.getter(path)
            if negate:
                return lambda r: _key(getter(r)) not in keys
            return lambda r: _key(getter(r)) in keys
        if self.peek("like"):
            self.take()
            pattern = self.value(f)
            if not isinstance(pattern, str):
                raise malformed("LIKE needs a string literal")
            rx = re.compile(
                "^"
                + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
                + "$",
                re.IGNORECASE | re.DOTALL,
            )
            getter = self.getter(path)
            return lambda r: isinstance(getter(r), str) and rx.match(getter(r)) is not None
        op_tok = self.take()
        if op_tok.kind != "op" or op_tok.text in ("(", ")", ","):
            raise malformed(f"unexpected token: '{op_tok.text}'")
        value = self.value(f)
        return _compare(self.getter(path), op_tok.text, value)

    def value(self, f: FieldDef) -> Any:
        t = self.take()
        if t.kind == "str":
            text = re.sub(r"\\(.)", r"\1", t.text[1:-1])
            if f.type in ("id", "reference"):
                from .ids import to18

                return to18(text) or text
            return text
        if t.kind == "num":
            return float(t.text) if "." in t.text else int(t.text)
        if t.kind == "dt":
            if f.type == "date":
                out = parse_date(t.text)
            elif f.type == "datetime":
                out = parse_datetime(t.text)
            else:
                raise malformed(
                    f"value of filter criterion for field '{f.name}' must be of type {f.type} and should not be enclosed in quotes"
                )
            if out is None:
                raise malformed(f"invalid date literal: {t.text}")
            return out
        low = t.text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low == "null":
            return None
        raise malformed(f"unexpected token: '{t.text}'")

    def getter(self, path: Path) -> Callable[[dict[str, Any]], Any]:
        store = self.store
        if len(path) == 1:
            name = path[0].name
            return lambda r: r.get(name)

        def follow(r: dict[str, Any]) -> Any:
            cur: dict[str, Any] | None = r
            for f in path[:-1]:
                rid = cur.get(f.name) if cur else None
                target = store.schema(f.reference_to[0])
                cur = store.live[target.name].get(rid) if (rid and target) else None
            return cur.get(path[-1].name) if cur else None

        return follow


def _key(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


def _compare(
    get: Callable[[dict[str, Any]], Any], op: str, value: Any
) -> Callable[[dict[str, Any]], bool]:
    key = _key(value)
    if op == "=":
        return lambda r: _key(get(r)) == key
    if op in ("!=", "<>"):
        return lambda r: _key(get(r)) != key

    def ordered(r: dict[str, Any]) -> bool:
        cur = _key(get(r))
        if cur is None or key is None:
            return False
        try:
            if op == "<":
                return bool(cur < key)
            if op == ">":
                return bool(cur > key)
            if op == "<=":
                return bool(cur <= key)
            return bool(cur >= key)
        except TypeError:
            return False

    return ordered


def parse(store: Store, text: str) -> Query:
    """Parse SOQL against the store's schemas; raises ApiError (MALFORMED_QUERY, INVALID_FIELD...)."""
    if not text or not text.strip():
        raise malformed("empty query")
    return _Parser(store, text).parse()


def execute(
    store: Store, query: Query, api_version: str, include_deleted: bool = False
) -> tuple[int, list[dict[str, Any]]]:
    """Run a parsed query: (totalSize, rendered records)."""
    with store.lock:
        rows = list(store.live[query.obj.name].values())
        if include_deleted:
            rows += list(store.deleted[query.obj.name].values())
        if query.where is not None:
            rows = [r for r in rows if query.where(r)]
        for path, desc, nulls_last in reversed(query.order):
            getter = _Parser.getter(_bare(store), path)

            def sort_key(
                r: dict[str, Any], g: Any = getter, d: bool = desc, nl: bool = nulls_last
            ) -> tuple[int, Any]:
                return _sort_key(g(r), d, nl)

            rows.sort(key=sort_key, reverse=desc)
        rows = rows[query.offset :]
        if query.limit is not None:
            rows = rows[: query.limit]
        if query.count:
            return len(rows), []
        return len(rows), [_render(store, query.obj, r, query.select, api_version) for r in rows]


def _bare(store: Store) -> _Parser:
    p = _Parser.__new__(_Parser)
    p.store = store
    return p


def _sort_key(v: Any, desc: bool, nulls_last: bool) -> tuple[int, Any]:
    null_rank = 1 if nulls_last else 0
    if desc:
        null_rank = 1 - null_rank
    if v is None:
        return (null_rank, "")
    return (1 - null_rank, _key(v))


def _render(
    store: Store, obj: ObjectSchema, rec: dict[str, Any], select: list[Path], api_version: str
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "attributes": {
            "type": obj.name,
            "url": f"/services/data/v{api_version}/sobjects/{obj.name}/{rec['Id']}",
        }
    }
    for path in select:
        if len(path) == 1:
            out[path[0].name] = rec.get(path[0].name)
            continue
        cur_out, cur_rec, _cur_obj = out, rec, obj
        for f in path[:-1]:
            target = store.schema(f.reference_to[0])
            assert target is not None and f.relationship_name is not None
            rid = cur_rec.get(f.name) if cur_rec else None
            parent = store.live[target.name].get(rid) if rid else None
            if parent is None:
                cur_out[f.relationship_name] = None
                break
            nested = cur_out.get(f.relationship_name)
            if not isinstance(nested, dict):
                nested = {
                    "attributes": {
                        "type": target.name,
                        "url": f"/services/data/v{api_version}/sobjects/{target.name}/{rid}",
                    }
                }
                cur_out[f.relationship_name] = nested
            cur_out, cur_rec, _cur_obj = nested, parent, target
        else:
            cur_out[path[-1].name] = cur_rec.get(path[-1].name)
    return out
