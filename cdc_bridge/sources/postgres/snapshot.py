"""The Postgres snapshot reader: ``op: r`` events of the captured tables, read in key-ordered
chunks inside one (exported) snapshot, resumable after a crash by primary key. The coordinator
(``sources/coordinator.py``) drives it: markers, progress, offsets, hand-off."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import sql

from cdc_bridge.events import OP_READ, SNAPSHOT_TRUE, ChangeEvent
from cdc_bridge.sources.coordinator import SnapshotChunk, SnapshotReader
from cdc_bridge.sources.postgres.slot import TableInfo
from cdc_bridge.sources.postgres.tables import TableCodec, catalog_columns

__all__ = ["PgSnapshotReader", "chunk_query"]

log = logging.getLogger(__name__)

CodecFn = Callable[[TableInfo, list[Any], tuple[str, ...]], TableCodec]


class PgSnapshotReader(SnapshotReader):
    """Reads the tables inside one REPEATABLE READ transaction (the slot's exported snapshot
    when it was just created), in primary-key order, ``fetch_size`` rows per chunk.

    The key of a chunk's last row is kept as the text of each key column, so a restarted
    snapshot continues with ``WHERE (pk) > (%s::type, ...)``; tables without a primary key
    restart from their beginning.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        tables: list[TableInfo],
        make_codec: CodecFn,
        *,
        fetch_size: int,
        hand_off: Any,
        snapshot_name: str | None,
    ) -> None:
        self.conn = conn
        self.by_name = {t.qualified: t for t in tables}
        self.make_codec = make_codec
        self.fetch_size = fetch_size
        self.hand_off = hand_off
        self.lsn = int(hand_off.lsn)
        conn.autocommit = False
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if snapshot_name:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot_name)))
        row = conn.execute("SELECT txid_current()").fetchone()
        self.txid = int(row[0]) if row else None

    def tables(self) -> list[str]:
        return list(self.by_name)

    def estimate(self, table: str) -> int:
        row = self.conn.execute(
            "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = %s",
            (self.by_name[table].oid,),
        ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        try:
            self.conn.rollback()
        finally:
            self.conn.close()

    def read(self, table: str, after: Any) -> Iterator[SnapshotChunk]:
        t = self.by_name[table]
        conn = self.conn
        query, params, codec = chunk_query(conn, t, self.make_codec, after)
        now_us = time.time_ns() // 1000
        lsn = self.lsn
        source = {
            "schema": t.schema,
            "table": t.name,
            "txId": self.txid,
            "lsn": lsn,
            "xmin": None,
            "origin": None,
            "origin_lsn": None,
        }
        seq = f'[null,"{lsn}"]'
        key_index = codec.key_index
        table_schema = codec.schema
        build = codec.row
        with conn.cursor(name=f"cdc_bridge_snapshot_{t.oid}") as cur:
            cur.itersize = self.fetch_size
            cur.execute(query, params)
            while True:
                rows = cur.fetchmany(self.fetch_size)
                if not rows:
                    break
                events = [
                    ChangeEvent(
                        table_schema, OP_READ, None, build(r), now_us, source, SNAPSHOT_TRUE, seq
                    )
                    for r in rows
                ]
                last = rows[-1]
                yield SnapshotChunk(events, [last[i] for i in key_index] if key_index else None)


def chunk_query(
    conn: psycopg.Connection,
    t: TableInfo,
    make_codec: CodecFn,
    after: Any,
    *,
    where: str | None = None,
    limit: int | None = None,
) -> tuple[sql.Composed, list[Any], TableCodec]:
    """The key-ordered SELECT of ``t``'s rows after key ``after`` (text forms of the key
    columns), optionally filtered by the SQL condition ``where`` and limited."""
    # generated columns too: Debezium's snapshot events carry them (its streamed ones not)
    cols, _pk, type_names = catalog_columns(conn, t.oid, generated=True)
    codec = make_codec(t, cols, t.primary_key)
    # aliased: ORDER BY must see the columns, not their text forms of the same name
    select = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(
            _text_expr(c.name, c.type_oid, c.typmod), sql.Identifier(f"c{i}")
        )
        for i, c in enumerate(cols)
    )
    query: sql.Composed = sql.SQL("SELECT {} FROM {}").format(
        select, sql.Identifier(t.schema, t.name)
    )
    params: list[Any] = []
    conds: list[sql.Composable] = []
    if where:
        conds.append(sql.SQL("({})").format(sql.SQL(where)))  # the operator's own condition
    pk = list(codec.schema.key_columns)
    if pk and isinstance(after, list) and len(after) == len(pk):
        pk_idents = sql.SQL(", ").join(sql.Identifier(k) for k in pk)
        bound = sql.SQL(", ").join(sql.SQL("%s::{}").format(sql.SQL(type_names[k])) for k in pk)
        conds.append(sql.SQL("({}) > ({})").format(pk_idents, bound))
        params = list(after)
    if conds:
        query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conds)
    if pk:
        query += sql.SQL(" ORDER BY {}").format(sql.SQL(", ").join(sql.Identifier(k) for k in pk))
    if limit is not None:
        query += sql.SQL(" LIMIT {}").format(sql.Literal(limit))
    return query, params, codec


def _text_expr(name: str, oid: int, typmod: int) -> sql.Composable:
    """The column in its output-function text form, as pgoutput sends it."""
    if oid == 1042 and typmod >= 5:  # char(n): ::text would strip the padding
        return sql.SQL("rpad({}::text, {})").format(sql.Identifier(name), sql.Literal(typmod - 4))
    if oid == 869:  # inet: ::text always adds the netmask, the output function only when needed
        return sql.SQL("inet_out({})::text").format(sql.Identifier(name))
    return sql.SQL("{}::text").format(sql.Identifier(name))
