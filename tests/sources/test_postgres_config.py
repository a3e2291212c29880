"""The postgres source's config model: defaults, validation messages, README key table."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cdc_bridge.registry import SOURCE_KINDS
from cdc_bridge.sources.coordinator import SnapshotCursor
from cdc_bridge.sources.postgres.config import PostgresSourceConfig, reference_table
from cdc_bridge.sources.postgres.source import PostgresOffset, PostgresSource


def test_defaults_and_registry() -> None:
    cfg = PostgresSourceConfig.model_validate(
        {"name": "Shop-1", "kind": "postgres", "dsn": "postgresql://u:secret@h/db"}
    )
    assert cfg.slot == "cdc_bridge_shop_1" and cfg.publication == "cdc_bridge_shop_1"
    assert "secret" not in repr(cfg)
    kind = SOURCE_KINDS["postgres"]
    assert kind.config_model() is PostgresSourceConfig
    assert kind.implementation() is PostgresSource


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"tables": ["orders"]}, "is not `schema.table`"),
        ({"slot_name": "Bad-Slot"}, "lower-case Postgres identifier"),
        ({"snapshot": "sometimes"}, "initial"),
        ({"nope": 1}, "Extra inputs"),
    ],
)
def test_bad_values(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PostgresSourceConfig.model_validate(
            {"name": "s", "kind": "postgres", "dsn": "postgresql:///x", **extra}
        )


def test_every_field_documented() -> None:
    for name, f in PostgresSourceConfig.model_fields.items():
        assert f.description, name
        assert f.examples, name


def test_offset_round_trip() -> None:
    o = PostgresOffset(0x16B374D848, SnapshotCursor(("public.a",), "public.b", ["7"], 12))
    d = o.to_dict()
    assert d["lsn"] == "16/B374D848"
    assert PostgresOffset.from_dict(d) == o
    assert PostgresOffset.from_dict(PostgresOffset(5).to_dict()) == PostgresOffset(5)


def test_offsets_stored_before_the_coordinator_are_migrated() -> None:
    old = {
        "lsn": "0/10",
        "snapshot_done": False,
        "snapshot": {"done": ["public.a"], "table": "public.b", "after": ["7"]},
    }
    assert PostgresOffset.from_dict(old) == PostgresOffset(
        16, SnapshotCursor(("public.a",), "public.b", ["7"])
    )
    pending = PostgresOffset.from_dict({"lsn": "0/0", "snapshot_done": False})
    assert pending.snapshot == SnapshotCursor() and not pending.snapshot_done
    assert PostgresOffset.from_dict({"lsn": "0/10", "snapshot_done": True}).snapshot is None


def test_readme_key_table_is_current() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("<!-- postgres-keys:start -->\n") + len("<!-- postgres-keys:start -->\n")
    end = readme.index("<!-- postgres-keys:end -->")
    assert readme[start:end].strip() == reference_table(), (
        "regenerate the Postgres key table in README.md"
    )
