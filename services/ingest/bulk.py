"""Bulk inserts for imports: COPY into a staging table on PostgreSQL, then one INSERT ... ON CONFLICT DO NOTHING.

``insert_new_rows`` in ``shared.db`` builds multi-row INSERT statements through
SQLAlchemy, which costs more CPU per row than the import can afford. On PostgreSQL
``copy_new_rows`` sends the rows with asyncpg's binary COPY into a temporary
staging table of the caller's connection, then moves them into the real table in
one statement that skips existing keys and returns the keys it inserted. The
result is the same as ``insert_new_rows``, inside the caller's transaction, so a
rollback removes the rows as before. SQLite keeps ``insert_new_rows``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import insert_new_rows
from shared.kafka import OutgoingEvent
from shared.outbox import Outbox

# Below this many rows one INSERT costs less than the four statements of the COPY path (a webhook's few events).
COPY_MIN_ROWS = 50


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def copy_new_rows(
    connection: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]], key_columns: Sequence[str]
) -> set[tuple[Any, ...]]:
    """Insert rows in bulk, skipping existing keys; return the keys that were new."""
    if not rows:
        return set()
    if connection.dialect.name != "postgresql" or len(rows) < COPY_MIN_ROWS:
        return await insert_new_rows(connection, table, rows, key_columns)
    dialect = connection.dialect
    columns = list(rows[0])
    # The column types' own bind processing, such as UtcDateTime's check that a timestamp has a time zone.
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]
    records = [
        tuple(
            value if processor is None or value is None else processor(value)
            for processor, value in zip(processors, (row[name] for name in columns), strict=True)
        )
        for row in rows
    ]

    staging = _quoted(f"staging_{table.name}")
    column_list = ", ".join(_quoted(name) for name in columns)
    key_list = ", ".join(_quoted(name) for name in key_columns)
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    if not driver.is_in_transaction():
        # SQLAlchemy sends BEGIN with its first statement; without it the COPY below would commit on its own.
        await connection.exec_driver_sql("SELECT 1")
    # A temporary table belongs to this session; ON COMMIT DELETE ROWS empties it whatever the outcome.
    await driver.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
        f"SELECT {column_list} FROM {_quoted(table.name)} WITH NO DATA"
    )

    await driver.execute(f"DELETE FROM {staging}")
    await driver.copy_records_to_table(f"staging_{table.name}", records=records, columns=columns)
    inserted = await driver.fetch(
        f"INSERT INTO {_quoted(table.name)} ({column_list}) SELECT {column_list} FROM {staging} "
        f"ON CONFLICT ({key_list}) DO NOTHING RETURNING {key_list}"
    )
    return {tuple(record) for record in inserted}


class CopyingOutbox(Outbox):
    """The ingest outbox, storing events with ``copy_new_rows``; sending and the relay are those of Outbox."""

    async def add(self, connection: AsyncConnection, events: Sequence[OutgoingEvent]) -> set[str]:
        inserted = await copy_new_rows(connection, self.table, self.rows_of(events), ["event_id"])
        return {key[0] for key in inserted}
