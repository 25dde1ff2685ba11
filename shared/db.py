"""Database plumbing: async engines for PostgreSQL (asyncpg) or SQLite (aiosqlite).

Every service owns its tables, whose names start with the service name
(``allocation_cost_ledger``); with PostgreSQL they may share one database, with
SQLite each service has its own file. Money columns use ``ExactDecimal``, which
is NUMERIC on PostgreSQL and text on SQLite, because SQLite would otherwise store
a Decimal as a binary float.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, Numeric, String, Table, event, exc, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

from shared.logging import get_logger

log = get_logger(__name__)


class ExactDecimal(TypeDecorator[Decimal]):
    """A Decimal column that keeps every digit on both PostgreSQL and SQLite."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(String(64))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"ExactDecimal takes a Decimal, got {type(value).__name__}")
        if dialect.name == "postgresql":
            return value
        return str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp column that always returns an aware UTC datetime, on SQLite too (which keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"cannot store a timestamp without a time zone: {value.isoformat()}; give it one")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# A JSON column stored as JSONB on PostgreSQL.
JsonColumn = JSON().with_variant(postgresql.JSONB(), "postgresql")


class SchemaMismatch(RuntimeError):
    """A table exists but lacks columns this version writes; the database needs migrating or replacing."""


def is_transient_error(error: BaseException) -> bool:
    """Tell whether an error lies outside the message (database down, schema wrong), so retrying it later is right.

    Such errors must never dead-letter a message: the message is fine and will succeed once the cause is fixed.
    A ProgrammingError (unknown table or column, bad SQL) is a deployment fault, not a data fault, so it counts too.
    """
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(
        error,
        exc.OperationalError
        | exc.InterfaceError
        | exc.ProgrammingError
        | exc.TimeoutError
        | OSError
        | ConnectionError
        | asyncio.TimeoutError,
    )


class Database:
    """One service's connection to its database."""

    def __init__(self, url: str) -> None:
        self.url = url
        options: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            options = {"connect_args": {"timeout": 30}}
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def create_tables(self, tables: Iterable[Table]) -> None:
        """Create missing tables, then check that existing ones have every column this version writes."""
        wanted = list(tables)
        async with self.engine.begin() as connection:
            await connection.run_sync(lambda sync: SQLModel.metadata.create_all(sync, tables=wanted))
            missing = await connection.run_sync(lambda sync: _missing_columns(sync, wanted))
        if missing:
            listed = "; ".join(f"{table}: {', '.join(columns)}" for table, columns in missing.items())
            raise SchemaMismatch(
                f"tables created by an older version lack columns ({listed}); migrate them or point "
                "DATABASE_URL at a new database"
            )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as connection:
            yield connection

    async def dispose(self) -> None:
        await self.engine.dispose()


def _missing_columns(connection: Any, tables: list[Table]) -> dict[str, list[str]]:
    inspector = inspect(connection)
    missing: dict[str, list[str]] = {}
    for table in tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        absent = [column.name for column in table.columns if column.name not in present]
        if absent:
            missing[table.name] = absent
    return missing


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def insert_ignoring_duplicates(connection: AsyncConnection, table: Table, key_columns: Sequence[str]) -> Any:
    """Build an INSERT that skips rows whose key already exists and returns the keys it inserted."""
    dialect = connection.dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(table).on_conflict_do_nothing(index_elements=list(key_columns))
    return statement.returning(*(table.c[name] for name in key_columns))


async def insert_new_rows(
    connection: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]], key_columns: Sequence[str]
) -> set[tuple[Any, ...]]:
    """Insert rows in bulk, skipping existing keys; return the keys that were new."""
    if not rows:
        return set()
    statement = insert_ignoring_duplicates(connection, table, key_columns)
    inserted: set[tuple[Any, ...]] = set()
    # Chunks keep each statement under SQLite's and asyncpg's bound-parameter limits.
    chunk_size = max(1, 30000 // max(1, len(rows[0])))
    for start in range(0, len(rows), chunk_size):
        result = await connection.execute(statement, list(rows[start : start + chunk_size]))
        inserted.update(tuple(row) for row in result.all())
    return inserted


def upsert(connection: AsyncConnection, table: Table, key_columns: Sequence[str], update_columns: Sequence[str]) -> Any:
    """Build an INSERT that replaces the listed columns when the key exists."""
    module: Any = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = module.insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(key_columns),
        set_={name: statement.excluded[name] for name in update_columns},
    )


async def replace_older_revisions(
    connection: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]], *, key: str, revision: str = "revision"
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Store rows whose revision is newer than what the table holds for their key, replacing the older rows.

    Several rows may share a key (one per share of a split cost); they carry the same revision. Returns the rows
    that were stored and the older rows they replaced, so callers can recompute whatever both touched. Rows with
    a revision the table already holds, or an older one, are skipped: replaying them changes nothing.
    """
    if not rows:
        return [], []
    newest: dict[Any, int] = {}
    for row in rows:
        newest[row[key]] = max(newest.get(row[key], 0), row[revision])
    # A record delivered twice in one batch (redelivery after a rebalance) gives identical rows: keep one of each.
    unique: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        if row[revision] == newest[row[key]]:
            unique.setdefault(tuple(sorted(row.items())), row)
    candidates = list(unique.values())
    keys = list(newest)
    stored: dict[Any, int] = {}
    previous: list[Any] = []
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        result = await connection.execute(table.select().where(table.c[key].in_(chunk)))
        for existing in result:
            previous.append(existing)
            stored[existing._mapping[key]] = max(stored.get(existing._mapping[key], 0), existing._mapping[revision])
    fresh = [row for row in candidates if row[revision] > stored.get(row[key], 0)]
    replaced_keys = {row[key] for row in fresh if row[key] in stored}
    replaced = [existing for existing in previous if existing._mapping[key] in replaced_keys]
    for start in range(0, len(keys), 1000):
        chunk = [value for value in keys[start : start + 1000] if value in replaced_keys]
        if chunk:
            await connection.execute(table.delete().where(table.c[key].in_(chunk)))
    if fresh:
        await connection.execute(table.insert(), fresh)
    return fresh, replaced


async def create_scratch_database(server_url: str, prefix: str = "aifinops_scratch") -> tuple[str, str]:
    """Create an empty PostgreSQL database on the server of ``server_url``; return its URL and name."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}", name


async def drop_database(server_url: str, name: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


async def lock_keys(connection: AsyncConnection, keys: Iterable[str]) -> None:
    """Serialise transactions that recompute the same derived figures, until the caller's transaction ends.

    Two consumers (two subscriptions of one service, or two copies of it) may store rows for the same key at the
    same time; each then recomputes the key's figures without seeing the other's uncommitted rows, and the last
    to commit would keep figures that miss the other's rows. Call this after writing the new rows and before
    reading the key's rows back: on PostgreSQL it takes a transaction-scoped advisory lock per key, in sorted
    order so that two transactions cannot deadlock; the second then reads after the first has committed. SQLite
    needs nothing, because a write transaction there already excludes every other writer.
    """
    if connection.dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": digest})
