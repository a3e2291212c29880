"""Field-by-field comparison of Debezium's records with cdc-bridge's, with a readable diff.

Records are ``(topic, key bytes, value bytes)`` as JsonConverter (``schemas.enable=true``)
writes them. Both sides are normalised to the same topic prefix (topic, schema names,
``source.name``), grouped by topic and paired in order. Compared exactly: topic, key schema and
payload, value schema (field names and order, types, optional, names, parameters, defaults,
versions, docs), ``before``/``after``, ``op``, ``transaction``, the ``source`` field names and
order and every ``source`` value not listed as volatile, tombstones. Volatile values
(``ts_*``, ``lsn``, ``txId``, ``xmin``, ``sequence``, ``version``...) are compared by presence
and JSON type, and by the relations between them that hold in Debezium's record (``ts_us`` is
``ts_ms`` in microseconds, ``sequence[1]`` is the ``lsn``...).
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conformance.debezium import Record

__all__ = [
    "VOLATILE_ENVELOPE",
    "VOLATILE_SOURCE",
    "Comparison",
    "assert_conform",
    "compare",
    "group_by_topic",
    "parse_record",
]

# Envelope and source fields whose values differ between two captures of the same change.
VOLATILE_ENVELOPE = frozenset({"ts_ms", "ts_us", "ts_ns"})
VOLATILE_SOURCE = frozenset(
    {
        "version",
        "ts_ms",
        "ts_us",
        "ts_ns",
        "txId",
        "lsn",
        "xmin",
        "sequence",
        # MySQL / MariaDB
        "file",
        "pos",
        "gtid",
        "server_id",
        "thread",
        # MongoDB
        "ord",
        "lsid",
        "txnNumber",
        "wallTime",
    }
)


@dataclass
class Parsed:
    topic: str
    key: Any  # {"schema", "payload"} or None
    value: Any  # {"schema", "payload"} or None (tombstone)

    @property
    def op(self) -> str | None:
        if self.value is None:
            return None
        p = self.value.get("payload")
        return p.get("op") if isinstance(p, dict) else None

    def label(self) -> str:
        return "tombstone" if self.value is None else f"op {self.op}"


def _rename(name: str, old: str, new: str) -> str:
    if name == old:
        return new
    if name.startswith(old + "."):
        return new + name[len(old) :]
    return name


def _rename_schema_names(schema: Any, old: str, new: str) -> Any:
    if isinstance(schema, dict):
        out = {}
        for k, v in schema.items():
            if k == "name" and isinstance(v, str):
                out[k] = _rename(v, old, new)
            else:
                out[k] = _rename_schema_names(v, old, new)
        return out
    if isinstance(schema, list):
        return [_rename_schema_names(x, old, new) for x in schema]
    return schema


def _load(data: bytes | None, what: str, topic: str) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError as exc:
        raise AssertionError(f"{topic}: {what} is not JSON ({exc}): {data[:200]!r}") from None


def parse_record(record: Record, prefix: str, as_prefix: str = "<prefix>") -> Parsed:
    """Decode a record and rename its topic prefix ``prefix`` to ``as_prefix`` (topic, schema
    names, ``source.name``) so that two captures with different prefixes compare."""
    topic, key, value = record
    k = _load(key, "key", topic)
    v = _load(value, "value", topic)
    if isinstance(k, dict) and "schema" in k:
        k = {**k, "schema": _rename_schema_names(k["schema"], prefix, as_prefix)}
    if isinstance(v, dict) and "schema" in v:
        v = {**v, "schema": _rename_schema_names(v["schema"], prefix, as_prefix)}
        p = v.get("payload")
        if isinstance(p, dict) and isinstance(p.get("source"), dict):
            src = p["source"]
            if src.get("name") == prefix:
                p = {**p, "source": {**src, "name": as_prefix}}
                v = {**v, "payload": p}
    return Parsed(_rename(topic, prefix, as_prefix), k, v)


def group_by_topic(records: Iterable[Parsed]) -> dict[str, list[Parsed]]:
    out: dict[str, list[Parsed]] = defaultdict(list)
    for r in records:
        out[r.topic].append(r)
    return dict(out)


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _show(v: Any) -> str:
    s = json.dumps(v, sort_keys=False)
    return s if len(s) <= 160 else s[:157] + "..."


def _diff(a: Any, b: Any, path: str, out: list[str], ordered: bool) -> None:
    """Differences of Debezium's ``a`` and cdc-bridge's ``b`` at ``path``; ``ordered``: object
    key order matters (payload structs)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if ordered and list(a) != list(b) and set(a) == set(b):
            out.append(f"{path}: field order: debezium {list(a)} != cdc-bridge {list(b)}")
        for k in a:
            if k not in b:
                out.append(f"{path}.{k}: missing in cdc-bridge (debezium {_show(a[k])})")
            else:
                _diff(a[k], b[k], f"{path}.{k}", out, ordered)
        for k in b:
            if k not in a:
                out.append(f"{path}.{k}: extra in cdc-bridge ({_show(b[k])})")
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(
                f"{path}: debezium {_show(a)} ({len(a)} items) != cdc-bridge {_show(b)} "
                f"({len(b)} items)"
            )
            return
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{path}[{i}]", out, ordered)
        return
    if _jtype(a) != _jtype(b) or a != b:
        if isinstance(a, float) and isinstance(b, float) and a == b:
            return
        out.append(f"{path}: debezium {_show(a)} != cdc-bridge {_show(b)}")


def _schema_fields_diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    """Schema diff that names struct fields instead of list indexes."""
    if (
        isinstance(a, dict)
        and isinstance(b, dict)
        and isinstance(a.get("fields"), list)
        and isinstance(b.get("fields"), list)
    ):
        an = [f.get("field") for f in a["fields"]]
        bn = [f.get("field") for f in b["fields"]]
        if an != bn:
            out.append(f"{path}.fields: debezium {an} != cdc-bridge {bn}")
        bmap = {f.get("field"): f for f in b["fields"]}
        for f in a["fields"]:
            name = f.get("field")
            if name in bmap:
                _schema_fields_diff(f, bmap[name], f"{path}.{name}", out)
        rest_a = {k: v for k, v in a.items() if k != "fields"}
        rest_b = {k: v for k, v in b.items() if k != "fields"}
        _diff(rest_a, rest_b, path, out, ordered=False)
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            if k in ("items", "keys", "values") and k in a and k in b:
                _schema_fields_diff(a[k], b[k], f"{path}.{k}", out)
            elif k not in b:
                out.append(f"{path}.{k}: missing in cdc-bridge (debezium {_show(a[k])})")
            elif k not in a:
                out.append(f"{path}.{k}: extra in cdc-bridge ({_show(b[k])})")
            else:
                _diff(a[k], b[k], f"{path}.{k}", out, ordered=False)
        return
    _diff(a, b, path, out, ordered=False)


def _relations(payload: Mapping[str, Any]) -> dict[str, bool]:
    """Facts about volatile values that hold within one record."""
    rel: dict[str, bool] = {}

    def ts(where: str, d: Mapping[str, Any]) -> None:
        ms, us, ns = d.get("ts_ms"), d.get("ts_us"), d.get("ts_ns")
        if isinstance(ms, int) and isinstance(us, int):
            rel[f"{where}.ts_us // 1000 == {where}.ts_ms"] = us // 1000 == ms
        if isinstance(us, int) and isinstance(ns, int):
            rel[f"{where}.ts_ns // 1000 == {where}.ts_us"] = ns // 1000 == us

    ts("payload", payload)
    src = payload.get("source")
    if isinstance(src, dict):
        ts("source", src)
        if isinstance(src.get("ts_ms"), int) and isinstance(payload.get("ts_ms"), int):
            rel["source.ts_ms <= payload.ts_ms"] = src["ts_ms"] <= payload["ts_ms"]
        seq = src.get("sequence")
        if isinstance(seq, str):
            try:
                items = json.loads(seq)
            except ValueError:
                items = None
            rel["sequence is a JSON array of 2 strings/nulls"] = (
                isinstance(items, list)
                and len(items) == 2
                and all(x is None or (isinstance(x, str) and x.isdigit()) for x in items)
            )
            if isinstance(items, list) and len(items) == 2 and "lsn" in src:
                rel["sequence[1] == str(lsn)"] = items[1] == str(src["lsn"])
                rel["sequence[0] is null"] = items[0] is None
                if items[0] is not None and items[1] is not None:
                    rel["int(sequence[0]) <= int(sequence[1])"] = int(items[0]) <= int(items[1])
    return rel


def _volatile(a: Any, b: Any, path: str, out: list[str]) -> None:
    if _jtype(a) != _jtype(b):
        out.append(
            f"{path}: debezium {_jtype(a)} ({_show(a)}) != cdc-bridge {_jtype(b)} ({_show(b)})"
        )


def _payload_diff(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    out: list[str],
    volatile_source: frozenset[str],
    exact_streaming: frozenset[str] = frozenset(),
) -> None:
    path = "value.payload"
    if list(a) != list(b):
        out.append(f"{path}: fields debezium {list(a)} != cdc-bridge {list(b)}")
    for k in a:
        if k not in b:
            out.append(f"{path}.{k}: missing in cdc-bridge (debezium {_show(a[k])})")
            continue
        if k in VOLATILE_ENVELOPE:
            _volatile(a[k], b[k], f"{path}.{k}", out)
        elif k == "source" and isinstance(a[k], dict) and isinstance(b[k], dict):
            sa, sb = a[k], b[k]
            streaming = sa.get("snapshot") == "false" and sb.get("snapshot") == "false"
            if list(sa) != list(sb):
                out.append(f"{path}.source: fields debezium {list(sa)} != cdc-bridge {list(sb)}")
            for f in sa:
                if f not in sb:
                    continue
                if f in volatile_source and not (streaming and f in exact_streaming):
                    _volatile(sa[f], sb[f], f"{path}.source.{f}", out)
                else:
                    _diff(sa[f], sb[f], f"{path}.source.{f}", out, ordered=True)
        else:
            _diff(a[k], b[k], f"{path}.{k}", out, ordered=True)
    ra, rb = _relations(a), _relations(b)
    for name, holds in ra.items():
        if rb.get(name) != holds:
            out.append(f"{path}: relation {name!r}: debezium {holds} != cdc-bridge {rb.get(name)}")


def _record_diff(
    a: Parsed, b: Parsed, volatile_source: frozenset[str], exact_streaming: frozenset[str]
) -> list[str]:
    out: list[str] = []
    if (a.key is None) != (b.key is None):
        out.append(f"key: debezium {_show(a.key)} != cdc-bridge {_show(b.key)}")
    elif a.key is not None:
        _schema_fields_diff(a.key.get("schema"), b.key.get("schema"), "key.schema", out)
        _diff(a.key.get("payload"), b.key.get("payload"), "key.payload", out, ordered=True)
    if (a.value is None) != (b.value is None):
        what = "a tombstone" if a.value is None else a.label()
        out.append(f"value: debezium has {what}, cdc-bridge has {b.label()}")
        return out
    if a.value is None:
        return out
    _schema_fields_diff(a.value.get("schema"), b.value.get("schema"), "value.schema", out)
    pa, pb = a.value.get("payload"), b.value.get("payload")
    if isinstance(pa, dict) and isinstance(pb, dict):
        _payload_diff(pa, pb, out, volatile_source, exact_streaming)
    else:
        _diff(pa, pb, "value.payload", out, ordered=True)
    return out


@dataclass
class Comparison:
    """The outcome: ``diffs`` (deduplicated lines, each naming topic, record and path)."""

    diffs: list[str] = field(default_factory=list)
    compared: int = 0

    def __bool__(self) -> bool:
        return not self.diffs

    def report(self, limit: int = 120) -> str:
        lines = self.diffs[:limit]
        more = len(self.diffs) - len(lines)
        tail = [f"... and {more} more"] if more > 0 else []
        return "\n".join(
            [f"{len(self.diffs)} difference(s) in {self.compared} records:", *lines, *tail]
        )


def compare(
    debezium: Sequence[Record],
    ours: Sequence[Record],
    *,
    debezium_prefix: str,
    our_prefix: str,
    volatile_source: Iterable[str] = VOLATILE_SOURCE,
    ignore: Mapping[str, str] | None = None,
    topics: Callable[[str], bool] | None = None,
    exact_streaming_source: Iterable[str] = (),
) -> Comparison:
    """Compare two captures. ``ignore`` maps glob patterns over ``"<topic> <difference>"`` to
    the reason a difference is known (each must be listed in docs/compatibility.md);
    ``topics`` selects the topics to compare (default: all); ``exact_streaming_source`` names
    volatile ``source`` fields compared exactly in streamed events (both captures read the
    same log, e.g. a PostgreSQL ``lsn``)."""
    vol = frozenset(volatile_source)
    exact = frozenset(exact_streaming_source)
    dbz = group_by_topic(parse_record(r, debezium_prefix) for r in debezium)
    mine = group_by_topic(parse_record(r, our_prefix) for r in ours)
    result = Comparison()
    seen: dict[str, list[str]] = defaultdict(list)
    order: list[str] = []

    def add(topic: str, where: str, line: str) -> None:
        if ignore and any(fnmatch.fnmatchcase(f"{topic} {line}", p) for p in ignore):
            return
        k = f"{topic}: {line}"
        if k not in seen:
            order.append(k)
        seen[k].append(where)

    for topic in sorted(set(dbz) | set(mine)):
        if topics is not None and not topics(topic):
            continue
        a, b = dbz.get(topic, []), mine.get(topic, [])
        if not a or not b:
            side = "debezium only" if a else "cdc-bridge only"
            add(
                topic, "", f"topic on {side} ({len(a or b)} records: {[r.label() for r in a or b]})"
            )
            continue
        if len(a) != len(b):
            add(
                topic,
                "",
                f"record count: debezium {len(a)} {[r.label() for r in a]} != cdc-bridge "
                f"{len(b)} {[r.label() for r in b]}",
            )
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            result.compared += 1
            for line in _record_diff(x, y, vol, exact):
                add(topic, f"#{i} {x.label()}", line)
    for k in order:
        wheres = [w for w in seen[k] if w]
        if not wheres:
            result.diffs.append(k)
        elif len(wheres) <= 3:
            result.diffs.append(f"{k}   [{', '.join(wheres)}]")
        else:
            result.diffs.append(f"{k}   [{', '.join(wheres[:3])} ... {len(wheres)} records]")
    return result


def dump(path: str | os.PathLike[str], records: Sequence[Record]) -> None:
    """Write records as JSON lines (topic, key, value decoded) for a closer look."""
    with open(path, "w") as f:
        for topic, key, value in records:
            line = {
                "topic": topic,
                "key": json.loads(key) if key is not None else None,
                "value": json.loads(value) if value is not None else None,
            }
            f.write(json.dumps(line) + "\n")


def assert_conform(debezium: Sequence[Record], ours: Sequence[Record], **kw: Any) -> Comparison:
    """:func:`compare`, failing with the diff when anything differs. With the environment
    variable ``CDC_CONFORMANCE_DUMP`` set to a directory, both captures and the full report are
    written there (``debezium.jsonl``, ``cdc-bridge.jsonl``, ``report.txt``)."""
    result = compare(debezium, ours, **kw)
    out = os.environ.get("CDC_CONFORMANCE_DUMP")
    if out:
        d = Path(out)
        d.mkdir(parents=True, exist_ok=True)
        name = kw.get("debezium_prefix", "dbz")
        dump(d / f"{name}-debezium.jsonl", debezium)
        dump(d / f"{name}-cdc-bridge.jsonl", ours)
        (d / f"{name}-report.txt").write_text(result.report(limit=100_000) + "\n")
    assert result, result.report()
    return result
