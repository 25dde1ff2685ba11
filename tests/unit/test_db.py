"""Database plumbing: exact decimals, UTC timestamps and a clear error on tables from an older version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, text

from shared.db import Database, ExactDecimal, SchemaMismatch, UtcDateTime


async def test_decimals_and_instants_round_trip_on_sqlite(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'round_trip.db'}")
    table = Table(
        "round_trip", MetaData(), Column("id", Integer, primary_key=True), Column("amount", ExactDecimal),
        Column("at", UtcDateTime),
    )  # fmt: skip
    async with database.transaction() as connection:
        await connection.run_sync(table.metadata.create_all)
        at = datetime(2025, 10, 5, 2, 0, tzinfo=timezone(timedelta(hours=2)))
        await connection.execute(table.insert().values(id=1, amount=Decimal("0.00022500000000000002"), at=at))
    async with database.engine.connect() as connection:
        row = (await connection.execute(table.select())).one()
    await database.dispose()
    assert row.amount == Decimal("0.00022500000000000002")  # a float would have lost the last digits
    assert row.at == datetime(2025, 10, 5, 0, 0, tzinfo=UTC)
    assert row.at.tzinfo is UTC


async def test_naive_timestamps_are_refused(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'naive.db'}")
    table = Table("naive", MetaData(), Column("id", Integer, primary_key=True), Column("at", UtcDateTime))
    with pytest.raises(Exception, match="without a time zone"):
        async with database.transaction() as connection:
            await connection.run_sync(table.metadata.create_all)
            await connection.execute(table.insert().values(id=1, at=datetime(2025, 10, 5)))
    await database.dispose()


async def test_older_table_is_reported_not_written(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    async with database.transaction() as connection:
        await connection.execute(text("CREATE TABLE ledger_demo (id INTEGER PRIMARY KEY)"))
    newer = Table("ledger_demo", MetaData(), Column("id", Integer, primary_key=True), Column("shares_json", String))
    with pytest.raises(SchemaMismatch, match="ledger_demo: shares_json"):
        await database.create_tables([newer])
    await database.dispose()
