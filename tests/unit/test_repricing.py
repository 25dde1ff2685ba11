"""Re-pricing and reconciliation against a real SQLite ledger, with a publisher that records what it sends."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from services.allocation.handlers import AllocationHandler
from services.allocation.ledger import LEDGER, REVISIONS
from services.allocation.reconciliation import RECONCILIATION
from services.allocation.repricing import credit_usage_id, sweep
from services.allocation.sources import AllocationSources
from services.allocation.tables import TABLES
from shared.catalogue import default_catalogue_paths
from shared.consumer import Incoming
from shared.db import Database
from shared.events import (
    ChargeCategory,
    CostAllocated,
    CostVarianceDetected,
    Evidence,
    Money,
    ProviderCostReported,
    UsageBucket,
    UsageDimensions,
    UsageRecorded,
    parse_event,
)
from shared.kafka import OutgoingEvent
from shared.outbox import Outbox
from tests.unit.test_pricing import dashboard_events


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[OutgoingEvent] = []

    async def publish(self, events: Sequence[OutgoingEvent]) -> None:
        self.sent.extend(events)

    def events(self, event_type: str) -> list[Any]:
        return [parse_event(item.value) for item in self.sent if item.event_type == event_type]


@dataclass
class Setup:
    handler: AllocationHandler
    database: Database
    publisher: RecordingPublisher
    prices: Path
    terms: Path


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    prices = tmp_path / "prices.csv"
    shutil.copy(default_catalogue_paths()[0], prices)
    terms = tmp_path / "terms.yaml"
    terms.write_text("tenants: {}\n")
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'allocation.db'}")
    await database.create_tables(TABLES)
    publisher = RecordingPublisher()
    outbox = Outbox("allocation", database, publisher)  # type: ignore[arg-type]
    handler = AllocationHandler(database, outbox, AllocationSources(prices_file=prices, terms_file=terms))
    try:
        yield Setup(handler, database, publisher, prices, terms)
    finally:
        await database.dispose()


def incoming(events: Sequence[Any]) -> list[Incoming[Any]]:
    return [Incoming(record=None, event=event) for event in events]  # type: ignore[arg-type]


def gpt5_pro_usage() -> UsageRecorded:
    at = datetime(2025, 10, 7, tzinfo=UTC)
    return UsageRecorded(
        event_id="pro-1",
        occurred_at=at,
        source="test",
        tenant="acme",
        correlation_id="c",
        provider="openai",
        model="gpt-5-pro",
        period_start=at,
        period_end=at,
        quantities={UsageBucket.INPUT_UNCACHED_TOKENS: Decimal(1_000), UsageBucket.OUTPUT_TOKENS: Decimal(2_000)},
        evidence=Evidence(format="test"),
    )


async def ledger(database: Database) -> dict[str, Any]:
    async with database.engine.connect() as connection:
        return {row.usage_event_id: row for row in (await connection.execute(select(LEDGER))).all()}


NEW_PRICES = """openai,gpt-5-pro,input_uncached_tokens,standard,15.00,1000000,USD,2025-10-06,,openai.com/api/pricing
openai,gpt-5-pro,output_tokens,standard,120.00,1000000,USD,2025-10-06,,openai.com/api/pricing
"""


async def test_price_change_corrects_history_and_backlog(setup: Setup) -> None:
    events = [*dashboard_events(), gpt5_pro_usage()]
    await setup.handler.handle(incoming(events))
    before = await ledger(setup.database)
    assert before["pro-1"].status == "unpriced"
    assert before[events[3].event_id].cost_amount == Decimal("0.569788")

    # gpt-5-mini output falls from 2.00 to 1.50 on 2025-10-08; gpt-5-pro gets prices from 2025-10-06.
    text = setup.prices.read_text().replace(
        "openai,gpt-5-mini,output_tokens,standard,2.00,1000000,USD,2025-08-07,,openai.com/api/pricing",
        "openai,gpt-5-mini,output_tokens,standard,2.00,1000000,USD,2025-08-07,2025-10-08,openai.com/api/pricing\n"
        "openai,gpt-5-mini,output_tokens,standard,1.50,1000000,USD,2025-10-08,,openai.com/api/pricing",
    )
    setup.prices.write_text(text + NEW_PRICES)
    result = await setup.handler.refresh()
    assert result is not None

    # Changed: 2025-10-10 gpt-5-mini 124,784 × 0.25 + 154,852 × 1.50 = 0.031196 + 0.232278 = 0.263474
    #          2025-10-11 gpt-5-mini  22,688 × 0.25 +  33,191 × 1.50 = 0.005672 + 0.0497865 = 0.0554585
    #          gpt-5-pro 1,000 × 15.00 + 2,000 × 120.00 = 0.015 + 0.24 = 0.255 (was unpriced)
    # Unchanged: 2025-10-07 gpt-5-mini is before the new price; the other four rows have other models.
    assert result.corrected == 3
    after = await ledger(setup.database)
    assert after[events[3].event_id].cost_amount == Decimal("0.569788")
    assert after[events[3].event_id].revision == 1
    assert after[events[4].event_id].cost_amount == Decimal("0.263474")
    assert after[events[5].event_id].cost_amount == Decimal("0.0554585")
    assert after["pro-1"].status == "priced"
    assert after["pro-1"].cost_amount == Decimal("0.255")

    revised = {cost.usage_event_id: cost for cost in setup.publisher.events("cost.allocated") if cost.revision == 2}
    assert set(revised) == {events[4].event_id, events[5].event_id, "pro-1"}
    correction = revised[events[4].event_id].correction
    assert correction.previous_revision == 1
    assert correction.previous_cost == Money(amount=Decimal("0.3409"), currency="USD")
    assert "cost 0.3409 USD → 0.263474 USD" in correction.reason
    assert revised["pro-1"].correction.previous_status.value == "unpriced"

    async with setup.database.engine.connect() as connection:
        revisions = (await connection.execute(select(REVISIONS).where(REVISIONS.c.usage_event_id == "pro-1"))).all()
    assert [(row.revision, row.status) for row in revisions] == [(1, "unpriced"), (2, "priced")]


async def test_repricing_twice_changes_nothing(setup: Setup) -> None:
    await setup.handler.handle(incoming([*dashboard_events(), gpt5_pro_usage()]))
    setup.prices.write_text(setup.prices.read_text() + NEW_PRICES)
    first = await setup.handler.refresh()
    assert first is not None and first.corrected == 1
    sent = len(setup.publisher.sent)

    second = await setup.handler.reprice()
    assert second.examined == 0  # every row already carries the version in force
    forced = await sweep(setup.database, setup.handler.outbox, setup.handler.loaded, only_stale=False)
    assert forced.corrected == 0
    assert forced.restamped == 7
    assert len(setup.publisher.sent) == sent


async def test_replayed_usage_publishes_nothing(setup: Setup) -> None:
    events = dashboard_events()
    await setup.handler.handle(incoming(events))
    sent = len(setup.publisher.sent)
    await setup.handler.handle(incoming(events))
    assert len(setup.publisher.sent) == sent


async def test_invalid_price_file_keeps_last_version(setup: Setup) -> None:
    version = setup.handler.loaded.version
    setup.prices.write_text(
        setup.prices.read_text() + "openai,gpt-9,output_tokens,standard,cheap,1000000,USD,2025-01-01,,s\n"
    )
    assert await setup.handler.refresh() is None
    assert setup.handler.loaded.version == version


CREDIT_ID = credit_usage_id("acme", "openai-2025", "onboarding")
CREDIT_TERMS = """tenants:
  acme:
    contracts:
      - id: openai-2025
        provider: openai
        starts: 2025-10-01
        credits:
          - {{id: onboarding, applied_on: 2025-10-01, amount: "{amount}", currency: USD, description: Onboarding}}
"""


async def test_credits_are_lines_of_their_own(setup: Setup) -> None:
    events = dashboard_events()
    await setup.handler.handle(incoming(events))
    setup.terms.write_text(CREDIT_TERMS.format(amount="-5.00"))
    result = await setup.handler.refresh()
    assert result is not None and result.credits_added == 1

    rows = await ledger(setup.database)
    credit = rows[CREDIT_ID]
    assert credit.charge_category == ChargeCategory.CREDIT.value
    assert credit.cost_amount == Decimal("-5.00")
    # usage keeps its own cost: the credit never nets into it
    assert rows[events[3].event_id].cost_amount == Decimal("0.569788")
    # the same terms again change nothing, credit included
    unchanged = await sweep(setup.database, setup.handler.outbox, setup.handler.loaded, only_stale=False)
    assert unchanged.corrected == 0

    setup.terms.write_text(CREDIT_TERMS.format(amount="-7.50"))
    await setup.handler.refresh()
    credit = (await ledger(setup.database))[CREDIT_ID]
    assert (credit.revision, credit.cost_amount) == (2, Decimal("-7.50"))
    published = [cost for cost in setup.publisher.events("cost.allocated") if cost.usage_event_id.startswith("credit:")]
    assert "contract terms changed the credit" in published[-1].correction.reason

    setup.terms.write_text("tenants: {}\n")
    await setup.handler.refresh()
    credit = (await ledger(setup.database))[CREDIT_ID]
    assert (credit.revision, credit.cost_amount) == (3, Decimal("0"))


def statement(day: str, amount: str, model: str | None = None, project: str | None = None) -> ProviderCostReported:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return ProviderCostReported(
        event_id=f"statement-{day}-{model}-{project}",
        dimensions=UsageDimensions(project_id=project),
        occurred_at=start,
        source="test",
        tenant="acme",
        correlation_id="c",
        provider="openai",
        period_start=start,
        period_end=start.replace(day=start.day + 1),
        model=model,
        amount=Money(amount=Decimal(amount), currency="USD"),
        evidence=Evidence(format="openai-dashboard-costs"),
    )


# The OpenAI dashboard's daily costs export for the same project and days as the usage export.
DAILY_COSTS = {
    "2025-10-05": "0.8958740000000000",
    "2025-10-06": "0.5617712500000000",
    "2025-10-07": "0.569788",
    "2025-10-08": "0.5455665000000000",
    "2025-10-10": "0.34090000000000000",
    "2025-10-11": "0.072054",
}


async def reconciliation(database: Database) -> dict[str, Any]:
    async with database.engine.connect() as connection:
        return {row.day: row for row in (await connection.execute(select(RECONCILIATION))).all()}


async def test_daily_costs_reconcile_with_usage(setup: Setup) -> None:
    await setup.handler.handle(incoming(dashboard_events()))
    await setup.handler.handle_statements(incoming([statement(day, amount) for day, amount in DAILY_COSTS.items()]))
    rows = await reconciliation(setup.database)

    # 2025-10-07, -10 and -11 match the catalogue exactly (see test_pricing for the arithmetic).
    for day in ("2025-10-07", "2025-10-10", "2025-10-11"):
        assert rows[day].within_tolerance, day
        assert rows[day].variance_amount == 0
    # 2025-10-05: reported 0.895874, computed 0.24726 (gpt-4o) → 0.648614 more, exactly the cost of the
    # gpt-5 row the usage export dates 2025-10-06.
    assert rows["2025-10-05"].variance_amount == Decimal("0.648614")
    assert rows["2025-10-05"].variance_percent == Decimal("72.40")  # 0.648614 / 0.895874 = 72.40 %
    assert "dated 2025-10-06 in the usage export" in rows["2025-10-05"].likely_cause
    # 2025-10-06: reported 0.56177125, computed 0.648614 + 0.16722875 = 0.81584275 → 0.2540715 less
    assert rows["2025-10-06"].computed_amount == Decimal("0.81584275")
    assert rows["2025-10-06"].variance_amount == Decimal("-0.2540715")
    assert "charged less than the list prices give" in rows["2025-10-06"].likely_cause
    # 2025-10-08: the usage export's bucket is empty, the provider charged 0.5455665
    assert rows["2025-10-08"].computed_amount == 0
    assert "no usage was imported for this day" in rows["2025-10-08"].likely_cause

    variances = setup.publisher.events("cost.variance_detected")
    assert sorted(event.day for event in variances) == ["2025-10-05", "2025-10-06", "2025-10-08"]
    assert all(isinstance(event, CostVarianceDetected) for event in variances)

    # The same statements again, and a reconciliation of the same days, publish nothing new.
    sent = len(setup.publisher.sent)
    await setup.handler.handle_statements(incoming([statement(day, amount) for day, amount in DAILY_COSTS.items()]))
    await setup.handler.reprice()
    assert len(setup.publisher.sent) == sent


async def test_late_usage_reconciles_again(setup: Setup) -> None:
    await setup.handler.handle_statements(incoming([statement("2025-10-07", DAILY_COSTS["2025-10-07"])]))
    assert (await reconciliation(setup.database))["2025-10-07"].within_tolerance is False
    await setup.handler.handle(incoming(dashboard_events()))
    assert (await reconciliation(setup.database))["2025-10-07"].within_tolerance is True


async def test_unpriced_usage_is_named_as_cause(setup: Setup) -> None:
    await setup.handler.handle(incoming([gpt5_pro_usage()]))
    await setup.handler.handle_statements(incoming([statement("2025-10-07", "0.255")]))
    row = (await reconciliation(setup.database))["2025-10-07"]
    assert row.unpriced_events == 1
    assert "1 usage lines of this day are unpriced" in row.likely_cause


def test_cost_events_round_trip() -> None:
    # The ledger stores lines as JSON; every line field survives a round trip exactly.
    event = dashboard_events()[0]
    from services.allocation.handlers import allocate
    from services.allocation.rules import AllocationRules
    from shared.catalogue import PriceCatalogue

    cost = allocate(event, PriceCatalogue.load(), AllocationRules.empty())
    again = CostAllocated.model_validate(json.loads(cost.model_dump_json()))
    assert again.lines == cost.lines


price_changes = st.lists(
    st.tuples(
        st.sampled_from(["gpt-5", "gpt-5-mini", "gpt-4o"]),
        st.just("output_tokens"),
        # above every model's batch and flex output price, so the changed catalogue stays valid
        st.decimals(min_value=Decimal("5.01"), max_value=Decimal("40"), places=2),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    quantities=st.lists(st.integers(min_value=0, max_value=5_000_000), min_size=3, max_size=12),
    changes=price_changes,
)
def test_repricing_twice_changes_nothing_for_any_usage(
    tmp_path: Path, quantities: list[int], changes: list[tuple[str, str, Decimal]]
) -> None:
    async def scenario() -> None:
        folder = Path(tempfile.mkdtemp(dir=tmp_path))
        prices = folder / "prices.csv"
        shutil.copy(default_catalogue_paths()[0], prices)
        database = Database(f"sqlite+aiosqlite:///{folder / 'allocation.db'}")
        await database.create_tables(TABLES)
        publisher = RecordingPublisher()
        handler = AllocationHandler(
            database,
            Outbox("allocation", database, publisher),
            AllocationSources(prices_file=prices),  # type: ignore[arg-type]
        )
        try:
            at = datetime(2025, 10, 6, tzinfo=UTC)
            events = [
                UsageRecorded(
                    event_id=f"u{index}",
                    occurred_at=at,
                    source="test",
                    tenant="acme",
                    correlation_id="c",
                    provider="openai",
                    model=("gpt-5", "gpt-5-mini", "gpt-4o")[index % 3],
                    period_start=at,
                    period_end=at,
                    quantities={
                        UsageBucket.INPUT_UNCACHED_TOKENS: Decimal(count),
                        UsageBucket.OUTPUT_TOKENS: Decimal(count // 7),
                    },
                    evidence=Evidence(format="test"),
                )
                for index, count in enumerate(quantities)
            ]
            await handler.handle(incoming(events))
            rows = prices.read_text().splitlines()
            for model, bucket, price in changes:
                prefix = f"openai,{model},{bucket},standard,"
                rows = [
                    f"{prefix}{price},{line[len(prefix) :].split(',', 1)[1]}" if line.startswith(prefix) else line
                    for line in rows
                ]
            prices.write_text("\n".join(rows) + "\n")
            first = await handler.refresh()
            assert first is not None
            sent = len(publisher.sent)
            second = await sweep(database, handler.outbox, handler.loaded, only_stale=False)
            assert second.corrected == 0
            assert len(publisher.sent) == sent
            for row in (await ledger(database)).values():
                assert row.cost_amount >= 0
        finally:
            await database.dispose()

    asyncio.run(scenario())


GATEWAY_RULES = """
owners:
  search: {team: search, cost_centre: CC-1}
  chat: {team: chat, cost_centre: CC-2}
pools:
  gateway: {method: proportional, metric: tokens, targets: [search, chat]}
rules:
  - {id: gateway-costs, match: {resource_id: gw-1}, split: gateway}
  - {id: search-key, match: {api_key_id: key-search}, allocate: {team: search, cost_centre: CC-1}}
  - {id: chat-key, match: {api_key_id: key-chat}, allocate: {team: chat, cost_centre: CC-2}}
"""


def gateway_usage(event_id: str, output_tokens: int, **dimensions: str) -> UsageRecorded:
    at = datetime(2025, 10, 6, tzinfo=UTC)
    return UsageRecorded(
        event_id=event_id,
        occurred_at=at,
        source="test",
        tenant="acme",
        correlation_id="c",
        provider="openai",
        model="gpt-5",
        period_start=at,
        period_end=at,
        dimensions=UsageDimensions(**dimensions),
        quantities={UsageBucket.OUTPUT_TOKENS: Decimal(output_tokens)},
        evidence=Evidence(format="test"),
    )


async def test_late_usage_resplits_shared_cost(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(GATEWAY_RULES)
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'allocation.db'}")
    await database.create_tables(TABLES)
    publisher = RecordingPublisher()
    handler = AllocationHandler(
        database,
        Outbox("allocation", database, publisher),
        AllocationSources(rules_file=rules),  # type: ignore[arg-type]
    )
    try:
        # the gateway's cost arrives first: 100,000 gpt-5 output tokens × 10.00 / 1e6 = 1.00 USD, no usage yet
        await handler.handle(incoming([gateway_usage("gw", 100_000, resource_id="gw-1")]))
        first = (await ledger(database))["gw"]
        assert [share["amount"]["amount"] for share in json.loads(first.shares_json)] == ["0.5", "0.5"]

        # search uses 3,000 tokens and chat 1,000 in the same month: the cost splits 0.75 / 0.25
        await handler.handle(
            incoming(
                [gateway_usage("s1", 3_000, api_key_id="key-search"), gateway_usage("c1", 1_000, api_key_id="key-chat")]
            )
        )
        second = (await ledger(database))["gw"]
        assert second.revision == 2
        assert [share["amount"]["amount"] for share in json.loads(second.shares_json)] == ["0.75", "0.25"]
        revised = [
            cost for cost in publisher.events("cost.allocated") if cost.usage_event_id == "gw" and cost.revision == 2
        ]
        assert "owners now search 0.75" in revised[0].correction.reason

        # usage of nobody's declared owner leaves the split alone
        await handler.handle(incoming([gateway_usage("x1", 5_000, api_key_id="key-other")]))
        assert (await ledger(database))["gw"].revision == 2
    finally:
        await database.dispose()


async def test_project_statement_compares_that_project(setup: Setup) -> None:
    # 2025-10-07: the dashboard's gpt-5-mini usage (0.569788) is project proj_4BhN…; another project's
    # statement for that day finds no usage of its own, and the right project's statement matches.
    await setup.handler.handle(incoming(dashboard_events()))
    await setup.handler.handle_statements(
        incoming(
            [
                statement("2025-10-07", "0.569788", project="proj_4BhNtYH0z7dWbBtzhibxa65W"),
                statement("2025-10-07", "0.20", project="proj_other"),
            ]
        )
    )
    async with setup.database.engine.connect() as connection:
        rows = {row.scope: row for row in (await connection.execute(select(RECONCILIATION))).all()}
    assert rows["project_id=proj_4BhNtYH0z7dWbBtzhibxa65W"].within_tolerance
    other = rows["project_id=proj_other"]
    assert other.computed_amount == 0
    assert "no usage was imported for this day" in other.likely_cause
    [variance] = setup.publisher.events("cost.variance_detected")
    assert variance.dimensions.project_id == "proj_other"


async def test_failed_sweep_runs_again_next_batch(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    import services.allocation.handlers as handlers

    await setup.handler.handle(incoming([gpt5_pro_usage()]))
    setup.prices.write_text(setup.prices.read_text() + NEW_PRICES)
    real_sweep = handlers.sweep

    async def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("database unavailable")

    monkeypatch.setattr(handlers, "sweep", unavailable)
    with pytest.raises(ConnectionError):
        await setup.handler.refresh()
    monkeypatch.setattr(handlers, "sweep", real_sweep)

    # the file did not change again, yet the next batch re-prices the backlog first
    await setup.handler.handle(incoming(dashboard_events()[:1]))
    assert (await ledger(setup.database))["pro-1"].cost_amount == Decimal("0.255")
