"""The interface every sink implements, and the records and results the route engine hands it.

The route engine (``cdc_bridge.routes``) does everything that does not depend on the target:
consuming, decoding envelopes, ops selection, filters, field mapping, batching, retries, dead
letters and offsets. A sink only turns a batch of :class:`SinkRecord` into writes and says,
per record, what failed (:class:`BatchResult`), so partial batch failure is first class.

Life cycle: ``Sink(config, route, context)`` -> ``open()`` -> ``apply(...)`` any number of
times -> ``close()``. ``check()`` is what ``cdc-bridge check --connect`` calls.

A sink that can store consumer offsets atomically with its writes (a SQL database) sets
``transactional_offsets = True`` and implements :meth:`Sink.committed_offsets`; the engine then
passes ``positions`` to :meth:`Sink.apply` and seeks to the stored offsets on assignment, which
makes the route exactly-once. Contract for such sinks: ``apply`` with ``positions`` is all or
nothing -- if it reports failures, nothing of the batch (nor the positions) was committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cdc_bridge.config import RouteConfigBase, SinkConfigBase
from cdc_bridge.errors import BridgeError, RecordError

__all__ = [
    "BatchResult",
    "FencedError",
    "FieldSchema",
    "Sink",
    "SinkContext",
    "SinkRecord",
    "TopicPartition",
]

# (topic, partition)
TopicPartition = tuple[str, int]

# A Connect field schema: {"type": "int32", "optional": False, "name": ..., "field": "id"}.
FieldSchema = Mapping[str, Any]


class FencedError(BridgeError):
    """The stored offsets moved under us: another consumer owns the partition now.

    Raised by ``transactional_offsets`` sinks when ``previous`` does not match what is
    stored; the batch was rolled back and the route re-reads the stored offsets.
    """


@dataclass(slots=True)
class SinkRecord:
    """One change, decoded and mapped by the route, ready for a sink.

    - ``op``: ``c``/``u``/``d``/``r``/``t``. A tombstone (null value) arrives as ``d`` with
      ``tombstone=True`` and ``before``/``after`` None: delete by ``key`` (idempotent).
    - ``key``: the record key payload after the route's renames (``{"id": 1}``), None when the
      table has no key.
    - ``before`` / ``after``: rows after the route's mapping (None where the envelope has null).
    - ``fields``: the Connect field schemas of the mapped row, by column name, in column order,
      when the topic carries schemas (None for schemaless topics).
    - ``key_fields``: the key's field names in key order (from the key schema or payload).
    - ``source``: the envelope's ``source`` block (``db``, ``schema``, ``table``, ``name``...).
    - ``raw_key`` / ``raw_value``: the original Kafka bytes, kept for the dead-letter topic.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    op: str
    key: dict[str, Any] | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, FieldSchema] | None = None
    key_fields: tuple[str, ...] = ()
    tombstone: bool = False
    raw_key: bytes | None = None
    raw_value: bytes | None = None

    @property
    def row(self) -> dict[str, Any] | None:
        """The row state the change leaves (``after``), or the deleted row (``before``)."""
        return self.after if self.after is not None else self.before


@dataclass(slots=True)
class BatchResult:
    """What happened to a batch: ``failed`` maps an index into the batch to its error.

    Records whose index is not in ``failed`` were applied. Errors are
    :class:`~cdc_bridge.errors.RecordError` (retried a bounded number of times, then sent to
    the dead-letter topic). Passing failures of the whole batch (lost connection, deadlock)
    are raised as :class:`~cdc_bridge.errors.RetriableError` instead; the engine retries them
    with backoff without limit.
    """

    failed: dict[int, RecordError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    @classmethod
    def success(cls) -> BatchResult:
        return cls()


@dataclass(slots=True)
class SinkContext:
    """What a sink knows about where it runs."""

    bridge: str
    route: str
    group_id: str
    state: Any = None  # the bridge's state store, when the runtime has one
    #: topic -> the broker's topic id, kept current by the route engine; sinks that store
    #: offsets store it with them (a re-created topic has a new id).
    topic_ids: dict[str, str] = field(default_factory=dict)


class Sink:
    """Base class of sinks; one instance serves one route (one consumer group)."""

    #: True when the sink stores consumer offsets in the same transaction as its writes.
    transactional_offsets: ClassVar[bool] = False
    #: True when the target mirrors source rows (a table, SObjects) rather than keeping
    #: events: a row leaving the route's filter is then deleted (``on_filter_exit``).
    mirrors_rows: ClassVar[bool] = False

    def __init__(
        self, config: SinkConfigBase, route: RouteConfigBase, context: SinkContext
    ) -> None:
        self.config = config
        self.route = route
        self.context = context

    def open(self) -> None:
        """Connect; raise ConfigError (bad setup) or RetriableError (not reachable yet)."""

    def apply(
        self,
        batch: Sequence[SinkRecord],
        positions: Mapping[TopicPartition, int] | None = None,
        *,
        previous: Mapping[TopicPartition, int | None] | None = None,
    ) -> BatchResult:
        """Apply ``batch`` in order (per key order must be kept).

        ``positions``: next offset per partition covered by this batch (including records
        the route filtered out); only given to ``transactional_offsets`` sinks, which store it
        atomically with the batch. ``previous`` (same sinks): the offsets this consumer
        believes are stored now (None: nothing stored); when the stored ones differ, another
        consumer applied the partition meanwhile and the sink raises :class:`FencedError`
        instead of applying anything (zombie fencing).
        """
        raise NotImplementedError

    def committed_offsets(
        self, group: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Next offsets stored by the sink for ``partitions`` (missing: nothing stored)."""
        return {}

    def stored_topic_ids(
        self, group: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, str]:
        """The topic ids stored with the offsets (``transactional_offsets`` sinks): which
        incarnation of each topic those offsets count in. Missing: not known."""
        return {}

    def reset_offsets(self, group: str, topics: Iterable[str] | None = None) -> int:
        """Forget the offsets stored in the target for ``group`` (all its topics, or these);
        the number of partitions forgotten. For ``cdc-bridge routes reset``."""
        return 0

    def check(self) -> list[str]:
        """Problems found connecting to the target (empty: fine). For ``check --connect``."""
        return []

    def close(self) -> None:
        """Release connections; called once, also after errors."""
