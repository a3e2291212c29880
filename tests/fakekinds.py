"""Tiny source / sink kinds for tests of the config loader, CLI and runtime.

``register(monkeypatch)`` (or ``register()`` in a subprocess) adds them to the registry as
``fake`` (source) and ``fakesink`` (sink, with a route model).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, SecretStr

from cdc_bridge.config import (
    RouteConfigBase,
    SinkConfigBase,
    SourceConfigBase,
    dsn_with_schemes,
)
from cdc_bridge.errors import ConfigError, FatalError
from cdc_bridge.events import ChangeEvent, Column, TableSchema
from cdc_bridge.registry import SINK_KINDS, SOURCE_KINDS, Kind
from cdc_bridge.sources.base import Source, SourceContext

__all__ = ["FakeSource", "FakeSourceConfig", "register"]


class FakeSourceConfig(SourceConfigBase):
    """A source that emits ``rows`` numbered rows, then idles until stopped."""

    kind: Literal["fake"] = Field("fake", description="Source kind.", examples=["fake"])
    dsn: dsn_with_schemes("fake", example="fake://user:pass@host/db") = Field(  # type: ignore[valid-type]
        description="Where the fake database is.", examples=["fake://u:${PW}@localhost/db"]
    )
    password: SecretStr | None = Field(
        None, description="A secret, for secret-handling tests.", examples=["s3cret"]
    )
    rows: int = Field(0, ge=0, description="Rows to emit.", examples=[10])
    fail_check: bool = Field(False, description="Make check() fail.", examples=[False])
    fail_run: bool = Field(False, description="Raise FatalError after emitting.", examples=[False])
    batch_delay_ms: int = Field(0, ge=0, description="Pause after each batch.", examples=[50])
    end_run: bool = Field(
        False,
        description="Return from run() after emitting (a source that quits).",
        examples=[False],
    )


class FakeSinkConfig(SinkConfigBase):
    kind: Literal["fakesink"] = Field("fakesink", description="Sink kind.", examples=["fakesink"])
    url: str = Field(description="Where it writes.", examples=["fake://target"])
    api_key: SecretStr = Field(description="An API key.", examples=["k-123"])


class FakeRouteConfig(RouteConfigBase):
    target_table: str = Field(description="Table written by the route.", examples=["crm_orders"])


@dataclass(frozen=True)
class FakeOffset:
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n}


class FakeSource(Source):
    kind = "fake"
    config: FakeSourceConfig

    def check(self) -> None:
        if self.config.fail_check:
            raise ConfigError("fake source check failed: set fail_check = false")

    def run(self, ctx: SourceContext) -> None:
        stored = ctx.load_offset()
        start = stored["n"] if stored else 0
        table = TableSchema(
            connector="postgresql",
            source_name=self.name,
            database="db",
            namespace="public",
            table="items",
            columns=(Column("id", {"type": "int32", "optional": False}),),
            key_columns=("id",),
        )
        n = start
        while n < self.config.rows and not ctx.stopping.is_set():
            batch = [
                ChangeEvent(table, "c", None, {"id": i}, ts_us=0, source={"lsn": i})
                for i in range(n + 1, min(n + 100, self.config.rows) + 1)
            ]
            n = batch[-1].after["id"]
            ctx.emit(batch, FakeOffset(n))
            if self.config.batch_delay_ms:
                ctx.stopping.wait(self.config.batch_delay_ms / 1000)
        if self.config.fail_run:
            raise FatalError("fake source lost its position: start it again from a snapshot")
        if self.config.end_run:
            return
        while not ctx.stopping.wait(0.05):
            time.sleep(0)


class FakeSink:
    """Shaped like the route engine's sinks: one per route, ``check()`` lists problems."""

    def __init__(self, config: FakeSinkConfig, route: FakeRouteConfig, context: Any) -> None:
        self.config = config
        self.route = route
        self.context = context

    def check(self) -> list[str]:
        if "unreachable" in self.config.url:
            return [f"cannot reach {self.config.url}: check the url"]
        if self.route.target_table == "missing":
            return [f"table {self.route.target_table!r} does not exist in {self.config.url}"]
        return []


KINDS = {
    "source": Kind(
        "fake", f"{__name__}:FakeSourceConfig", f"{__name__}:FakeSource", summary="test"
    ),
    "sink": Kind(
        "fakesink",
        f"{__name__}:FakeSinkConfig",
        f"{__name__}:FakeSink",
        route_config=f"{__name__}:FakeRouteConfig",
        summary="test sink",
    ),
}


def register(monkeypatch: Any = None) -> None:
    if monkeypatch is None:
        SOURCE_KINDS["fake"] = KINDS["source"]
        SINK_KINDS["fakesink"] = KINDS["sink"]
    else:
        monkeypatch.setitem(SOURCE_KINDS, "fake", KINDS["source"])
        monkeypatch.setitem(SINK_KINDS, "fakesink", KINDS["sink"])
