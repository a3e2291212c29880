"""A Kafka Connect JSON schema checker for tests: does a payload match its own schema?"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


def validate(schema: dict[str, Any], value: Any, path: str = "$") -> None:
    """Raise AssertionError naming the path where ``value`` does not match ``schema``."""
    if value is None:
        assert schema.get("optional", False) or "default" in schema, (
            f"{path}: null for required field"
        )
        return
    type_ = schema["type"]
    if type_ == "struct":
        assert isinstance(value, dict), (
            f"{path}: struct must be an object, got {type(value).__name__}"
        )
        names = [f["field"] for f in schema["fields"]]
        assert list(value) == names, f"{path}: fields {list(value)} != schema order {names}"
        for f in schema["fields"]:
            validate(f, value[f["field"]], f"{path}.{f['field']}")
    elif type_ in _INT_RANGES:
        lo, hi = _INT_RANGES[type_]
        assert isinstance(value, int) and not isinstance(value, bool), (
            f"{path}: {type_} got {value!r}"
        )
        assert lo <= value <= hi, f"{path}: {value} out of {type_} range"
    elif type_ in ("float32", "float64", "float", "double"):  # JsonConverter: float, double
        assert isinstance(value, int | float) and not isinstance(value, bool), (
            f"{path}: {type_} got {value!r}"
        )
    elif type_ == "boolean":
        assert isinstance(value, bool), f"{path}: boolean got {value!r}"
    elif type_ == "string":
        assert isinstance(value, str), f"{path}: string got {value!r}"
    elif type_ == "bytes":
        assert isinstance(value, str), f"{path}: bytes must be base64 text, got {value!r}"
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise AssertionError(f"{path}: bytes not base64: {value!r}") from exc
    elif type_ == "array":
        assert isinstance(value, list), f"{path}: array got {value!r}"
        for i, item in enumerate(value):
            validate(schema["items"], item, f"{path}[{i}]")
    elif type_ == "map":
        assert isinstance(value, dict), f"{path}: map got {value!r}"
        for k, v in value.items():
            validate(schema["values"], v, f"{path}[{k!r}]")
    else:
        raise AssertionError(f"{path}: unknown Connect type {type_!r}")


def decode_json_record(data: bytes | None) -> Any:
    """A JsonConverter key or value's payload, with or without the schema wrapper (None for a
    tombstone)."""
    if data is None:
        return None
    doc = orjson.loads(data)
    if isinstance(doc, dict) and len(doc) == 2 and "payload" in doc and "schema" in doc:
        return doc["payload"]
    return doc
