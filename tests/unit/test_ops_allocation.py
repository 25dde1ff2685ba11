"""The allocation ops API over a real channel: spend by time zone, price updates that outlive a restart, re-pricing.

The ledger is the OpenAI dashboard sample priced from the shipped catalogue, in an SQLite file. Its gpt-4o row
(2025-10-05, project proj_4BhNtYH0z7dWbBtzhibxa65W) has 53,440 uncached input, 5,760 cached input and 10,646
output tokens, so at 2.50, 1.25 and 10.00 USD per 1,000,000 it costs
0.1336 + 0.0072 + 0.10646 = 0.24726 USD.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest

from services.allocation.handlers import AllocationHandler
from services.allocation.ops import registration
from services.allocation.price_updates import apply_updates
from services.allocation.reconciliation import Tolerance
from services.allocation.settings import AllocationSettings
from services.allocation.sources import AllocationSources
from services.allocation.tables import TABLES
from shared.catalogue import CatalogueError, PriceCatalogue, default_catalogue_paths, parse_price_row
from shared.db import Database
from shared.events import ServiceTier, UsageBucket
from shared.outbox import Outbox
from shared.protos.allocation.v1 import allocation_pb2, allocation_pb2_grpc
from shared.protos.common.v1 import common_pb2
from tests.conftest import EXAMPLES
from tests.ops_support import LocalOps, local_ops
from tests.unit.test_pricing import dashboard_events
from tests.unit.test_repricing import RecordingPublisher, incoming

GPT_4O_COST = Decimal("0.24726")


@dataclass
class Allocation:
    ops: LocalOps
    stub: Any
    settings: AllocationSettings
    publisher: RecordingPublisher


@pytest.fixture
async def allocation(tmp_path: Path) -> AsyncIterator[Allocation]:
    prices = tmp_path / "prices.csv"
    shutil.copy(default_catalogue_paths()[0], prices)
    settings = AllocationSettings(
        AIFINOPS_DATA_DIR=str(tmp_path),
        ALLOCATION_PRICES_FILE=str(prices),
        ALLOCATION_RULES_FILE=str(EXAMPLES / "config" / "allocation_rules.yaml"),
    )
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'allocation.db'}")
    await database.create_tables(TABLES)
    publisher = RecordingPublisher()
    outbox = Outbox("allocation", database, publisher)  # type: ignore[arg-type]
    handler = AllocationHandler(database, outbox, AllocationSources.from_settings(settings))
    await handler.handle(incoming(dashboard_events()))
    try:
        async with local_ops(tmp_path, "allocation", [registration(database, outbox, settings, Tolerance())]) as ops:
            async with grpc.aio.insecure_channel(ops.target) as channel:
                yield Allocation(ops, allocation_pb2_grpc.AllocationOpsStub(channel), settings, publisher)
    finally:
        await database.dispose()


async def spend(allocation: Allocation, **fields: Any) -> list[Any]:
    request = allocation_pb2.StreamSpendRequest(tenant="acme", **fields)
    return [row async for row in allocation.stub.StreamSpend(request, metadata=allocation.ops.bearer("reader"))]


def gpt_4o_input(price: str, start: str) -> allocation_pb2.PriceUpdate:
    return allocation_pb2.PriceUpdate(
        provider="openai",
        model="gpt-4o",
        bucket="input_uncached_tokens",
        unit_price=common_pb2.Money(amount=price, currency="USD"),
        effective_from=start,
        source="negotiated list price",
    )


async def test_spend_by_model(allocation: Allocation) -> None:
    rows = await spend(allocation, dimensions=["model"], period="total")

    by_model = {row.dimensions["model"]: Decimal(row.amount.amount) for row in rows}
    assert by_model["gpt-4o"] == GPT_4O_COST
    assert {row.amount.currency for row in rows} == {"USD"}
    assert {row.time_zone for row in rows} == {"UTC"}


async def test_spend_days_follow_the_time_zone(allocation: Allocation) -> None:
    # The gpt-4o line covers 2025-10-05 00:00 to 24:00 UTC. Its middle, 12:00 UTC, is 02:00 on 2025-10-06
    # in Pacific/Kiritimati (UTC+14) and 02:00 on 2025-10-05 in Pacific/Honolulu (UTC−10).
    kiritimati = await spend(allocation, dimensions=["model"], period="day", time_zone="Pacific/Kiritimati")
    honolulu = await spend(allocation, dimensions=["model"], period="day", time_zone="Pacific/Honolulu")

    assert [row.period for row in kiritimati if row.dimensions["model"] == "gpt-4o"] == ["2025-10-06"]
    assert [row.period for row in honolulu if row.dimensions["model"] == "gpt-4o"] == ["2025-10-05"]
    assert {row.time_zone for row in kiritimati} == {"Pacific/Kiritimati"}


@pytest.mark.parametrize(
    ("fields", "prefix"),
    [
        ({"period": "week"}, "period:"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone:"),
        ({"dimensions": ["colour"]}, "dimensions:"),
        ({"start_day": "5 October"}, "start_day:"),
        ({"start_day": "2025-10-06", "end_day": "2025-10-05"}, "end_day:"),
        ({"charge_categories": ["discount"]}, "charge_categories:"),
        ({"currency": "dollars"}, "currency:"),
    ],
)
async def test_bad_spend_requests_name_the_field(allocation: Allocation, fields: dict[str, Any], prefix: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await spend(allocation, **fields)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (raised.value.details() or "").startswith(prefix)


async def test_price_update_reprices_and_outlives_restart(allocation: Allocation) -> None:
    admin = allocation.ops.bearer("admin")
    update = allocation_pb2.UpdatePricesRequest(updates=[gpt_4o_input("5.00", "2025-10-01")], changed_by="dana")

    updated = await allocation.stub.UpdatePrices(update, metadata=admin)
    progress = [item async for item in allocation.stub.Reprice(allocation_pb2.RepriceRequest(), metadata=admin)]

    assert (updated.added, updated.closed, updated.corrected) == (1, 1, 0)
    final = progress[-1]
    assert final.done
    assert final.catalogue_version == updated.catalogue_version
    assert final.examined == final.total == 6  # every cost was priced under the previous catalogue
    assert final.corrected == 1  # only the gpt-4o line uses the changed price
    # 53,440 × 5.00 / 1,000,000 = 0.2672, so the line costs 0.2672 + 0.0072 + 0.10646 = 0.38086 USD.
    rows = await spend(allocation, dimensions=["model"], period="total")
    assert {row.dimensions["model"]: Decimal(row.amount.amount) for row in rows}["gpt-4o"] == Decimal("0.38086")
    corrections = [item for item in allocation.publisher.sent if item.event_type == "cost.allocated"]
    assert len(corrections) == 6 + 1  # six costs when first priced, one correction

    # A new process loads the stored update over the catalogue file.
    reloaded = AllocationSources.from_settings(allocation.settings).load().book.catalogue
    row = reloaded.price(
        "openai", "gpt-4o", ServiceTier.STANDARD, UsageBucket.INPUT_UNCACHED_TOKENS, datetime(2025, 10, 5, tzinfo=UTC)
    )
    assert row is not None
    assert row.unit_price == Decimal("5.00")
    assert reloaded.version == updated.catalogue_version

    prices = allocation.stub.StreamPrices(
        allocation_pb2.StreamPricesRequest(provider="openai", model="gpt-4o"), metadata=admin
    )
    listed = {item.row_id: item async for item in prices}
    assert listed["openai/gpt-4o/standard/input_uncached_tokens/2025-10-01"].updated
    assert listed["openai/gpt-4o/standard/input_uncached_tokens/2024-08-06"].effective_to.startswith("2025-10-01")


@pytest.mark.parametrize(
    ("update", "prefix"),
    [
        (gpt_4o_input("five", "2025-10-01"), "updates[0].unit_price.amount:"),
        (gpt_4o_input("5.00", ""), "updates[0].effective_from:"),
        (gpt_4o_input("5.00", "2020-01-01"), "updates:"),  # before the first gpt-4o row
        (allocation_pb2.PriceUpdate(provider="openai", model="gpt-4o", bucket="words"), "updates[0].unit_price:"),
    ],
)
async def test_bad_price_updates_are_rejected(
    allocation: Allocation, update: allocation_pb2.PriceUpdate, prefix: str
) -> None:
    request = allocation_pb2.UpdatePricesRequest(updates=[update])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await allocation.stub.UpdatePrices(request, metadata=allocation.ops.bearer("admin"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (raised.value.details() or "").startswith(prefix)
    assert not allocation.settings.price_updates_path().exists()


@pytest.mark.parametrize("client", ["reader", "acme-admin"])
async def test_price_update_needs_write_on_every_tenant(allocation: Allocation, client: str) -> None:
    request = allocation_pb2.UpdatePricesRequest(updates=[gpt_4o_input("5.00", "2025-10-01")])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await allocation.stub.UpdatePrices(request, metadata=allocation.ops.bearer(client))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert not allocation.settings.price_updates_path().exists()


async def test_tenant_token_sees_only_its_tenant(allocation: Allocation) -> None:
    request = allocation_pb2.StreamSpendRequest(tenant="globex")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        _ = [row async for row in allocation.stub.StreamSpend(request, metadata=allocation.ops.bearer("acme-admin"))]
    own = allocation.stub.StreamSpend(allocation_pb2.StreamSpendRequest(), metadata=allocation.ops.bearer("acme-admin"))

    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert {row.dimensions["team"] async for row in own} == {"document-ai"}  # the token's one tenant, acme


async def test_rules_page_in_match_order(allocation: Allocation) -> None:
    reader = allocation.ops.bearer("reader")
    request = allocation_pb2.ListAllocationRulesRequest(page_size=4)
    first = await allocation.stub.ListAllocationRules(request, metadata=reader)
    request.page_token = first.next_page_token
    second = await allocation.stub.ListAllocationRules(request, metadata=reader)

    rules = [*first.rules, *second.rules]
    assert [rule.position for rule in rules] == [1, 2, 3, 4, 5, 6, 7]  # the example file has seven rules
    assert rules[0].rule_id == "document-ai-project"
    assert rules[0].allocation["team"] == "document-ai"
    assert rules[6].pool == "oracle-tenancy"
    assert second.next_page_token == ""


def price(model: str, unit_price: str, start: str, end: str = "") -> Any:
    return parse_price_row(
        {
            "provider": "openai",
            "model": model,
            "bucket": "output_tokens",
            "service_tier": "standard",
            "unit_price": unit_price,
            "price_per": "1000000",
            "currency": "USD",
            "effective_from": start,
            "effective_to": end,
            "source": "test",
        },  # fmt: skip
        "test",
    )


def test_updates_correct_close_and_add() -> None:
    rows = [price("m", "2.00", "2025-01-01", "2025-06-01"), price("m", "3.00", "2025-06-01")]

    merged, counts = apply_updates(
        rows,
        [
            price("m", "2.50", "2025-01-01"),  # corrects the first row and keeps its end
            price("m", "4.00", "2025-09-01"),  # closes the open row on 2025-09-01
            price("other", "1.00", "2025-01-01"),  # a model with no rows yet
            price("m", "4.00", "2025-09-01"),  # the same price again
        ],
    )

    assert (counts.corrected, counts.closed, counts.added, counts.unchanged) == (1, 1, 2, 1)
    by_start = {(row.model, row.effective_from.date().isoformat()): row for row in merged}
    assert by_start[("m", "2025-01-01")].unit_price == Decimal("2.50")
    assert by_start[("m", "2025-01-01")].effective_to == datetime(2025, 6, 1, tzinfo=UTC)
    assert by_start[("m", "2025-06-01")].effective_to == datetime(2025, 9, 1, tzinfo=UTC)
    assert by_start[("m", "2025-09-01")].effective_to is None
    PriceCatalogue(merged, {}, version="check")  # no overlapping rows


def test_update_inside_a_closed_range_is_rejected() -> None:
    rows = [price("m", "2.00", "2025-01-01", "2025-06-01"), price("m", "3.00", "2025-06-01")]
    with pytest.raises(CatalogueError, match="falls before or inside row openai/m/standard/output_tokens/2025-01-01"):
        apply_updates(rows, [price("m", "2.20", "2025-03-01")])
