"""Decode the ``changedFields`` / ``nulledFields`` / ``diffFields`` bitmaps of change events.

In the Pub/Sub API these header fields are not lists of names but lists of strings:

- the first element, ``"0x…"``, is a hexadecimal bitmap over the top-level fields of the
  event's Avro schema: bit *i* (counting from the least significant bit) set means the field
  at position *i* of the schema's ``fields`` is listed;
- further elements ``"<pos>-0x…"`` cover the components of a compound field (an address, a
  name): ``pos`` is the top-level position of the compound field and the bitmap counts over
  the fields of its nested record. Those are returned as ``"BillingAddress.City"``.

Elements that are already field names (CometD style, or a server that sends names) are
passed through unchanged. Never imports config, Kafka or the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["decode_bitmap", "encode_bitmap", "field_names", "nested_record"]


def field_names(schema: Mapping[str, Any]) -> list[str]:
    """The names of a record schema's fields, in schema order."""
    return [f["name"] for f in schema.get("fields", ())]


def nested_record(field_type: Any) -> Mapping[str, Any] | None:
    """The record schema inside a field type (``["null", {"type": "record", ...}]``), if any."""
    if isinstance(field_type, Mapping):
        return field_type if field_type.get("type") == "record" else None
    if isinstance(field_type, list):
        for branch in field_type:
            found = nested_record(branch)
            if found is not None:
                return found
    return None


def _bits(hex_text: str) -> list[int]:
    value = int(hex_text, 16)
    out = []
    pos = 0
    while value:
        if value & 1:
            out.append(pos)
        value >>= 1
        pos += 1
    return out


def decode_bitmap(entries: Sequence[str] | None, schema: Mapping[str, Any]) -> list[str]:
    """Field names listed by a bitmap field, in schema order (nested ones as ``Parent.Child``).

    Raises ValueError when a bit points past the schema (the schema does not match the event).
    """
    if not entries:
        return []
    fields = schema.get("fields", ())
    names: list[str] = []
    for entry in entries:
        if entry.startswith(("0x", "0X")):
            for pos in _bits(entry[2:]):
                if pos >= len(fields):
                    raise ValueError(
                        f"bitmap {entry} names field #{pos}; the schema has {len(fields)}"
                    )
                names.append(fields[pos]["name"])
            continue
        head, sep, tail = entry.partition("-")
        if sep and head.isdigit() and tail.startswith(("0x", "0X")):
            parent_pos = int(head)
            if parent_pos >= len(fields):
                raise ValueError(f"bitmap {entry} names field #{parent_pos}: no such field")
            parent = fields[parent_pos]
            nested = nested_record(parent["type"])
            if nested is None:
                raise ValueError(f"bitmap {entry}: field {parent['name']} is not compound")
            sub = nested.get("fields", ())
            for pos in _bits(tail[2:]):
                if pos >= len(sub):
                    raise ValueError(f"bitmap {entry} names component #{pos} of {parent['name']}")
                names.append(f"{parent['name']}.{sub[pos]['name']}")
            continue
        names.append(entry)  # already a name
    return names


def encode_bitmap(names: Iterable[str], schema: Mapping[str, Any]) -> list[str]:
    """The inverse of :func:`decode_bitmap` (used by tests and fixtures)."""
    fields = schema.get("fields", ())
    index = {f["name"]: i for i, f in enumerate(fields)}
    top = 0
    nested: dict[int, int] = {}
    for name in names:
        parent, dot, child = name.partition(".")
        if dot:
            pos = index[parent]
            sub = nested_record(fields[pos]["type"])
            if sub is None:
                raise ValueError(f"{parent} is not compound")
            sub_index = {f["name"]: i for i, f in enumerate(sub["fields"])}
            nested[pos] = nested.get(pos, 0) | (1 << sub_index[child])
        else:
            top |= 1 << index[name]
    out = [f"0x{top:X}"] if top or nested else []
    out.extend(f"{pos}-0x{bits:X}" for pos, bits in sorted(nested.items()))
    return out
