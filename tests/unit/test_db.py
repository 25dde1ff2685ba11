"""Database plumbing: exact decimals, UTC timestamps and a clear error on tables from an older version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, text

from shared.db import Database, ExactDecimal, SchemaMismatch, UtcDateTime, replace_older_revisions


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


async def test_revision_twice_in_batch_stored_once(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'revisions.db'}")
    table = Table(
        "entries", MetaData(), Column("cost_id", String, primary_key=True), Column("share", Integer, primary_key=True),
        Column("revision", Integer), Column("amount", ExactDecimal),
    )  # fmt: skip
    share_0 = {"cost_id": "c1", "share": 0, "revision": 2, "amount": Decimal("0.60")}
    share_1 = {"cost_id": "c1", "share": 1, "revision": 2, "amount": Decimal("0.40")}
    older = {"cost_id": "c1", "share": 0, "revision": 1, "amount": Decimal("1.00")}
    async with database.transaction() as connection:
        await connection.run_sync(table.metadata.create_all)
        # Revision 2 arrives twice in one batch, as after a consumer group rebalance, beside the older revision 1.
        fresh, replaced = await replace_older_revisions(
            connection, table, [share_0, share_1, older, share_0, share_1], key="cost_id"
        )
    async with database.engine.connect() as connection:
        stored = (await connection.execute(table.select().order_by(table.c.share))).all()
    await database.dispose()
    assert fresh == [share_0, share_1]
    assert replaced == []
    assert [(row.share, row.revision, row.amount) for row in stored] == [
        (0, 2, Decimal("0.60")),
        (1, 2, Decimal("0.40")),
    ]
    # 0.60 + 0.40 = 1.00: the cost is stored once, not 2.00.
    assert sum(row.amount for row in stored) == Decimal("1.00")
