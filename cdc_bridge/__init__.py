"""cdc-bridge: committed database changes as Debezium events on Kafka, routed to targets."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
