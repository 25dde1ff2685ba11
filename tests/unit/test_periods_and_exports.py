"""Reporting periods in the tenant's time zone, exchange rates, commitments and FOCUS correction rows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifinops.committed import risk_commitments
from services.allocation.commitments import data_clock, drawdowns
from services.allocation.focus import focus_csv, focus_rows
from services.allocation.fx import FxError, FxTable
from services.allocation.showback import ShowbackError, build_showback, check_dimensions, local_date
from services.allocation.terms import Contract, TenantTerms
from shared.events import Evidence, Money, UsageBucket, UsageDimensions, UsageRecorded
from tests.conftest import EXAMPLES
from tests.unit.test_pricing import dashboard_events
from tests.unit.test_repricing import Setup, incoming, setup  # noqa: F401  (the fixture)

BERLIN = ZoneInfo("Europe/Berlin")


class TestLocalPeriods:
    def test_dst_spring_day_is_23_hours(self) -> None:
        # 2025-03-30 in Berlin runs from 2025-03-29T23:00Z to 2025-03-30T22:00Z (clocks jump at 01:00Z).
        assert local_date(*[datetime(2025, 3, 29, 23, tzinfo=UTC)] * 2, BERLIN) == date(2025, 3, 30)
        assert local_date(*[datetime(2025, 3, 30, 21, 59, tzinfo=UTC)] * 2, BERLIN) == date(2025, 3, 30)
        assert local_date(*[datetime(2025, 3, 30, 22, tzinfo=UTC)] * 2, BERLIN) == date(2025, 3, 31)

    def test_dst_autumn_day_is_25_hours(self) -> None:
        # 2025-10-26 in Berlin runs from 2025-10-25T22:00Z to 2025-10-26T23:00Z.
        assert local_date(*[datetime(2025, 10, 25, 22, tzinfo=UTC)] * 2, BERLIN) == date(2025, 10, 26)
        assert local_date(*[datetime(2025, 10, 26, 22, 59, tzinfo=UTC)] * 2, BERLIN) == date(2025, 10, 26)

    def test_provider_day_counts_on_its_middle(self) -> None:
        start = datetime(2025, 10, 31, tzinfo=UTC)
        # a UTC day's middle is 12:00Z: 08:00 in New York and 21:00 in Tokyo, both on October 31
        assert local_date(start, start + timedelta(days=1), ZoneInfo("America/New_York")) == date(2025, 10, 31)
        assert local_date(start, start + timedelta(days=1), ZoneInfo("Asia/Tokyo")) == date(2025, 10, 31)

    def test_unknown_dimension_is_rejected(self) -> None:
        check_dimensions(["team", "tag:équipe", "model"])
        with pytest.raises(ShowbackError, match="unknown dimension 'colour'"):
            check_dimensions(["colour"])


@settings(max_examples=200, deadline=None)
@given(
    instants=st.lists(
        st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(UTC)),
        min_size=1,
        max_size=40,
    ),
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]),
)
def test_disjoint_periods_add_up_to_their_union(instants: list[datetime], zone: str) -> None:
    tz = ZoneInfo(zone)
    amounts = [Decimal(index + 1) / 1000 for index in range(len(instants))]
    by_day: dict[date, Decimal] = {}
    by_month: dict[str, Decimal] = {}
    for instant, amount in zip(instants, amounts, strict=True):
        day = local_date(instant, instant, tz)
        by_day[day] = by_day.get(day, Decimal(0)) + amount
        by_month[day.strftime("%Y-%m")] = by_month.get(day.strftime("%Y-%m"), Decimal(0)) + amount
    assert sum(by_day.values()) == sum(amounts)
    for month, total in by_month.items():
        assert sum(value for day, value in by_day.items() if day.strftime("%Y-%m") == month) == total


class TestExchangeRates:
    def test_rate_in_force_on_the_day(self, tmp_path: Path) -> None:
        path = tmp_path / "fx.csv"
        path.write_text("date,base,quote,rate,source\n2025-10-01,EUR,USD,1.17,test\n2025-10-15,EUR,USD,1.16,test\n")
        table = FxTable.load(path)
        eur = Money(amount=Decimal("10.00"), currency="EUR")
        assert table.convert(eur, "USD", date(2025, 10, 14)) == Money(amount=Decimal("11.7000"), currency="USD")
        assert table.convert(eur, "USD", date(2025, 10, 15)) == Money(amount=Decimal("11.6000"), currency="USD")
        assert table.convert(eur, "USD", date(2025, 9, 30)) is None  # before the first rate
        assert table.convert(eur, "GBP", date(2025, 10, 20)) is None  # no such pair; never added raw

    def test_bad_rate_names_the_line(self, tmp_path: Path) -> None:
        path = tmp_path / "fx.csv"
        path.write_text("date,base,quote,rate,source\n2025-10-01,EUR,USD,-1,test\n")
        with pytest.raises(FxError, match="line 2: rate: must be positive"):
            FxTable.load(path)


async def test_showback_converts_and_keeps_unconverted_apart(setup: Setup, tmp_path: Path) -> None:  # noqa: F811
    at = datetime(2025, 10, 20, 12, tzinfo=UTC)
    eur_usage = UsageRecorded(
        event_id="eur-1",
        occurred_at=at,
        source="test",
        tenant="acme",
        correlation_id="c",
        provider="selfhosted",
        model="llama",
        period_start=at,
        period_end=at,
        quantities={UsageBucket.GPU_SECONDS: Decimal(3600)},
        dimensions=UsageDimensions(),
        evidence=Evidence(format="test"),
    )
    setup.terms.write_text(
        "tenants:\n  acme:\n    custom_prices:\n"
        "      - {provider: selfhosted, model: llama, bucket: gpu_seconds, service_tier: standard,"
        ' unit_price: "2.00", price_per: 3600, currency: EUR, effective_from: 2025-01-01}\n'
    )
    await setup.handler.refresh()
    await setup.handler.handle(incoming([*dashboard_events(), eur_usage]))
    fx_path = tmp_path / "fx.csv"
    fx_path.write_text("date,base,quote,rate,source\n2025-10-01,EUR,USD,1.17,test\n")

    converted = await build_showback(
        setup.database, "acme", dimensions=["provider"], period="month", zone=BERLIN, currency="USD",
        fx=FxTable.load(fx_path),
    )  # fmt: skip
    # 2.00 EUR × 1.17 = 2.34 USD; OpenAI's October total is 2.04584475 USD (see test_pricing)
    assert converted.totals[("2025-10", ("selfhosted",), "USD")] == Decimal("2.3400")
    assert converted.totals[("2025-10", ("openai",), "USD")] == Decimal("2.04584475")
    without_rate = await build_showback(
        setup.database, "acme", dimensions=["provider"], period="total", zone=BERLIN, currency="USD"
    )
    assert without_rate.totals[("total", ("selfhosted",), "EUR")] == Decimal("2.00")
    assert without_rate.unconverted == {"EUR": Decimal("2.00")}


async def test_commitment_drawdown(setup: Setup) -> None:  # noqa: F811
    await setup.handler.handle(incoming(dashboard_events()))
    terms = TenantTerms(
        tenant="acme",
        contracts=(
            Contract(
                contract_id="c1",
                provider="openai",
                starts=datetime(2025, 10, 6, tzinfo=UTC),
                ends=datetime(2025, 11, 5, tzinfo=UTC),
                committed_spend=Money(amount=Decimal("10.00"), currency="USD"),
            ),
        ),
    )
    [result] = await drawdowns(setup.database, terms, datetime(2025, 10, 21, tzinfo=UTC))
    # usage from 2025-10-06 on: 0.648614 + 0.16722875 + 0.569788 + 0.3409 + 0.072054 = 1.79858475
    assert result.drawn == Money(amount=Decimal("1.79858475"), currency="USD")
    assert result.remaining.amount == Decimal("8.20141525")
    assert result.drawn_percent == Decimal("17.99")
    # 15 of 30 days passed: projected 1.79858475 × 2 = 3.5971695 → 3.60
    assert result.term_elapsed_percent == Decimal("50.00")
    assert result.projected_at_term_end == Money(amount=Decimal("3.60"), currency="USD")


async def test_focus_correction_rows_add_up(setup: Setup) -> None:  # noqa: F811
    events = dashboard_events()
    await setup.handler.handle(incoming(events))
    text = setup.prices.read_text().replace(
        "openai,gpt-5-mini,output_tokens,standard,2.00,1000000,USD,2025-08-07,,openai.com/api/pricing",
        "openai,gpt-5-mini,output_tokens,standard,1.50,1000000,USD,2025-08-07,,openai.com/api/pricing",
    )
    setup.prices.write_text(text)
    await setup.handler.refresh()
    rows = list(csv.DictReader(io.StringIO(focus_csv(await focus_rows(setup.database, "acme")))))
    corrections = [row for row in rows if row["ChargeClass"] == "Correction"]
    # three gpt-5-mini days change output cost: 274,770 / 154,852 / 33,191 tokens × (1.50 − 2.00) per 1M
    assert sorted(Decimal(row["BilledCost"]) for row in corrections) == [
        Decimal("-0.137385"),
        Decimal("-0.077426"),
        Decimal("-0.0165955"),
    ]
    assert all(row["PricingQuantity"] == "" and row["ConsumedQuantity"] == "" for row in corrections)
    # original rows plus corrections equal the current total: 2.04584475 − 0.2314065 = 1.81443825
    assert sum(Decimal(row["BilledCost"]) for row in rows) == Decimal("1.81443825")
    original = [row for row in rows if row["ChargeClass"] == ""]
    for row in original:
        assert Decimal(row["ListUnitPrice"]) * Decimal(row["PricingQuantity"]) == Decimal(row["ListCost"])
        assert Decimal(row["ContractedUnitPrice"]) * Decimal(row["PricingQuantity"]) == Decimal(row["ContractedCost"])


async def test_commitment_as_of_data_clock(setup: Setup) -> None:  # noqa: F811
    await setup.handler.handle(incoming(dashboard_events()))
    clock = await data_clock(setup.database, "acme")
    # The dashboard export's newest day is 2025-10-11, so its data reaches 2025-10-12 00:00 UTC.
    assert clock == datetime(2025, 10, 12, tzinfo=UTC)
    terms = TenantTerms(
        tenant="acme",
        contracts=(
            Contract(
                contract_id="c1",
                provider="openai",
                starts=datetime(2025, 10, 6, tzinfo=UTC),
                ends=datetime(2025, 11, 5, tzinfo=UTC),
                committed_spend=Money(amount=Decimal("10.00"), currency="USD"),
            ),
        ),
    )
    [at_clock] = await drawdowns(setup.database, terms, clock)
    # Every usage day of the term is before the clock: the same 1.79858475 USD as test_commitment_drawdown.
    assert at_clock.drawn == Money(amount=Decimal("1.79858475"), currency="USD")
    # 6 of 30 days passed: projected 1.79858475 × 30 / 6 = 8.99292375 → 8.99
    assert at_clock.term_elapsed_percent == Decimal("20.00")
    assert at_clock.projected_at_term_end == Money(amount=Decimal("8.99"), currency="USD")
    [earlier] = await drawdowns(setup.database, terms, datetime(2025, 10, 8, tzinfo=UTC))
    # Usage after the instant projected from is not drawn down: only the days 2025-10-06 and 2025-10-07 count.
    # 0.648614 + 0.16722875 (2025-10-06) + 0.569788 (2025-10-07) = 1.38563075
    assert earlier.drawn == Money(amount=Decimal("1.38563075"), currency="USD")


def test_risk_commitments_join_drawdown() -> None:
    # The demo's contracts file contains one spend commitment (Anthropic) and one seat licence (Copilot): only the
    # commitment becomes a drawdown contract, over its whole last day in risk's zone.
    [anthropic] = risk_commitments(EXAMPLES / "config" / "contracts.yaml", "demo", ZoneInfo("UTC"))
    assert anthropic.contract_id == "anthropic-commit-2026"
    assert anthropic.provider == "anthropic"
    assert anthropic.starts == datetime(2026, 1, 1, tzinfo=UTC)
    assert anthropic.ends == datetime(2027, 1, 1, tzinfo=UTC)
    assert anthropic.committed_spend == Money(amount=Decimal("500.00"), currency="USD")
    assert risk_commitments(EXAMPLES / "config" / "contracts.yaml", "other", ZoneInfo("UTC")) == []
