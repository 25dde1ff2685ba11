"""Allocation throughput without a broker: pricing alone, storing new costs, and re-pricing after a price change.

Run with ``python -m bench.allocation_rate [--events N]``. The database is
``DATABASE_URL`` when set (a scratch database is created and dropped on that
server), else an SQLite file in a temporary folder. Events are sent to a
publisher that only counts them, so the figures are allocation's own work.

- price: ``build_cost`` per usage event (catalogue lookup, context tier, lines, shares), in memory.
- store: usage events through the handler in batches of 2,000, as the service receives them.
- reprice: the sweep after one model's output price changes, which corrects a third of the costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.allocation.costing import build_cost
from services.allocation.handlers import AllocationHandler
from services.allocation.sources import AllocationSources
from services.allocation.tables import TABLES
from shared.catalogue import default_catalogue_paths
from shared.consumer import Incoming
from shared.db import Database
from shared.events import Evidence, UsageBucket, UsageDimensions, UsageRecorded
from shared.kafka import OutgoingEvent
from shared.outbox import Outbox
from shared.settings import ServiceSettings

MODELS = ("gpt-5", "gpt-5-mini", "gpt-4o")


class CountingPublisher:
    def __init__(self) -> None:
        self.count = 0

    async def publish(self, events: Sequence[OutgoingEvent]) -> None:
        self.count += len(events)


def usage_events(count: int) -> list[UsageRecorded]:
    start = datetime(2025, 10, 1, tzinfo=UTC)
    return [
        UsageRecorded(
            event_id=str(uuid.uuid4()),
            occurred_at=start + timedelta(minutes=index),
            source="bench",
            tenant="bench",
            correlation_id="bench",
            provider="openai",
            model=MODELS[index % len(MODELS)],
            period_start=start + timedelta(minutes=index),
            period_end=start + timedelta(minutes=index + 1),
            dimensions=UsageDimensions(api_key_id=f"key_{index % 50}"),
            quantities={
                UsageBucket.INPUT_UNCACHED_TOKENS: Decimal(1_000 + index % 997),
                UsageBucket.CACHE_READ_TOKENS: Decimal(index % 512),
                UsageBucket.OUTPUT_TOKENS: Decimal(200 + index % 331),
            },
            request_count=1,
            evidence=Evidence(format="bench"),
        )
        for index in range(count)
    ]


async def database_url(folder: Path) -> tuple[str, str | None]:
    configured = os.environ.get("DATABASE_URL")
    if not configured:
        return f"sqlite+aiosqlite:///{folder / 'allocation.db'}", None
    server = ServiceSettings(DATABASE_URL=configured).database_url
    assert server is not None
    name = f"aifinops_bench_{uuid.uuid4().hex[:10]}"
    engine = create_async_engine(server, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return f"{server.rpartition('/')[0]}/{name}", name


async def drop_database(name: str) -> None:
    server = ServiceSettings(DATABASE_URL=os.environ["DATABASE_URL"]).database_url
    assert server is not None
    engine = create_async_engine(server, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


async def run(count: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="aifinops-bench-"))
    prices = folder / "prices.csv"
    shutil.copy(default_catalogue_paths()[0], prices)
    url, scratch = await database_url(folder)
    database = Database(url)
    try:
        await database.create_tables(TABLES)
        publisher = CountingPublisher()
        handler = AllocationHandler(
            database,
            Outbox("allocation", database, publisher),
            AllocationSources(prices_file=prices),  # type: ignore[arg-type]
        )
        events = usage_events(count)

        began = time.perf_counter()
        for event in events:
            build_cost(event, handler.loaded.book, handler.loaded.rules)
        price_s = time.perf_counter() - began

        began = time.perf_counter()
        for start in range(0, count, 2000):
            await handler.handle([Incoming(record=None, event=e) for e in events[start : start + 2000]])  # type: ignore[arg-type]
        store_s = time.perf_counter() - began

        prices.write_text(
            prices.read_text().replace(
                "openai,gpt-5-mini,output_tokens,standard,2.00,", "openai,gpt-5-mini,output_tokens,standard,1.90,"
            )
        )
        began = time.perf_counter()
        result = await handler.refresh()
        reprice_s = time.perf_counter() - began
        assert result is not None
    finally:
        await database.dispose()
        if scratch is not None:
            await drop_database(scratch)
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "events": count,
        "database": "postgresql" if scratch else "sqlite",
        "price_events_per_s": round(count / price_s),
        "store_events_per_s": round(count / store_s),
        "reprice_examined_per_s": round(result.examined / reprice_s),
        "repriced_corrected": result.corrected,
        "published": publisher.count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="Usage events to price and store.")
    arguments = parser.parse_args()
    figures = asyncio.run(run(arguments.events))
    print(json.dumps(figures))
    for key, value in figures.items():
        print(f"{key:>24}: {value}", file=sys.stderr)


if __name__ == "__main__":
    main()
