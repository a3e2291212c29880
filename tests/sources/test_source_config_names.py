"""Every registered source kind speaks the same configuration language: canonical names,
milliseconds for durations, documented fields, and old names still accepted (with a warning)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import ValidationError

from cdc_bridge.config import SourceConfigBase
from cdc_bridge.registry import SOURCE_KINDS

CANONICAL = ("dsn", "snapshot_batch_size", "stream_batch_size", "heartbeat_interval_ms")
SHARED = (
    "snapshot",
    "on_position_lost",
    "retry_initial_delay_ms",
    "retry_max_delay_ms",
    "retry_max_attempts",
    "checkpoint_interval_ms",
)
DSNS = {
    "postgres": "postgresql://u:p@h:5432/db",
    "mysql": "mysql://u:p@h:3306/",
    "mongodb": "mongodb://u:p@h:27017/?replicaSet=rs0",
}

KINDS = sorted(SOURCE_KINDS)


def _model(kind: str) -> Any:
    return SOURCE_KINDS[kind].config_model()


@pytest.mark.parametrize("kind", KINDS)
def test_canonical_names_and_descriptions(kind: str) -> None:
    model = _model(kind)
    assert issubclass(model, SourceConfigBase)
    fields = model.model_fields
    for name in (*CANONICAL, *SHARED):
        assert name in fields, f"{kind}: no `{name}`"
    for name, field in fields.items():
        assert field.description, f"{kind}.{name} has no description"
        assert field.examples, f"{kind}.{name} has no example"
        # one unit convention: durations are milliseconds, named *_ms
        assert not name.endswith(("_s", "_sec", "_secs", "_seconds")), f"{kind}.{name}"
    for old, (new, _factor) in model.renamed_keys.items():
        assert old not in fields and new in fields, (kind, old, new)
        assert f"`{old}`" in (fields[new].description or ""), f"{kind}.{new} names `{old}`"


@pytest.mark.parametrize("kind", KINDS)
def test_old_names_are_accepted_with_a_warning(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    model = _model(kind)
    if kind not in DSNS:
        pytest.skip(f"no example connection string for {kind}")
    for old, (new, factor) in model.renamed_keys.items():
        value: Any = DSNS[kind] if new == "dsn" else 70
        data = {"name": "n", "kind": kind, "dsn": DSNS[kind]}
        if new == "dsn":
            del data["dsn"]
        data[old] = value
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="cdc_bridge.config"):
            cfg = model(**data)
        got = getattr(cfg, new)
        want = value if factor == 1 else int(value * factor)
        assert (got.get_secret_value() if new == "dsn" else got) == want, (old, new)
        assert any(f"{old} is deprecated: call it `{new}`" in r.message for r in caplog.records)
        data[new] = data[old]
        with pytest.raises(ValidationError, match=f"`{old}` is the old name of `{new}`"):
            model(**data)


def test_resnapshot_needs_a_snapshot_mode_that_snapshots() -> None:
    model = _model("postgres")
    with pytest.raises(ValidationError, match="on_position_lost"):
        model(
            name="n",
            kind="postgres",
            dsn=DSNS["postgres"],
            snapshot="never",
            on_position_lost="resnapshot",
        )
    ok = model(name="n", kind="postgres", dsn=DSNS["postgres"], on_position_lost="resnapshot")
    assert ok.on_position_lost == "resnapshot"
