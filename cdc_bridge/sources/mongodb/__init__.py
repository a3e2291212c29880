"""MongoDB capture adapter: change streams with resume tokens, snapshot hand-off, Debezium events."""

from __future__ import annotations

from cdc_bridge.sources.mongodb.config import MongoSourceConfig
from cdc_bridge.sources.mongodb.convert import ChangeConverter, StreamNotice
from cdc_bridge.sources.mongodb.offset import MongoOffset

__all__ = ["ChangeConverter", "MongoOffset", "MongoSourceConfig", "StreamNotice"]
